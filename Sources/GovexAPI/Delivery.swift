import GovexPolicy
import GovexWire

/// A delivery: one stored provider batch re-issued by the hub to one subscription, as a
/// batch file of kind `delivery` signed by the hub. Its header's node is `hub`, its
/// epoch the subscription id and its sequence the position in that subscription's
/// stream; its provenance names the provider's batch and carries the provider's
/// signed header. Both ends of the exchange use this one definition.
public enum Delivery {
    public static let hubNodeID = "hub"

    /// The delivery of `origin` (already verified at ingest) to a subscription of
    /// `resource` under `policy`: only that resource's records, only its columns (keys
    /// always), only rows inside its filter, with its masks. When that leaves the
    /// provider's body as it was, the body is passed on byte for byte, so the subscriber
    /// can check the provider's signature over it too. `columnNames`, the columns the
    /// origin's records use (recorded at ingest), lets a policy that changes nothing say so
    /// without the body being decoded.
    public static func issue(origin: BatchFile, columnNames: [String]? = nil, subscriptionID: Int64, delivery: UInt64, resource: String,
                             policy: SharingPolicy, hubKey: SigningKey, createdAt: Int64) throws -> [UInt8] {
        let unchanged = columnNames.map { policy.leavesUnchanged(batchResources: origin.header.resources, columnNames: $0, resource: resource) } ?? false
        let shaped = unchanged ? nil : try policy.apply(to: try origin.records(), resource: resource)
        let provenance = Provenance(of: origin)
        guard let shaped else {
            var header = origin.header
            header.nodeID = hubNodeID
            header.nodeEpoch = UInt64(subscriptionID)
            header.sequence = delivery
            header.kind = .delivery
            header.createdAt = createdAt
            header.provenance = provenance
            header.extensions = []
            return try BatchSealer.seal(compressedBody: origin.compressedBody, uncompressedLength: Int(origin.header.uncompressedLength),
                                        header: header, key: hubKey)
        }
        var body = BatchBodyEncoder(capacity: Int(origin.header.uncompressedLength) + 64)
        for record in shaped { try body.append(record) }
        let metadata = BatchMetadata(nodeID: hubNodeID, nodeEpoch: UInt64(subscriptionID), sequence: delivery, kind: .delivery,
                                     positionType: origin.header.positionType, completeThrough: origin.header.completeThrough,
                                     createdAt: createdAt, provenance: provenance)
        return try BatchSealer.seal(body, metadata: metadata, key: hubKey)
    }

    /// A backfill page: rows of the hub's copy of `resource` (already shaped by the
    /// subscription's policy), as a hub-made snapshot batch in the subscription's stream.
    /// The first page starts with a truncate, so a subscriber's table is replaced, not merged.
    public static func issueBackfill(_ records: [ChangeRecord], subscriptionID: Int64, delivery: UInt64, hubKey: SigningKey,
                                     createdAt: Int64) throws -> [UInt8] {
        var body = BatchBodyEncoder(capacity: records.count * 128 + 64)
        for record in records { try body.append(record) }
        let metadata = BatchMetadata(nodeID: hubNodeID, nodeEpoch: UInt64(subscriptionID), sequence: delivery, kind: .snapshot,
                                     positionType: .none, completeThrough: 0, createdAt: createdAt)
        return try BatchSealer.seal(body, metadata: metadata, key: hubKey)
    }

    /// A delivery that checked out: its records, where they came from, and whether the
    /// provider's own signature covers the body as well as the header.
    public struct Verified: Sendable {
        public let sequence: UInt64
        public let records: [ChangeRecord]
        public let originNode: String
        public let originEpoch: UInt64
        public let originSequence: UInt64
        public let originKind: BatchKind
        public let bodySignedByProvider: Bool
        /// When the provider sealed the batch (microseconds since 1970, under its signature);
        /// for the hub's own pages, when the hub made them.
        public let sealedAt: Int64
    }

    /// Checks a delivery before anything in it is believed: the hub's signature, that it
    /// belongs to this subscription, the provider's signature over its header (with the
    /// key `providerKey` returns for the provider and key id), and, when the body is the
    /// provider's, that the provider signed exactly it.
    public static func verify(_ bytes: [UInt8], hubKey: VerifyingKey, subscriptionID: Int64,
                              providerKey: (String, [UInt8]) -> VerifyingKey?) throws -> Verified {
        let file = try BatchFile(bytes: bytes)
        try file.verify(with: hubKey)
        let header = file.header
        guard header.nodeID == hubNodeID, header.nodeEpoch == UInt64(subscriptionID) else {
            throw DeliveryError("delivery \(header.sequence) is from \(header.nodeID) for subscription \(header.nodeEpoch), not the hub's for \(subscriptionID)")
        }
        if header.kind == .snapshot, header.provenance == nil {
            // A backfill page: the hub's copy, vouched for by the hub alone.
            return Verified(sequence: header.sequence, records: try file.records(), originNode: hubNodeID, originEpoch: 0, originSequence: 0,
                            originKind: .snapshot, bodySignedByProvider: false, sealedAt: header.createdAt)
        }
        guard header.kind == .delivery, let provenance = header.provenance else {
            throw DeliveryError("not a delivery: kind \(header.kind)")
        }
        guard let key = providerKey(provenance.originNode, provenance.originKeyID) else {
            throw DeliveryError("no key \(Hex.encode(provenance.originKeyID)) is registered for provider \(provenance.originNode)")
        }
        try provenance.verifyOrigin(with: key)
        let origin = try provenance.originHeader()
        return Verified(sequence: header.sequence, records: try file.records(), originNode: provenance.originNode,
                        originEpoch: provenance.originEpoch, originSequence: provenance.originSequence, originKind: origin.kind,
                        bodySignedByProvider: header.bodyDigest == provenance.originDigest && header.digestAlgorithm == provenance.originDigestAlgorithm,
                        sealedAt: origin.createdAt)
    }

    /// The response body of `GET /v1/deliveries`: each delivery as a big-endian u32 length
    /// and its bytes, so deliveries of any content travel without an escaping layer.
    public static func frame(_ deliveries: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(deliveries.reduce(0) { $0 + $1.count + 4 })
        for delivery in deliveries {
            let length = UInt32(delivery.count)
            out += [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
            out += delivery
        }
        return out
    }

    public static func unframe(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var deliveries: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 4 else { throw DeliveryError("the delivery frame is cut off at byte \(offset)") }
            let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            offset += 4
            guard bytes.count - offset >= length else { throw DeliveryError("a delivery of \(length) bytes is cut off at byte \(offset)") }
            deliveries.append(Array(bytes[offset..<(offset + length)]))
            offset += length
        }
        return deliveries
    }
}

public struct DeliveryError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
