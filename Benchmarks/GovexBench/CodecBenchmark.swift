import ArgumentParser
import Foundation
import GovexTestSupport
import GovexWire

/// The batch codec's hot paths on realistic rows, side by side with the `lz4`
/// command on the very same uncompressed body bytes. Reports numbers; asserts nothing.
struct CodecBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec",
        abstract: "Encode, compress, sign, verify, decompress and decode realistic rows; compare with lz4 -1.")

    @Option(help: "Rows in total.")
    var rows = 1_000_000

    @Option(help: "Rows per batch (the agent's default max_records).")
    var batchRows = 10_000

    @Option(help: "Runs of each phase; the best is reported.")
    var runs = 3

    @Option(help: "ed25519 or sm2.")
    var algorithm = "ed25519"

    @Option(help: "Profile one phase: run only encode or decode, repeatedly, and print nothing else.")
    var profile: String?

    func run() throws {
        guard let algorithm = SignatureAlgorithm(name: algorithm) else { throw ValidationError("unknown --algorithm") }
        #if DEBUG
        print("warning: this is a debug build; run with `swift run -c release govex-bench codec` for real figures")
        #endif
        let key = try SigningKey.generate(algorithm)
        progress("generating \(rows) rows")
        var generator = RealisticRows()
        var batches: [[ChangeRecord]] = []
        var current: [ChangeRecord] = []
        current.reserveCapacity(batchRows)
        for index in 0..<rows {
            current.append(generator.record(ordinal: index % batchRows, commit: 0x1_0000_0000 + UInt64(index / batchRows) * 0x1000))
            if current.count == batchRows { batches.append(current); current = [] }
        }
        if !current.isEmpty { batches.append(current) }
        let metadata = { (sequence: Int) in
            BatchMetadata(nodeID: "bench", nodeEpoch: 1, sequence: UInt64(sequence + 1), completeThrough: 0, createdAt: 0)
        }

        if let profile {
            try profileOnly(profile, batches: batches)
            return
        }

        // The agent reuses one encoder, batch after batch; so do the timed phases.
        var reused = BatchBodyEncoder(capacity: batchRows * 200)
        let encode = try best("encode") {
            for records in batches {
                reused.reset()
                for record in records { try reused.append(record) }
            }
        }
        let bodies = try batches.map { records in
            var encoder = BatchBodyEncoder(capacity: records.count * 200)
            for record in records { try encoder.append(record) }
            return encoder
        }
        let uncompressedBytes = bodies.reduce(0) { $0 + $1.byteCount }

        // Into one reused output buffer, as the sealer compresses into the batch file it builds.
        var output = [UInt8](repeating: 0, count: LZ4Frame.compressBound(bodies.map(\.byteCount).max() ?? 0))
        let compress = try best("compress") {
            for body in bodies {
                _ = try output.withUnsafeMutableBytes { out in try body.withBytes { try LZ4Frame.compress($0, into: out) } }
            }
        }
        let compressed = try bodies.map { body in try body.withBytes { try LZ4Frame.compress($0) } }
        let compressedBytes = compressed.reduce(0) { $0 + $1.count }

        var files: [[UInt8]] = []
        let seal = try best("encode+compress+sign") {
            files = try batches.enumerated().map { index, records in
                reused.reset()
                for record in records { try reused.append(record) }
                return try BatchSealer.seal(reused, metadata: metadata(index), key: key)
            }
        }
        let digestAlgorithm = key.algorithm.digest
        let sign = try best("sign (digest+signature)") {
            for body in compressed {
                var message = digestAlgorithm.hash(body)
                message += [UInt8](repeating: 0, count: 200)   // about a header's size
                _ = try message.withUnsafeBytes { try key.signature(for: $0) }
            }
        }

        var parsed: [BatchFile] = []
        let verify = try best("verify") {
            parsed = try files.map { file in
                let batch = try BatchFile(bytes: file)
                try batch.verify(with: key.publicKey)
                return batch
            }
        }

        var decompressed: [[UInt8]] = []
        let decompress = try best("decompress") {
            decompressed = try parsed.map { try $0.decompressedBody() }
        }

        var decodedCount = 0
        let decode = try best("decode") {
            decodedCount = 0
            for (batch, body) in zip(parsed, decompressed) {
                try body.withUnsafeBytes { raw in
                    var decoder = BatchBodyDecoder(body: raw, header: batch.header)
                    while try decoder.next() != nil { decodedCount += 1 }
                }
            }
        }
        precondition(decodedCount == rows, "decoded \(decodedCount) of \(rows) rows")

        progress("running the lz4 command on the same \(uncompressedBytes) body bytes")
        let reference = try LZ4Reference.measure(bodies: bodies.map(\.bytes), runs: runs)

        let mb = Double(uncompressedBytes) / 1_000_000
        func line(_ name: String, _ duration: Duration, bytes: Double = mb, note: String = "") {
            let seconds = duration.seconds
            print(name.padding(toLength: 24, withPad: " ", startingAt: 0)
                  + String(format: "%10.0f rows/s %9.1f MB/s %8.3f s", Double(rows) / seconds, bytes / seconds, seconds) + note)
        }
        print("")
        print("govex codec benchmark: \(rows) rows in \(batches.count) batches of \(batchRows), \(algorithm), best of \(runs)")
        print(String(format: "body: %.1f MB uncompressed (%.0f bytes/row), %.1f MB compressed, ratio %.2f", mb, Double(uncompressedBytes) / Double(rows), Double(compressedBytes) / 1_000_000, Double(uncompressedBytes) / Double(compressedBytes)))
        line("encode", encode)
        line("compress (LZ4 frame)", compress)
        line("sign (digest+signature)", sign, bytes: Double(compressedBytes) / 1_000_000, note: "  (MB/s of compressed bytes)")
        line("encode+compress+sign", seal, note: String(format: "  target ≥ 2,000,000 rows/s: %@", Double(rows) / seal.seconds >= 2_000_000 ? "met" : "NOT met"))
        line("verify", verify, bytes: Double(compressedBytes) / 1_000_000, note: "  (MB/s of compressed bytes)")
        line("decompress", decompress)
        line("decode", decode)
        print("")
        print("reference, same bytes: lz4 \(reference.version)")
        print(String(format: "lz4 -1 command (file → /dev/null):   compress %7.1f MB/s, decompress %7.1f MB/s, ratio %.2f",
                     mb / reference.compressCommand.seconds, mb / reference.decompressCommand.seconds, reference.ratio))
        if let inMemory = reference.benchmarkMode {
            print(String(format: "lz4 -b1 (its in-memory benchmark):   compress %7.1f MB/s, decompress %7.1f MB/s", inMemory.compress, inMemory.decompress))
        }
        let ours = mb / compress.seconds
        print(String(format: "govex compress vs lz4 -1 command:    %.2f×  (target ≥ 0.8×)", ours / (mb / reference.compressCommand.seconds)))
        if let inMemory = reference.benchmarkMode {
            print(String(format: "govex compress vs lz4 -b1:           %.2f×", ours / inMemory.compress))
        }
        print(String(format: "govex decompress vs lz4 -d command:  %.2f×", (mb / decompress.seconds) / (mb / reference.decompressCommand.seconds)))
        print(String(format: "compression ratio govex / lz4 -1:    %.2f / %.2f", Double(uncompressedBytes) / Double(compressedBytes), reference.ratio))
    }

    func profileOnly(_ phase: String, batches: [[ChangeRecord]]) throws {
        let key = try SigningKey.generate(.ed25519)
        let files = try batches.map { records in
            var encoder = BatchBodyEncoder(capacity: records.count * 200)
            for record in records { try encoder.append(record) }
            return try BatchFile(bytes: try BatchSealer.seal(encoder, metadata: BatchMetadata(nodeID: "p", nodeEpoch: 1, sequence: 1, completeThrough: 0, createdAt: 0), key: key))
        }
        let bodies = try files.map { try $0.decompressedBody() }
        let duration = try best(phase) {
            switch phase {
            case "encode":
                for records in batches {
                    var encoder = BatchBodyEncoder(capacity: records.count * 200)
                    for record in records { try encoder.append(record) }
                }
            case "decode":
                for (file, body) in zip(files, bodies) {
                    try body.withUnsafeBytes { raw in
                        var decoder = BatchBodyDecoder(body: raw, header: file.header)
                        while try decoder.next() != nil {}
                    }
                }
            default:
                throw ValidationError("--profile takes encode or decode")
            }
        }
        print(String(format: "%@: %.0f rows/s", phase, Double(rows) / duration.seconds))
    }

    func best(_ name: String, _ body: () throws -> Void) throws -> Duration {
        var fastest = Duration.seconds(Int64.max)
        for run in 1...runs {
            progress("\(name) (run \(run)/\(runs))")
            let clock = ContinuousClock()
            let start = clock.now
            try body()
            fastest = min(fastest, clock.now - start)
        }
        return fastest
    }

    func progress(_ message: String) {
        FileHandle.standardError.write(Data("… \(message)\n".utf8))
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Times the `lz4` command itself on the concatenated bodies, and reads its own benchmark mode.
enum LZ4Reference {
    struct Result {
        let version: String
        let compressCommand: Duration
        let decompressCommand: Duration
        let ratio: Double
        let benchmarkMode: (compress: Double, decompress: Double)?
    }

    static func measure(bodies: [[UInt8]], runs: Int) throws -> Result {
        let directory = Subprocess.temporaryDirectory("govex-bench")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let input = directory + "/bodies.bin", output = directory + "/bodies.lz4"
        let data = Data(bodies.joined())
        try data.write(to: URL(fileURLWithPath: input))
        let banner = (try? Subprocess.run(["lz4", "--version"]).output) ?? ""
        let version = banner.split(separator: " ").first { $0.hasPrefix("v") && $0.dropFirst().first?.isNumber == true }.map { String($0.trimmingCharacters(in: .punctuationCharacters)) }
        func time(_ argv: [String]) throws -> Duration {
            var fastest = Duration.seconds(Int64.max)
            for _ in 0..<max(runs, 1) {
                let clock = ContinuousClock()
                let start = clock.now
                try Subprocess.check(argv)
                fastest = min(fastest, clock.now - start)
            }
            return fastest
        }
        let compress = try time(["lz4", "-1", "-f", "-q", input, output])
        let compressedSize = (try FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 1
        let decompress = try time(["lz4", "-d", "-f", "-q", output, "/dev/null"])
        let benchmark = try Subprocess.run(["lz4", "-b1", "-i\(max(runs, 1))", input])
        return Result(version: version ?? "unknown", compressCommand: compress, decompressCommand: decompress,
                      ratio: Double(data.count) / Double(compressedSize), benchmarkMode: parseBenchmark(benchmark.output))
    }

    /// `lz4 -b1` ends with a line like `1#bodies.bin : 123 -> 45 (2.73), 612.3 MB/s , 3456.7 MB/s`.
    static func parseBenchmark(_ output: String) -> (compress: Double, decompress: Double)? {
        guard let line = output.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).last(where: { $0.contains("MB/s") }) else { return nil }
        let speeds = line.components(separatedBy: "MB/s").dropLast().compactMap { part -> Double? in
            part.split(whereSeparator: { $0 == " " || $0 == "," }).last.flatMap { Double($0) }
        }
        return speeds.count >= 2 ? (speeds[0], speeds[1]) : nil
    }
}
