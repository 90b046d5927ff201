import Foundation
import GovexTestSupport
import GovexWire
import Testing

/// The committed vectors decode, verify and render exactly as recorded; the
/// Ed25519 ones re-encode byte for byte; the invalid ones fail as recorded.
@Suite("Batch format test vectors")
struct TestVectorTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/batches").path

    struct Vector: Sendable, CustomTestStringConvertible {
        let file: String
        let key: String
        let expect: String
        var testDescription: String { "\(file) with \(key) → \(expect)" }
    }

    static let vectors: [Vector] = {
        guard let data = FileManager.default.contents(atPath: directory + "/manifest.json"),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let list = json["vectors"] as? [[String: String]] else { return [] }
        return list.map { Vector(file: $0["file"]!, key: $0["key"]!, expect: $0["expect"]!) }
    }()

    static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
    }

    @Test("the manifest lists valid and invalid vectors for both algorithms")
    func manifestIsComplete() {
        #expect(Self.vectors.count >= 10)
        #expect(Set(Self.vectors.map(\.expect)).isSuperset(of: ["valid", "truncated", "digest_mismatch", "bad_signature", "wrong_key", "unsupported_version", "corrupt_body"]))
        #expect(Self.vectors.contains { $0.file.hasPrefix("sm2") })
    }

    @Test("each vector verifies, or fails, exactly as the manifest says", arguments: vectors)
    func vector(_ vector: Vector) throws {
        let key = try VerifyingKey(pem: String(decoding: try Self.bytes(vector.key), as: UTF8.self))
        let file = try Self.bytes(vector.file)
        do {
            let batch = try BatchFile(bytes: file)
            try batch.verify(with: key)
            let records = try batch.records()
            #expect(vector.expect == "valid", "\(vector.file) was accepted")
            let rendered = BatchJSON.object([
                ("header", BatchJSON.header(batch.header)),
                ("records", "[\n" + records.map(BatchJSON.record).joined(separator: ",\n") + "\n]"),
            ]) + "\n"
            let recorded = String(decoding: try Self.bytes(vector.file.replacingOccurrences(of: ".gvxb", with: ".json")), as: UTF8.self)
            #expect(rendered == recorded)
            if let provenance = batch.header.provenance, batch.header.kind == .delivery {
                let origin = try VerifyingKey(pem: String(decoding: try Self.bytes("minzheng-sm2.pub"), as: UTF8.self))
                try provenance.verifyOrigin(with: origin)
            }
        } catch let error as BatchError {
            #expect(error.code == vector.expect, "\(vector.file): \(error)")
        }
    }

    @Test("Ed25519 vectors re-encode from their records to the same bytes")
    func reencode() throws {
        for (name, key) in [("ed25519-change.gvxb", VectorKeys.gongan), ("ed25519-delivery.gvxb", VectorKeys.hub), ("ed25519-empty-snapshot.gvxb", VectorKeys.gongan)] {
            let file = try Self.bytes(name)
            let batch = try BatchFile(bytes: file)
            let h = batch.header
            var encoder = BatchBodyEncoder()
            for record in try batch.records() { try encoder.append(record) }
            let metadata = BatchMetadata(nodeID: h.nodeID, nodeEpoch: h.nodeEpoch, sequence: h.sequence, kind: h.kind, positionType: h.positionType,
                                         completeThrough: h.completeThrough, createdAt: h.createdAt, provenance: h.provenance, extensions: h.extensions)
            #expect(try BatchSealer.seal(encoder, metadata: metadata, key: key) == file, "\(name) did not re-encode byte for byte")
        }
    }

    @Test("a decoder written in Python from docs/batch-format.md alone agrees on every vector")
    func pythonReferenceDecoder() throws {
        let script = URL(fileURLWithPath: Self.directory).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/reference-decoder/govex_batch.py").path
        let result = try Subprocess.run(["python3", script, "check", Self.directory + "/manifest.json"])
        #expect(result.succeeded, "\(result.output)")
        #expect(result.output.contains("\(Self.vectors.count) vectors agree"), "\(result.output)")
    }
}
