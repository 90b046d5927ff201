@testable import GovexWire
import GovexTestSupport
import Testing

@Suite("Varint lengths")
struct VarintTests {
    static func encode(_ value: UInt32) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(upTo: 5) { $0.putVarint(value) }
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> UInt32 {
        try bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let value = try reader.readVarint()
            guard reader.isAtEnd else { throw ByteReader.Failure.invalidVarint(offset: reader.offset) }
            return value
        }
    }

    @Test("values round-trip in the shortest form", arguments: [UInt32(0), 1, 127, 128, 300, 16_383, 16_384, 1 << 21, 1 << 28, .max])
    func roundTrip(value: UInt32) throws {
        let bytes = Self.encode(value)
        #expect(bytes.count == max(1, (32 - value.leadingZeroBitCount + 6) / 7))
        #expect(try Self.decode(bytes) == value)
    }

    static let known: [(UInt32, [UInt8])] = [
        (0, [0x00]), (1, [0x01]), (127, [0x7F]), (128, [0x80, 0x01]), (300, [0xAC, 0x02]), (.max, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
    ]

    @Test("known encodings", arguments: known)
    func knownEncodings(value: UInt32, bytes: [UInt8]) throws {
        #expect(Self.encode(value) == bytes)
    }

    @Test("overlong, oversized and truncated varints are refused", arguments: [
        [UInt8(0x80), 0x00], [0x81, 0x80, 0x00], [0xFF, 0xFF, 0xFF, 0xFF, 0x10], [0x80, 0x80, 0x80, 0x80, 0x80, 0x01], [0x80], [],
    ])
    func refused(bytes: [UInt8]) {
        #expect(throws: ByteReader.Failure.self) { _ = try Self.decode(bytes) }
    }

    @Test("a record that follows a previous position needs one")
    func followsNeedsPrevious() throws {
        var encoder = BatchBodyEncoder()
        try encoder.append(ChangeRecord(operation: .delete, resource: "R", position: SourcePosition(commit: 9, ordinal: 0), key: [Column("id", .int4(1))]))
        try encoder.append(ChangeRecord(operation: .delete, resource: "R", position: SourcePosition(commit: 9, ordinal: 1), key: [Column("id", .int4(2))]))
        var body = encoder.bytes
        // The schema entry is 1+2+2+2+2+2 = 11 bytes; the first record's flags byte follows its tag.
        #expect(body[12] == 0, "the first record carries its position")
        #expect(body[11 + 1 + 1 + 2 + 12 + 5 + 1] == RecordFlags.followsPrevious, "the second record follows the first")
        body[12] = RecordFlags.followsPrevious
        let key = try SigningKey.generate(.ed25519)
        let header = try BatchFile(bytes: BatchSealer.seal(encoder, metadata: SampleBatches.metadata(), key: key)).header
        #expect(throws: BatchError.self) {
            try body.withUnsafeBytes { raw in
                var decoder = BatchBodyDecoder(body: raw, header: header)
                while try decoder.next() != nil {}
            }
        }
    }
}
