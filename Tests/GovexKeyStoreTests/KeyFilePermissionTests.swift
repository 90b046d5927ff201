import Foundation
import GovexKeyStore
import GovexWire
import Testing

@Suite("Key files")
struct KeyFilePermissionTests {
    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "govex-keys-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("keygen writes a 0600 private key and a 0644 public key that load back", arguments: SignatureAlgorithm.allCases)
    func generateAndLoad(algorithm: SignatureAlgorithm) throws {
        let directory = Self.temporaryDirectory() + "/keys"
        let generated = try KeyStore.generate(algorithm, directory: directory)
        let privateMode = try FileManager.default.attributesOfItem(atPath: generated.privateKeyPath)[.posixPermissions] as? Int
        let publicMode = try FileManager.default.attributesOfItem(atPath: generated.publicKeyPath)[.posixPermissions] as? Int
        #expect(privateMode == 0o600)
        #expect(publicMode == 0o644)
        let signing = try KeyStore.loadSigningKey(path: generated.privateKeyPath)
        let verifying = try KeyStore.loadVerifyingKey(path: generated.publicKeyPath)
        #expect(signing.algorithm == algorithm)
        #expect(signing.publicKey.keyID == verifying.keyID)
        let message = Array("一数一源".utf8)
        let signature = try message.withUnsafeBytes { try signing.signature(for: $0) }
        #expect(message.withUnsafeBytes { verifying.isValidSignature(signature, for: $0) })
    }

    @Test("a private key readable by group or others is refused with the fix", arguments: [0o640, 0o604, 0o644, 0o666])
    func refusesOpenKey(mode: Int) throws {
        let directory = Self.temporaryDirectory()
        let generated = try KeyStore.generate(.ed25519, directory: directory)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: generated.privateKeyPath)
        #expect {
            _ = try KeyStore.loadSigningKey(path: generated.privateKeyPath)
        } throws: { error in
            guard let error = error as? KeyStoreError, case .tooOpen = error else { return false }
            return error.description.contains("chmod 600 \(generated.privateKeyPath)")
        }
    }

    @Test("keygen never overwrites an existing key")
    func neverOverwrites() throws {
        let directory = Self.temporaryDirectory()
        _ = try KeyStore.generate(.ed25519, directory: directory)
        #expect(throws: KeyStoreError.self) { _ = try KeyStore.generate(.sm2, directory: directory) }
    }

    @Test("a file that is not a key is refused with a reason")
    func refusesGarbage() throws {
        let directory = Self.temporaryDirectory()
        let path = directory + "/junk.pub"
        try "hello".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: KeyStoreError.self) { _ = try KeyStore.loadVerifyingKey(path: path) }
    }
}
