import Crypto
import Foundation
import GovexWire

/// Signatures that tie a node's batch-signing key to the node, so that a TLS key alone is
/// never enough to sign data in the node's name:
/// - at enrollment the new key signs a statement naming the node and the token's hash
///   (proof of possession: nobody registers a public key they cannot sign with);
/// - at rotation the node's current key endorses the new one, and the new one signs too.
/// The statements differ by their first line, so one can never be replayed as the other.
public enum NodeKeyProof {
    public static func enrollmentStatement(node: String, token: String, keyPEM: String) -> [UInt8] {
        let tokenHash = Hex.encode(SHA256.hash(data: Array(token.utf8)))
        return Array("govex node key enrollment v1\n\(node)\n\(tokenHash)\n\(keyPEM)".utf8)
    }

    public static func rotationStatement(node: String, keyPEM: String) -> [UInt8] {
        Array("govex node key rotation v1\n\(node)\n\(keyPEM)".utf8)
    }

    /// Base64 of `key`'s signature over `statement`.
    public static func sign(_ statement: [UInt8], with key: SigningKey) throws -> String {
        Data(try statement.withUnsafeBytes { try key.signature(for: $0) }).base64EncodedString()
    }

    public static func isValid(_ signature: String?, over statement: [UInt8], by key: VerifyingKey) -> Bool {
        guard let signature, let bytes = Data(base64Encoded: signature) else { return false }
        return statement.withUnsafeBytes { key.isValidSignature(Array(bytes), for: $0) }
    }
}

/// `POST /v1/keys`: a new batch-signing key. `endorsement` is the current key's signature
/// over `NodeKeyProof.rotationStatement`; without a valid one the key waits for the hub's
/// administrator (`govex hub node accept-key`). `proof` is the new key's own signature.
public struct KeyRegistrationRequest: Codable, Sendable, Equatable {
    public var signingKey: String
    public var proof: String
    public var endorsedBy: String?
    public var endorsement: String?

    public init(signingKey: String, proof: String, endorsedBy: String?, endorsement: String?) {
        self.signingKey = signingKey
        self.proof = proof
        self.endorsedBy = endorsedBy
        self.endorsement = endorsement
    }

    enum CodingKeys: String, CodingKey {
        case signingKey = "signing_key", proof, endorsedBy = "endorsed_by", endorsement
    }

    /// A request for `fresh`, endorsed by `current` (nil: an administrator must accept it).
    public static func make(node: String, fresh: SigningKey, current: SigningKey?) throws -> KeyRegistrationRequest {
        let statement = NodeKeyProof.rotationStatement(node: node, keyPEM: fresh.publicKey.pem)
        return KeyRegistrationRequest(signingKey: fresh.publicKey.pem, proof: try NodeKeyProof.sign(statement, with: fresh),
                                      endorsedBy: current.map { Hex.encode($0.publicKey.keyID) },
                                      endorsement: try current.map { try NodeKeyProof.sign(statement, with: $0) })
    }
}

/// The hub's answer to `POST /v1/keys`.
public struct KeyRegistrationResponse: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable {
        /// Endorsed by a current key: batches signed with it are accepted from now on.
        case registered
        /// Not endorsed: nothing it signs is accepted until the administrator accepts it.
        case pendingAdministrator = "pending_administrator"
    }

    public var keyID: String
    public var status: Status

    public init(keyID: String, status: Status) {
        self.keyID = keyID
        self.status = status
    }

    enum CodingKeys: String, CodingKey {
        case keyID = "key_id", status
    }
}
