@testable import GovexWire
import GovexTestSupport
import Testing

/// Decoding arbitrary bytes never crashes, never allocates from an unchecked
/// length, and every mutated batch is refused with a thrown error.
/// `.ci/run` runs this suite a second time under `ulimit -v`, so a length field
/// that made the decoder allocate past the limits below would kill the process.
@Suite("Mutated and truncated batches")
struct MutatedBatchTests {
    /// Small limits: anything the decoder allocates is bounded by these, whatever the input says.
    static let limits = BatchLimits(maxHeaderBytes: 64 * 1024, maxRecords: 1_000, maxUncompressedBytes: 1 << 20)

    static func smallRecords() -> [ChangeRecord] {
        Array(SampleBatches.mixedRecords().suffix(5))
    }

    /// Every way of reading the bytes: trusted (verify first) and untrusted (decode without verifying).
    /// Returns whether the trusted path threw; the untrusted path must merely not crash.
    static func trustedPathThrows(_ bytes: [UInt8], key: VerifyingKey) -> Bool {
        if let batch = try? BatchFile(bytes: bytes, limits: limits) {
            _ = try? batch.records()
        }
        do {
            let batch = try BatchFile(bytes: bytes, limits: limits)
            try batch.verify(with: key)
            _ = try batch.records()
            return false
        } catch {
            return true
        }
    }

    static func mutate(_ original: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = original
        switch rng.next() % 6 {
        case 0, 1:   // flip one to three bits
            for _ in 0...(rng.next() % 3) {
                let index = Int(rng.next() % UInt64(bytes.count))
                bytes[index] ^= 1 << UInt8(rng.next() % 8)
            }
        case 2:      // a length-sized field set huge: 1, 2, 4 or 8 bytes of 0xFF / 0x7F
            let width = [1, 2, 4, 8][Int(rng.next() % 4)]
            let index = Int(rng.next() % UInt64(bytes.count - width))
            for offset in 0..<width { bytes[index + offset] = offset == 0 && rng.next() % 2 == 0 ? 0x7F : 0xFF }
        case 3:      // truncate at a random point
            bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))
        case 4:      // insert or delete a byte
            let index = Int(rng.next() % UInt64(bytes.count))
            if rng.next() % 2 == 0 { bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: index) } else { bytes.remove(at: index) }
        default:     // overwrite a random byte with a random value
            let index = Int(rng.next() % UInt64(bytes.count))
            let value = UInt8(truncatingIfNeeded: rng.next())
            bytes[index] = value == bytes[index] ? value ^ 0x55 : value
        }
        return bytes
    }

    @Test("100,000 mutated batches and every truncation are all refused", arguments: SignatureAlgorithm.allCases)
    func mutatedBatchesAreRefused(algorithm: SignatureAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let file = try SampleBatches.seal(Self.smallRecords(), key: key)
        var accepted: [String] = []
        for length in 0..<file.count where !Self.trustedPathThrows(Array(file.prefix(length)), key: key.publicKey) {
            accepted.append("truncated to \(length)")
        }
        var rng = SplitMix64(state: 0x60E7 &+ UInt64(algorithm.rawValue))
        let mutants = algorithm == .ed25519 ? 100_000 : 10_000
        for index in 0..<mutants {
            let mutant = Self.mutate(file, &rng)
            if mutant != file, !Self.trustedPathThrows(mutant, key: key.publicKey) { accepted.append("mutant \(index)") }
        }
        #expect(accepted.isEmpty, "accepted: \(accepted.prefix(10))")
        #expect(!Self.trustedPathThrows(file, key: key.publicKey), "the unmutated batch must verify")
    }

    /// Re-signing mutated bodies takes the mutations past the digest and signature,
    /// straight into decompression and record decoding.
    @Test("validly signed but mutated bodies decode or throw, never crash")
    func signedMutatedBodies() throws {
        let key = try SigningKey.generate(.ed25519)
        let file = try SampleBatches.seal(Self.smallRecords(), key: key)
        let original = try BatchFile(bytes: file)
        let body = try original.decompressedBody()
        var rng = SplitMix64(state: 0xB0D1)
        var threw = 0
        let mutants = 20_000
        for _ in 0..<mutants {
            let mutatedBody = Self.mutate(body, &rng)
            let compressed = try mutatedBody.withUnsafeBytes { try LZ4Frame.compress($0) }
            let file = try BatchSealer.seal(compressedBody: compressed, uncompressedLength: mutatedBody.count, header: original.header, key: key)
            do {
                let batch = try BatchFile(bytes: file, limits: Self.limits)
                try batch.verify(with: key.publicKey)
                _ = try batch.records()
            } catch {
                threw += 1
            }
        }
        // Most body mutations break structure; some only change a value and stay decodable.
        #expect(threw > mutants / 2, "only \(threw) of \(mutants) mutated bodies were refused")
    }
}
