import COpenSSL
import Crypto

/// The two signature suites of batch format v1. Each fixes its digest:
/// Ed25519 goes with SHA-256, SM2 with SM3 (GB/T 32918 / GB/T 32905).
public enum SignatureAlgorithm: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case ed25519 = 1
    case sm2 = 2

    public var description: String {
        switch self {
        case .ed25519: return "ed25519"
        case .sm2: return "sm2"
        }
    }

    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = match
    }

    /// Ed25519 signatures are 64 bytes; SM2's DER (r, s) is at most 72.
    public var maxSignatureLength: Int {
        switch self {
        case .ed25519: return 64
        case .sm2: return 72
        }
    }

    public var digest: DigestAlgorithm {
        switch self {
        case .ed25519: return .sha256
        case .sm2: return .sm3
        }
    }
}

public enum KeyError: Error, Equatable, CustomStringConvertible {
    case notPEM(String)
    case unsupportedKey(String)
    case generationFailed(String)
    case signingFailed(String)

    public var description: String {
        switch self {
        case .notPEM(let what): return "not a PEM key: \(what)"
        case .unsupportedKey(let what): return "unsupported key: \(what); govex uses Ed25519 or SM2 keys (generate one with `govex keygen`)"
        case .generationFailed(let what): return "key generation failed: \(what)"
        case .signingFailed(let what): return "signing failed: \(what)"
        }
    }
}

/// SM2's distinguishing identifier. OpenSSL 3.0 signs with an empty one unless
/// told otherwise, which no other SM2 implementation accepts; GB/T 35276 fixes this default.
let sm2DistinguishingID: [UInt8] = Array("1234567812345678".utf8)

/// Owns an OpenSSL `EVP_PKEY` so that it is freed exactly once.
final class OpenSSLKey: @unchecked Sendable {
    // EVP_PKEY is reference-counted and safe to use from several threads for signing and verifying.
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { EVP_PKEY_free(pointer) }

    static func generateSM2() throws(KeyError) -> OpenSSLKey {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "SM2", nil) else { throw .generationFailed("OpenSSL has no SM2") }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer? = nil
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_generate(context, &key) == 1, let key else {
            throw .generationFailed("OpenSSL could not generate an SM2 key")
        }
        return OpenSSLKey(key)
    }

    /// DER SubjectPublicKeyInfo.
    func publicKeyDER() -> [UInt8] {
        let length = i2d_PUBKEY(pointer, nil)
        guard length > 0 else { return [] }
        var der = [UInt8](repeating: 0, count: Int(length))
        der.withUnsafeMutableBufferPointer { buffer in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            _ = i2d_PUBKEY(pointer, &cursor)
        }
        return der
    }

    /// DER PKCS#8 PrivateKeyInfo.
    func privateKeyDER() throws(KeyError) -> [UInt8] {
        guard let info = EVP_PKEY2PKCS8(pointer) else { throw .unsupportedKey("OpenSSL could not export the private key") }
        defer { PKCS8_PRIV_KEY_INFO_free(info) }
        let length = i2d_PKCS8_PRIV_KEY_INFO(info, nil)
        var der = [UInt8](repeating: 0, count: Int(max(length, 0)))
        der.withUnsafeMutableBufferPointer { buffer in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            _ = i2d_PKCS8_PRIV_KEY_INFO(info, &cursor)
        }
        return der
    }

    static func parsePublic(_ der: [UInt8]) -> OpenSSLKey? {
        der.withUnsafeBufferPointer { buffer -> OpenSSLKey? in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            guard let key = d2i_PUBKEY(nil, &cursor, buffer.count) else { return nil }
            return OpenSSLKey(key)
        }
    }

    static func parsePrivate(_ der: [UInt8]) -> OpenSSLKey? {
        der.withUnsafeBufferPointer { buffer -> OpenSSLKey? in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            guard let info = d2i_PKCS8_PRIV_KEY_INFO(nil, &cursor, buffer.count) else { return nil }
            defer { PKCS8_PRIV_KEY_INFO_free(info) }
            guard let key = EVP_PKCS82PKEY(info) else { return nil }
            return OpenSSLKey(key)
        }
    }

    var isSM2: Bool { EVP_PKEY_is_a(pointer, "SM2") == 1 }

    /// Runs a DigestSign/DigestVerify operation with SM3 and the standard SM2 identifier set.
    func withSM2Context<T>(_ body: (OpaquePointer) -> T?) -> T? {
        guard let mdContext = EVP_MD_CTX_new() else { return nil }
        defer { EVP_MD_CTX_free(mdContext) }
        guard let keyContext = EVP_PKEY_CTX_new(pointer, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(keyContext) }
        let idSet = sm2DistinguishingID.withUnsafeBytes { EVP_PKEY_CTX_set1_id(keyContext, $0.baseAddress, Int32($0.count)) }
        guard idSet == 1 else { return nil }
        EVP_MD_CTX_set_pkey_ctx(mdContext, keyContext)
        return body(mdContext)
    }

    func signSM2(_ message: UnsafeRawBufferPointer) -> [UInt8]? {
        withSM2Context { context -> [UInt8]? in
            guard EVP_DigestSignInit(context, nil, EVP_sm3(), nil, pointer) == 1 else { return nil }
            var length = 0
            let base = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
            guard EVP_DigestSign(context, nil, &length, base, message.count) == 1 else { return nil }
            var signature = [UInt8](repeating: 0, count: length)
            let ok = signature.withUnsafeMutableBufferPointer { EVP_DigestSign(context, $0.baseAddress, &length, base, message.count) }
            guard ok == 1 else { return nil }
            return Array(signature.prefix(length))
        }
    }

    func verifySM2(signature: [UInt8], message: UnsafeRawBufferPointer) -> Bool {
        withSM2Context { context -> Bool in
            guard EVP_DigestVerifyInit(context, nil, EVP_sm3(), nil, pointer) == 1 else { return false }
            let base = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
            return signature.withUnsafeBufferPointer { EVP_DigestVerify(context, $0.baseAddress, $0.count, base, message.count) } == 1
        } ?? false
    }
}

/// DER prefixes of RFC 8410 Ed25519 keys; the 32 key bytes follow each.
enum Ed25519DER {
    static let publicPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]
    static let privatePrefix: [UInt8] = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]

    static func keyBytes(_ der: [UInt8], prefix: [UInt8]) -> [UInt8]? {
        guard der.count == prefix.count + 32, der.starts(with: prefix) else { return nil }
        return Array(der.dropFirst(prefix.count))
    }
}

/// A public key that verifies batch signatures.
public struct VerifyingKey: Sendable {
    enum Backing: Sendable {
        case ed25519(Curve25519.Signing.PublicKey)
        case sm2(OpenSSLKey)
    }

    let backing: Backing
    /// DER SubjectPublicKeyInfo, the form the key id is computed from.
    public let der: [UInt8]

    init(backing: Backing, der: [UInt8]) {
        self.backing = backing
        self.der = der
    }

    public var algorithm: SignatureAlgorithm {
        switch backing {
        case .ed25519: return .ed25519
        case .sm2: return .sm2
        }
    }

    /// The first 16 bytes of SHA-256 over the DER SubjectPublicKeyInfo.
    public var keyID: [UInt8] { Array(SHA256.hash(data: der).prefix(16)) }

    public var pem: String { PEM.encode(label: "PUBLIC KEY", der: der) }

    public init(der: [UInt8]) throws(KeyError) {
        if let raw = Ed25519DER.keyBytes(der, prefix: Ed25519DER.publicPrefix) {
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { throw .unsupportedKey("malformed Ed25519 public key") }
            self.init(backing: .ed25519(key), der: der)
            return
        }
        guard let key = OpenSSLKey.parsePublic(der) else { throw .unsupportedKey("not a DER SubjectPublicKeyInfo that OpenSSL reads") }
        guard key.isSM2 else { throw .unsupportedKey("the public key is neither Ed25519 nor SM2") }
        self.init(backing: .sm2(key), der: der)
    }

    public init(pem: String) throws(KeyError) {
        guard let (label, der) = PEM.decode(pem) else { throw .notPEM("no -----BEGIN PUBLIC KEY----- block") }
        guard label == "PUBLIC KEY" else { throw .notPEM("found a \(label) block where a PUBLIC KEY was expected") }
        try self.init(der: der)
    }

    public func isValidSignature(_ signature: [UInt8], for message: UnsafeRawBufferPointer) -> Bool {
        switch backing {
        case .ed25519(let key):
            return key.isValidSignature(signature, for: message)
        case .sm2(let key):
            return key.verifySM2(signature: signature, message: message)
        }
    }
}

/// A private key that signs batches. Never logged, never printed.
public struct SigningKey: Sendable {
    enum Backing: Sendable {
        case ed25519(Curve25519.Signing.PrivateKey)
        case sm2(OpenSSLKey)
    }

    let backing: Backing
    public let publicKey: VerifyingKey

    public var algorithm: SignatureAlgorithm { publicKey.algorithm }

    public static func generate(_ algorithm: SignatureAlgorithm) throws(KeyError) -> SigningKey {
        switch algorithm {
        case .ed25519:
            return SigningKey(ed25519: Curve25519.Signing.PrivateKey())
        case .sm2:
            let key = try OpenSSLKey.generateSM2()
            return SigningKey(backing: .sm2(key), publicKey: VerifyingKey(backing: .sm2(key), der: key.publicKeyDER()))
        }
    }

    init(backing: Backing, publicKey: VerifyingKey) {
        self.backing = backing
        self.publicKey = publicKey
    }

    public init(ed25519 key: Curve25519.Signing.PrivateKey) {
        let der = Ed25519DER.publicPrefix + Array(key.publicKey.rawRepresentation)
        self.init(backing: .ed25519(key), publicKey: VerifyingKey(backing: .ed25519(key.publicKey), der: der))
    }

    /// PKCS#8 PEM ("PRIVATE KEY"), readable by `openssl pkey`.
    public func pkcs8PEM() throws(KeyError) -> String {
        switch backing {
        case .ed25519(let key):
            return PEM.encode(label: "PRIVATE KEY", der: Ed25519DER.privatePrefix + Array(key.rawRepresentation))
        case .sm2(let key):
            return PEM.encode(label: "PRIVATE KEY", der: try key.privateKeyDER())
        }
    }

    public init(pem: String) throws(KeyError) {
        guard let (label, der) = PEM.decode(pem) else { throw .notPEM("no -----BEGIN PRIVATE KEY----- block") }
        guard label == "PRIVATE KEY" else { throw .notPEM("found a \(label) block where a PKCS#8 PRIVATE KEY was expected") }
        if let raw = Ed25519DER.keyBytes(der, prefix: Ed25519DER.privatePrefix) {
            guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else { throw .unsupportedKey("malformed Ed25519 private key") }
            self.init(ed25519: key)
            return
        }
        guard let key = OpenSSLKey.parsePrivate(der) else { throw .unsupportedKey("not a PKCS#8 private key that OpenSSL reads") }
        guard key.isSM2 else { throw .unsupportedKey("the private key is neither Ed25519 nor SM2") }
        self.init(backing: .sm2(key), publicKey: VerifyingKey(backing: .sm2(key), der: key.publicKeyDER()))
    }

    public func signature(for message: UnsafeRawBufferPointer) throws(KeyError) -> [UInt8] {
        switch backing {
        case .ed25519(let key):
            do { return Array(try key.signature(for: message)) } catch { throw .signingFailed("Ed25519: \(error)") }
        case .sm2(let key):
            guard let signature = key.signSM2(message) else { throw .signingFailed("OpenSSL SM2 signing failed") }
            return signature
        }
    }
}
