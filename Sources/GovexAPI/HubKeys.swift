import Foundation
import GovexWire

/// A hub signing key introduced by rotation, vouched for by the key it replaces: agents
/// that trust the old key learn the new one from the hub without anyone copying files.
public struct HubKeyEndorsement: Codable, Sendable, Equatable {
    public var key: String
    /// Hex id of the key that signed this endorsement.
    public var endorsedBy: String
    /// Base64 signature over `statement(for: key)`.
    public var signature: String

    public init(key: String, endorsedBy: String, signature: String) {
        self.key = key
        self.endorsedBy = endorsedBy
        self.signature = signature
    }

    static func statement(for keyPEM: String) -> [UInt8] { Array(("govex hub signing key endorsement\n" + keyPEM).utf8) }

    public static func endorse(_ newKey: VerifyingKey, with oldKey: SigningKey) throws -> HubKeyEndorsement {
        let signature = try statement(for: newKey.pem).withUnsafeBytes { try oldKey.signature(for: $0) }
        return HubKeyEndorsement(key: newKey.pem, endorsedBy: Hex.encode(oldKey.publicKey.keyID), signature: Data(signature).base64EncodedString())
    }

    /// Every key reachable from `trusted` through valid endorsements (in any order), trusted ones first.
    public static func extend(_ trusted: [VerifyingKey], with endorsements: [HubKeyEndorsement]) -> [VerifyingKey] {
        var keys = trusted
        var grew = true
        while grew {
            grew = false
            for endorsement in endorsements {
                guard let key = try? VerifyingKey(pem: endorsement.key), !keys.contains(where: { $0.keyID == key.keyID }),
                      let signer = keys.first(where: { Hex.encode($0.keyID) == endorsement.endorsedBy }),
                      let signature = Data(base64Encoded: endorsement.signature),
                      statement(for: endorsement.key).withUnsafeBytes({ signer.isValidSignature(Array(signature), for: $0) }) else { continue }
                keys.append(key)
                grew = true
            }
        }
        return keys
    }
}

extension SignedReceipt {
    /// The hub key id the payload names, read before verification to pick the key to verify with.
    public var claimedKeyID: String? {
        struct Claim: Decodable { let hubKeyID: String }
        return (try? JSONDecoder().decode(Claim.self, from: Data(payload)))?.hubKeyID
    }
}
