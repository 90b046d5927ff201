import ArgumentParser
import Foundation
import GovexTestSupport
import GovexWire

/// Writes the batch-format test vectors (docs/batch-format.md, section 7).
/// Ed25519 vectors come out identical every run; SM2 ones differ (randomised
/// signatures), so committed SM2 vectors are verified, never regenerated.
struct MakeVectors: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vectors", abstract: "Write the batch-format test vectors.")

    @Option(help: "Output directory.")
    var out: String = "Tests/Fixtures/batches"

    @Flag(help: "Also write new SM2 vectors (otherwise existing ones are kept).")
    var regenerateSM2 = false

    struct Entry {
        let file: String
        let key: String
        let expect: String   // "valid" or an error class
    }

    func run() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var entries: [Entry] = []
        let gongan = VectorKeys.gongan
        let hub = VectorKeys.hub
        try write(gongan.publicKey.pem, "gongan-ed25519.pub")
        try write(hub.publicKey.pem, "hub-ed25519.pub")

        let change = try SampleBatches.seal(SampleBatches.mixedRecords(), key: gongan)
        try writeVector(change, "ed25519-change", key: "gongan-ed25519.pub", &entries)

        let snapshotMetadata = BatchMetadata(nodeID: "gongan", nodeEpoch: 0x6743_1A2B_0000_0001, sequence: 1, kind: .snapshot,
                                             positionType: .none, completeThrough: 0, createdAt: 1_764_000_000_000_000)
        try writeVector(try SampleBatches.seal([], key: gongan, metadata: snapshotMetadata), "ed25519-empty-snapshot", key: "gongan-ed25519.pub", &entries)

        let sm2Path = out + "/sm2-change.gvxb"
        if regenerateSM2 || !FileManager.default.fileExists(atPath: sm2Path) {
            let directory = NSTemporaryDirectory() + "govex-vectors-\(getpid())"
            try? FileManager.default.removeItem(atPath: directory)
            let sm2 = try SigningKey.generate(.sm2)
            try write(sm2.publicKey.pem, "minzheng-sm2.pub")
            var metadata = SampleBatches.metadata(sequence: 9)
            metadata.nodeID = "minzheng"
            try writeVector(try SampleBatches.seal(SampleBatches.mixedRecords(), key: sm2, metadata: metadata), "sm2-change", key: "minzheng-sm2.pub", &entries)
        } else {
            try writeJSON(for: Array(try Data(contentsOf: URL(fileURLWithPath: sm2Path))), "sm2-change")
            entries.append(Entry(file: "sm2-change.gvxb", key: "minzheng-sm2.pub", expect: "valid"))
        }

        // A delivery re-issued by the hub, carrying the SM2 provider's batch and signature unchanged.
        let origin = try BatchFile(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: sm2Path))))
        var deliveryMetadata = SampleBatches.metadata(sequence: 3, kind: .delivery)
        deliveryMetadata.nodeID = "hub"
        deliveryMetadata.provenance = Provenance(of: origin)
        deliveryMetadata.extensions = [HeaderExtension(type: 0x8001, isCritical: false, data: Array("zhujian".utf8))]
        let delivery = try SampleBatches.seal(try origin.records(), key: hub, metadata: deliveryMetadata)
        try writeVector(delivery, "ed25519-delivery", key: "hub-ed25519.pub", &entries)

        // A body compressed by the lz4 command itself (content checksum on, as is its default).
        let plain = try BatchFile(bytes: change)
        let directory = NSTemporaryDirectory() + "govex-vectors-lz4-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data(try plain.decompressedBody()).write(to: URL(fileURLWithPath: directory + "/body.bin"))
        try Subprocess.check(["lz4", "-1", "-f", "-q", "--content-size", directory + "/body.bin", directory + "/body.lz4"])
        let commandBody = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/body.lz4")))
        var commandHeader = plain.header
        commandHeader.sequence = 43
        let fromCommand = try BatchSealer.seal(compressedBody: commandBody, uncompressedLength: Int(plain.header.uncompressedLength),
                                               header: commandHeader, key: gongan)
        try writeVector(fromCommand, "ed25519-lz4-command-body", key: "gongan-ed25519.pub", &entries)

        // Invalid vectors, each with the error class a reader must report.
        try writeInvalid(Array(change.prefix(change.count - 7)), "invalid-truncated", "truncated", &entries)
        var body = change
        body[body.count - 20] ^= 0x01
        try writeInvalid(body, "invalid-body-digest", "digest_mismatch", &entries)
        var header = change
        header[BatchHeader.preambleLength + 3] ^= 0x01
        try writeInvalid(header, "invalid-header-signature", "bad_signature", &entries)
        var version = change
        version[9] = 2
        try writeInvalid(version, "invalid-version", "unsupported_version", &entries)
        try writeInvalid(change + [0], "invalid-trailing-bytes", "trailing_bytes", &entries)
        entries.append(Entry(file: "ed25519-change.gvxb", key: "hub-ed25519.pub", expect: "wrong_key"))
        try writeInvalid(try signedGarbage(from: change, key: gongan), "invalid-signed-garbage-body", "corrupt_body", &entries)

        let manifest = "{\"vectors\": [\n" + entries.map { entry in
            "  {\"file\": \"\(entry.file)\", \"key\": \"\(entry.key)\", \"expect\": \"\(entry.expect)\"}"
        }.joined(separator: ",\n") + "\n]}\n"
        try write(manifest, "manifest.json")
        print("wrote \(entries.count) vectors to \(out)")
    }

    /// A batch whose body is not an LZ4 frame yet is correctly digested and signed.
    func signedGarbage(from file: [UInt8], key: SigningKey) throws -> [UInt8] {
        let batch = try BatchFile(bytes: file)
        return try BatchSealer.seal(compressedBody: Array("this is not an lz4 frame".utf8), uncompressedLength: Int(batch.header.uncompressedLength),
                                    header: batch.header, key: key)
    }

    func write(_ text: String, _ name: String) throws {
        try text.write(toFile: out + "/" + name, atomically: true, encoding: .utf8)
    }

    func writeJSON(for bytes: [UInt8], _ name: String) throws {
        let batch = try BatchFile(bytes: bytes)
        let records = try batch.records()
        try write(BatchJSON.object([
            ("header", BatchJSON.header(batch.header)),
            ("records", "[\n" + records.map(BatchJSON.record).joined(separator: ",\n") + "\n]"),
        ]) + "\n", name + ".json")
    }

    func writeVector(_ bytes: [UInt8], _ name: String, key: String, _ entries: inout [Entry]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: out + "/" + name + ".gvxb"))
        try writeJSON(for: bytes, name)
        entries.append(Entry(file: name + ".gvxb", key: key, expect: "valid"))
    }

    func writeInvalid(_ bytes: [UInt8], _ name: String, _ expect: String, _ entries: inout [Entry]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: out + "/" + name + ".gvxb"))
        entries.append(Entry(file: name + ".gvxb", key: "gongan-ed25519.pub", expect: expect))
    }
}
