import Foundation
import GovexTestSupport
import GovexWire
import Testing

/// govex's signatures interoperate with the `openssl` command in both directions:
/// plain Ed25519, and SM2 over SM3 with the standard identifier 1234567812345678.
@Suite("openssl cross-checks")
struct OpenSSLCrossCheckTests {
    static func opensslDigestOptions(_ algorithm: SignatureAlgorithm) -> [String] {
        switch algorithm {
        case .ed25519: return ["-rawin"]
        case .sm2: return ["-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678"]
        }
    }

    static func writeKeys(_ key: SigningKey, in directory: String) throws -> (privatePath: String, publicPath: String) {
        let privatePath = directory + "/key.pem"
        let publicPath = directory + "/pub.pem"
        try key.pkcs8PEM().write(toFile: privatePath, atomically: true, encoding: .utf8)
        try key.publicKey.pem.write(toFile: publicPath, atomically: true, encoding: .utf8)
        return (privatePath, publicPath)
    }

    @Test("openssl verifies a batch signature govex made", arguments: SignatureAlgorithm.allCases)
    func govexSignsOpenSSLVerifies(algorithm: SignatureAlgorithm) throws {
        let directory = Subprocess.temporaryDirectory()
        let key = try SigningKey.generate(algorithm)
        let (_, publicPath) = try Self.writeKeys(key, in: directory)
        let batch = try BatchFile(bytes: try SampleBatches.seal(SampleBatches.mixedRecords(), key: key))
        try Data(batch.signedRegion).write(to: URL(fileURLWithPath: directory + "/signed.bin"))
        try Data(batch.signature).write(to: URL(fileURLWithPath: directory + "/signature.bin"))
        let output = try Subprocess.check(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", publicPath]
            + Self.opensslDigestOptions(algorithm) + ["-in", directory + "/signed.bin", "-sigfile", directory + "/signature.bin"])
        #expect(output.contains("Signature Verified Successfully"))

        // The same check must fail for a changed message, or it proves nothing.
        var tampered = batch.signedRegion
        tampered[20] ^= 1
        try Data(tampered).write(to: URL(fileURLWithPath: directory + "/tampered.bin"))
        let rejected = try Subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", publicPath]
            + Self.opensslDigestOptions(algorithm) + ["-in", directory + "/tampered.bin", "-sigfile", directory + "/signature.bin"])
        #expect(!rejected.succeeded)
    }

    @Test("govex verifies a signature openssl made with a key openssl generated", arguments: SignatureAlgorithm.allCases)
    func openSSLSignsGovexVerifies(algorithm: SignatureAlgorithm) throws {
        let directory = Subprocess.temporaryDirectory()
        let privatePath = directory + "/openssl-key.pem"
        switch algorithm {
        case .ed25519: try Subprocess.check(["openssl", "genpkey", "-algorithm", "ed25519", "-out", privatePath])
        case .sm2: try Subprocess.check(["openssl", "genpkey", "-algorithm", "sm2", "-out", privatePath])
        }
        try Subprocess.check(["openssl", "pkey", "-in", privatePath, "-pubout", "-out", directory + "/openssl-pub.pem"])
        let message = Array("政务信息资源共享 — one source, one number".utf8)
        try Data(message).write(to: URL(fileURLWithPath: directory + "/message.bin"))
        try Subprocess.check(["openssl", "pkeyutl", "-sign", "-inkey", privatePath] + Self.opensslDigestOptions(algorithm)
            + ["-in", directory + "/message.bin", "-out", directory + "/signature.bin"])

        let publicKey = try VerifyingKey(pem: String(contentsOfFile: directory + "/openssl-pub.pem", encoding: .utf8))
        let signature = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/signature.bin")))
        #expect(publicKey.algorithm == algorithm)
        #expect(message.withUnsafeBytes { publicKey.isValidSignature(signature, for: $0) })
        var changed = message
        changed[0] ^= 1
        #expect(!changed.withUnsafeBytes { publicKey.isValidSignature(signature, for: $0) })

        // And govex can sign with openssl's private key.
        let signingKey = try SigningKey(pem: String(contentsOfFile: privatePath, encoding: .utf8))
        #expect(signingKey.publicKey.keyID == publicKey.keyID)
    }

    @Test("SM3 and SHA-256 digests match openssl dgst", arguments: DigestAlgorithm.allCases)
    func digestsMatch(algorithm: DigestAlgorithm) throws {
        let directory = Subprocess.temporaryDirectory()
        let data = Array((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try Data(data).write(to: URL(fileURLWithPath: directory + "/data.bin"))
        let output = try Subprocess.check(["openssl", "dgst", "-\(algorithm)", "-r", directory + "/data.bin"])
        #expect(output.hasPrefix(Hex.encode(algorithm.hash(data))))
    }
}
