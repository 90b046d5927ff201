import Foundation
import GovexWire

/// What the hub decided on a stored batch.
public enum ReceiptStatus: String, Codable, Sendable {
    /// Stored and routed; the agent drops it from its spool.
    case accepted
    /// Stored as rejected with the reason (it consumed its sequence); the agent quarantines it.
    case rejected
}

/// The hub's signed answer for a stored batch, accepted or rejected. The agent deletes a
/// batch from its spool only after verifying one. The signature covers the exact payload
/// bytes (canonical JSON: sorted keys, no spaces), which travel base64-encoded beside it.
public struct Receipt: Codable, Sendable, Equatable {
    public var node: String
    /// Epoch and sequence as decimal strings: JSON numbers lose precision past 2^53.
    public var epoch: String
    public var sequence: String
    /// SHA-256 of the whole batch file, hex.
    public var digest: String
    public var status: ReceiptStatus
    public var reason: String?
    /// When the hub stored it, RFC 3339 UTC.
    public var receivedAt: String
    /// The hub signing key's id, hex.
    public var hubKeyID: String
    /// The audit trail's head once this batch was recorded: an anchor the agent keeps, so
    /// that a rewritten chain is caught (`govex hub audit verify --anchors`).
    public var auditEntry: String?
    public var auditDigest: String?

    public init(node: String, epoch: UInt64, sequence: UInt64, digest: [UInt8], accepted: Bool, reason: String?,
                receivedAt: String, hubKeyID: [UInt8], audit: (entry: UInt64, digest: [UInt8])? = nil) {
        self.node = node
        self.epoch = String(epoch)
        self.sequence = String(sequence)
        self.digest = Hex.encode(digest)
        self.status = accepted ? .accepted : .rejected
        self.reason = reason
        self.receivedAt = receivedAt
        self.hubKeyID = Hex.encode(hubKeyID)
        self.auditEntry = audit.map { String($0.entry) }
        self.auditDigest = audit.map { Hex.encode($0.digest) }
    }
}

public struct SignedReceipt: Sendable, Equatable {
    public let payload: [UInt8]
    public let signature: [UInt8]

    public static func sign(_ receipt: Receipt, with key: SigningKey) throws -> SignedReceipt {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let payload = Array(try encoder.encode(receipt))
        let signature = try payload.withUnsafeBytes { try key.signature(for: $0) }
        return SignedReceipt(payload: payload, signature: signature)
    }

    /// The JSON the hub sends: `{"receipt":"<base64 payload>","signature":"<base64>"}`.
    public var wire: [UInt8] {
        Array("{\"receipt\":\"\(Data(payload).base64EncodedString())\",\"signature\":\"\(Data(signature).base64EncodedString())\"}".utf8)
    }

    public init(payload: [UInt8], signature: [UInt8]) {
        self.payload = payload
        self.signature = signature
    }

    public init(wire: [UInt8]) throws {
        struct Envelope: Decodable {
            let receipt: String
            let signature: String
        }
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(wire)),
              let payload = Data(base64Encoded: envelope.receipt), let signature = Data(base64Encoded: envelope.signature) else {
            throw ReceiptError("not a receipt: expected {\"receipt\": base64, \"signature\": base64}")
        }
        self.init(payload: Array(payload), signature: Array(signature))
    }

    /// The receipt, once its signature checks out against the hub's key.
    public func verified(with key: VerifyingKey) throws -> Receipt {
        guard payload.withUnsafeBytes({ key.isValidSignature(signature, for: $0) }) else {
            throw ReceiptError("the receipt's signature does not verify with the hub's key")
        }
        do {
            return try JSONDecoder().decode(Receipt.self, from: Data(payload))
        } catch {
            throw ReceiptError("the receipt's payload is not a receipt: \(error)")
        }
    }
}

public struct ReceiptError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
