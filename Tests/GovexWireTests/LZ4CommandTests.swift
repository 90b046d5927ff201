import Foundation
import GovexTestSupport
import GovexWire
import Testing

/// A batch body is a plain LZ4 frame: the `lz4` command opens it, and govex opens the command's frames.
@Suite("lz4 command cross-checks")
struct LZ4CommandTests {
    @Test("lz4 -d decompresses an extracted batch body to the exact body bytes")
    func lz4DecompressesOurBody() throws {
        let directory = Subprocess.temporaryDirectory()
        let key = try SigningKey.generate(.ed25519)
        var records: [ChangeRecord] = []
        for index in 0..<5_000 {
            records.append(ChangeRecord(operation: .insert, resource: "GA-RK-0001", position: SourcePosition(commit: 100, ordinal: UInt32(index)),
                                        key: [Column("id", .int8(Int64(index)))], values: [Column("name", .text("居民\(index)号"))]))
        }
        let batch = try BatchFile(bytes: try SampleBatches.seal(records, key: key))
        try Data(batch.compressedBody).write(to: URL(fileURLWithPath: directory + "/body.lz4"))
        try Subprocess.check(["lz4", "-d", "-f", "-q", directory + "/body.lz4", directory + "/body.bin"])
        let decompressed = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/body.bin")))
        #expect(decompressed == (try batch.decompressedBody()))
        #expect(decompressed.count == Int(batch.header.uncompressedLength))
    }

    @Test("govex decompresses what lz4 -1 compressed, and refuses a size that differs")
    func weDecompressLZ4Output() throws {
        let directory = Subprocess.temporaryDirectory()
        let original = Array((0..<3_000_000).map { UInt8(truncatingIfNeeded: ($0 / 7) &* 13) })
        try Data(original).write(to: URL(fileURLWithPath: directory + "/data.bin"))
        try Subprocess.check(["lz4", "-1", "-f", "-q", "--content-size", directory + "/data.bin", directory + "/data.lz4"])
        let frame = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/data.lz4")))
        let decompressed = try frame.withUnsafeBytes { try LZ4Frame.decompress($0, expectedSize: original.count) }
        #expect(decompressed == original)
        #expect(throws: LZ4Frame.Failure.self) { _ = try frame.withUnsafeBytes { try LZ4Frame.decompress($0, expectedSize: original.count - 1) } }
        #expect(throws: LZ4Frame.Failure.self) { _ = try frame.withUnsafeBytes { try LZ4Frame.decompress($0, expectedSize: original.count + 1) } }
    }
}
