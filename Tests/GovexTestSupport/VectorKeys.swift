import Crypto
import GovexWire

/// The test vectors' Ed25519 keys, from fixed seeds: public test keys, never used
/// for anything else, that make the Ed25519 vectors reproducible byte for byte.
public enum VectorKeys {
    public static let gonganSeed: [UInt8] = Array(0..<32)
    public static let hubSeed: [UInt8] = Array((0..<32).map { 0xA0 &+ UInt8($0) })

    public static func ed25519(seed: [UInt8]) -> SigningKey {
        SigningKey(ed25519: try! Curve25519.Signing.PrivateKey(rawRepresentation: seed))
    }

    public static var gongan: SigningKey { ed25519(seed: gonganSeed) }
    public static var hub: SigningKey { ed25519(seed: hubSeed) }
}
