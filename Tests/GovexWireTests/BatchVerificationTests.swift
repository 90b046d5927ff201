@testable import GovexWire
import GovexTestSupport
import Testing

/// Each way a batch can be wrong is reported as that way, not as a generic failure.
@Suite("Batch verification reasons")
struct BatchVerificationTests {
    static let key = try! SigningKey.generate(.ed25519)
    static let file = try! SampleBatches.seal(SampleBatches.mixedRecords(), key: key)

    static func parseAndVerify(_ bytes: [UInt8], with key: VerifyingKey = key.publicKey) throws(BatchError) {
        let batch = try BatchFile(bytes: bytes)
        try batch.verify(with: key)
        _ = try batch.records()
    }

    static var signatureOffset: Int {
        Int(UInt32(file[10]) << 24 | UInt32(file[11]) << 16 | UInt32(file[12]) << 8 | UInt32(file[13])) + BatchHeader.preambleLength
    }

    @Test("truncation anywhere is reported as truncation")
    func truncated() {
        for length in stride(from: 0, to: Self.file.count, by: 97) + [Self.file.count - 1] {
            #expect {
                try Self.parseAndVerify(Array(Self.file.prefix(length)))
            } throws: { error in
                guard case .truncated = error as? BatchError else { return false }
                return true
            }
        }
    }

    @Test("a changed body byte is a digest mismatch")
    func corruptedBody() {
        var bytes = Self.file
        bytes[bytes.count - 10] ^= 0x40
        #expect { try Self.parseAndVerify(bytes) } throws: { error in
            guard case .digestMismatch = error as? BatchError else { return false }
            return true
        }
    }

    @Test("a changed header byte breaks the signature")
    func tamperedHeader() {
        var bytes = Self.file
        bytes[BatchHeader.preambleLength + 1] ^= 0x01   // a letter of the node id
        #expect(throws: BatchError.badSignature) { try Self.parseAndVerify(bytes) }
        var sequence = Self.file
        sequence[BatchHeader.preambleLength + 1 + 6 + 8 + 7] ^= 0x01   // low byte of the sequence
        #expect(throws: BatchError.badSignature) { try Self.parseAndVerify(sequence) }
    }

    @Test("a changed signature byte breaks the signature")
    func tamperedSignature() {
        var bytes = Self.file
        bytes[Self.signatureOffset + 2 + 5] ^= 0x80
        #expect(throws: BatchError.badSignature) { try Self.parseAndVerify(bytes) }
    }

    @Test("another key of the same algorithm is the wrong key")
    func wrongKey() throws {
        let other = try SigningKey.generate(.ed25519)
        #expect { try Self.parseAndVerify(Self.file, with: other.publicKey) } throws: { error in
            guard case .wrongKey = error as? BatchError else { return false }
            return true
        }
    }

    @Test("a key of the other algorithm is the wrong algorithm")
    func wrongAlgorithm() throws {
        let sm2 = try SigningKey.generate(.sm2)
        #expect(throws: BatchError.algorithmMismatch(batch: "ed25519", key: "sm2")) { try Self.parseAndVerify(Self.file, with: sm2.publicKey) }
    }

    @Test("an unknown version, bad magic and trailing bytes are named")
    func structure() {
        var version = Self.file
        version[9] = 2
        #expect(throws: BatchError.unsupportedVersion(2)) { try Self.parseAndVerify(version) }
        var magic = Self.file
        magic[1] = UInt8(ascii: "X")
        #expect(throws: BatchError.badMagic) { try Self.parseAndVerify(magic) }
        #expect(throws: BatchError.trailingBytes(3)) { try Self.parseAndVerify(Self.file + [1, 2, 3]) }
    }

    @Test("a signed but malformed body is a corrupted body, not a crash")
    func signedGarbageBody() throws {
        let garbage: [UInt8] = Array(repeating: 0xAB, count: 300)
        let header = try BatchFile(bytes: Self.file).header
        let file = try BatchSealer.seal(compressedBody: garbage, uncompressedLength: Int(header.uncompressedLength), header: header, key: Self.key)
        #expect { try Self.parseAndVerify(file) } throws: { error in
            guard case .corruptBody = error as? BatchError else { return false }
            return true
        }
    }

    @Test("an unknown critical extension is refused, an unknown optional one is skipped")
    func extensions() throws {
        var metadata = SampleBatches.metadata()
        metadata.extensions = [HeaderExtension(type: 9, isCritical: true, data: [1])]
        let critical = try SampleBatches.seal(SampleBatches.mixedRecords(), key: Self.key, metadata: metadata)
        #expect(throws: BatchError.unknownCriticalExtension(9)) { try Self.parseAndVerify(critical) }
        metadata.extensions = [HeaderExtension(type: 9, isCritical: false, data: [1])]
        let optional = try SampleBatches.seal(SampleBatches.mixedRecords(), key: Self.key, metadata: metadata)
        try Self.parseAndVerify(optional)
    }

    @Test("limits are enforced from the header, before decompressing")
    func limits() throws {
        let small = BatchLimits(maxRecords: 3)
        #expect(throws: BatchError.limitExceeded(what: "record_count", value: UInt64(SampleBatches.mixedRecords().count), limit: 3)) {
            _ = try BatchFile(bytes: Self.file, limits: small)
        }
        let tiny = BatchLimits(maxUncompressedBytes: 100)
        #expect { _ = try BatchFile(bytes: Self.file, limits: tiny) } throws: { error in
            guard case .limitExceeded(let what, _, _) = error as? BatchError else { return false }
            return what == "uncompressed_length"
        }
    }
}
