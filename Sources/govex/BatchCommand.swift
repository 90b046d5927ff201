import ArgumentParser
import GovexKeyStore
import GovexWire

struct BatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Look inside batch files and check their signatures.",
        subcommands: [Inspect.self, Verify.self]
    )
}

struct BatchFileOptions: ParsableArguments {
    @Argument(help: "A batch file (.gvxb).")
    var file: String

    @Option(help: "Refuse batches with more records than this.")
    var maxRecords: Int = BatchLimits.default.maxRecords

    @Option(help: "Refuse batches whose uncompressed body is larger than this many bytes.")
    var maxBodyBytes: Int = BatchLimits.default.maxUncompressedBytes

    var limits: BatchLimits { BatchLimits(maxRecords: maxRecords, maxUncompressedBytes: maxBodyBytes) }

    func load() throws -> BatchFile {
        let limits = self.limits
        let bytes = try FileOutput.readFile(file, limit: limits.maxHeaderBytes + BatchFile.maxSignatureLength + 16 + limits.maxCompressedBytes)
        return try BatchFile(bytes: bytes, limits: limits)
    }
}

extension BatchCommand {
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a batch's header and records.",
            discussion: """
            Without --key the signature is not checked: what is printed is what the
            file claims. Use `govex batch verify` (or --key) before trusting it.

            Example:
              govex batch inspect 00000000000000000042.gvxb --limit 5 --json
            """
        )

        @OptionGroup var options: BatchFileOptions

        @Option(help: "Verify with this PEM public key before printing.")
        var key: String?

        @Option(help: "Print at most this many records.")
        var limit: Int = 20

        @Flag(help: "Print {\"header\": …, \"records\": […]} as JSON.")
        var json = false

        func run() throws {
            do {
                let batch = try options.load()
                var verified = false
                if let key {
                    try batch.verify(with: try KeyStore.loadVerifyingKey(path: key))
                    verified = true
                }
                let records = try batch.records(limit: max(0, limit))
                if json {
                    print(BatchJSON.object([
                        ("header", BatchJSON.header(batch.header)),
                        ("verified", verified ? "true" : "false"),
                        ("records", "[" + records.map(BatchJSON.record).joined(separator: ",\n") + "]"),
                    ]))
                } else {
                    printHuman(batch, records: records, verified: verified)
                }
            } catch let error as BatchError {
                printError("\(options.file): \(error)")
                throw ExitStatus.negative
            } catch {
                printError("\(error)")
                throw ExitStatus.failure
            }
        }

        func printHuman(_ batch: BatchFile, records: [ChangeRecord], verified: Bool) {
            let h = batch.header
            print("batch \(h.nodeID) epoch \(h.nodeEpoch) sequence \(h.sequence) (\(h.kind))")
            print("  signature:   \(h.signatureAlgorithm) key \(Hex.encode(h.keyID)) — \(verified ? "verified" : "NOT verified (give --key)")")
            print("  digest:      \(h.digestAlgorithm) \(Hex.encode(h.bodyDigest))")
            print("  positions:   \(h.positionType) \(h.firstPosition) … \(h.lastPosition), complete through \(LSN.format(h.completeThrough))")
            print("  created:     \(h.createdAt) µs since 1970-01-01 UTC")
            print("  records:     \(h.recordCount) in \(h.resources.joined(separator: ", "))")
            print("  body:        \(h.uncompressedLength) bytes, \(h.compressedLength) compressed (lz4 frame)")
            if let p = h.provenance {
                print("  provenance:  \(p.originNode) epoch \(p.originEpoch) sequence \(p.originSequence), key \(Hex.encode(p.originKeyID))")
            }
            for record in records {
                var line = "\(record.position) \(record.operation) \(record.resource)"
                if !record.key.isEmpty { line += " key(" + Self.columns(record.key) + ")" }
                if !record.values.isEmpty { line += " " + Self.columns(record.values) }
                if let old = record.oldKey { line += " old key(" + Self.columns(old) + ")" }
                print(line)
            }
            if records.count < Int(h.recordCount) { print("… \(Int(h.recordCount) - records.count) more records (raise --limit)") }
        }

        static func columns(_ columns: [Column]) -> String {
            columns.map { column in
                switch column.value {
                case .null: return "\(column.name)=NULL"
                case .unchanged: return "\(column.name)=(unchanged)"
                default: return "\(column.name)=\(column.value.postgresText ?? "")"
                }
            }.joined(separator: " ")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a batch's structure, body digest and signature.",
            discussion: """
            Exit status 0 when the batch is intact and signed by KEY; 1 with the
            reason when it is not (truncated, corrupted body, digest mismatch,
            wrong key, wrong algorithm, unsupported version, …); 2 when the
            command itself could not run (missing file, unreadable key).

            Example:
              govex batch verify 00000000000000000042.gvxb --key keys/gongan.pub
            """
        )

        @OptionGroup var options: BatchFileOptions

        @Option(help: "The signer's PEM public key.")
        var key: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() throws {
            let publicKey: VerifyingKey
            do {
                publicKey = try KeyStore.loadVerifyingKey(path: key)
            } catch {
                printError("\(error)")
                throw ExitStatus.failure
            }
            do {
                let batch: BatchFile
                do { batch = try options.load() } catch let error as CommandError {
                    printError("\(error)")
                    throw ExitStatus.failure
                }
                try batch.verify(with: publicKey)
                // A signed body can still be malformed; decoding it all proves it is not.
                let records = try batch.records()
                if json {
                    print(BatchJSON.object([("valid", "true"), ("records", String(records.count)),
                                            ("identity_digest", BatchJSON.string(Hex.encode(batch.identityDigest)))]))
                } else {
                    print("\(options.file): valid, \(records.count) records, signed by \(batch.header.nodeID) with \(batch.header.signatureAlgorithm) key \(Hex.encode(batch.header.keyID))")
                }
            } catch let error as BatchError {
                if json {
                    print(BatchJSON.object([("valid", "false"), ("error", BatchJSON.string(error.code)), ("reason", BatchJSON.string(error.description))]))
                }
                printError("\(options.file): \(error)")
                throw ExitStatus.negative
            }
        }
    }
}
