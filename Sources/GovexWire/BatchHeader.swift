public enum BatchKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Changes captured from the source's log or trigger table.
    case change = 1
    /// Rows of an initial or re-snapshot of mapped tables.
    case snapshot = 2
    /// Rows shipped to repair drift found by reconciliation.
    case repair = 3
    /// A batch the hub re-issues to one subscriber (see provenance).
    case delivery = 4
    /// Discrepancy records the hub sends back to departments.
    case feedback = 5

    public var description: String {
        switch self {
        case .change: return "change"
        case .snapshot: return "snapshot"
        case .repair: return "repair"
        case .delivery: return "delivery"
        case .feedback: return "feedback"
        }
    }
}

/// What the positions of a batch count.
public enum PositionType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// No source position (hub-made batches with no source order of their own).
    case none = 0
    /// PostgreSQL WAL positions (LSN) from logical decoding.
    case postgresLSN = 1
    /// The id sequence of a trigger-fed change-log table.
    case triggerWatermark = 2

    public var description: String {
        switch self {
        case .none: return "none"
        case .postgresLSN: return "pg_lsn"
        case .triggerWatermark: return "trigger_watermark"
        }
    }
}

public enum BodyCompression: UInt8, Sendable {
    case lz4Frame = 1
}

/// Where a re-issued batch came from, with what is needed to check the origin's
/// signature: the origin's signed header region, verbatim.
public struct Provenance: Sendable, Hashable {
    public var originNode: String
    public var originEpoch: UInt64
    public var originSequence: UInt64
    public var originDigestAlgorithm: DigestAlgorithm
    public var originDigest: [UInt8]
    public var originSignatureAlgorithm: SignatureAlgorithm
    public var originKeyID: [UInt8]
    public var originSignature: [UInt8]
    public var originSignedHeader: [UInt8]

    public init(originNode: String, originEpoch: UInt64, originSequence: UInt64,
                originDigestAlgorithm: DigestAlgorithm, originDigest: [UInt8],
                originSignatureAlgorithm: SignatureAlgorithm, originKeyID: [UInt8],
                originSignature: [UInt8], originSignedHeader: [UInt8]) {
        self.originNode = originNode
        self.originEpoch = originEpoch
        self.originSequence = originSequence
        self.originDigestAlgorithm = originDigestAlgorithm
        self.originDigest = originDigest
        self.originSignatureAlgorithm = originSignatureAlgorithm
        self.originKeyID = originKeyID
        self.originSignature = originSignature
        self.originSignedHeader = originSignedHeader
    }
}

/// A typed, signed field added after v1 without a version change. Readers skip
/// unknown non-critical extensions and reject unknown critical ones.
public struct HeaderExtension: Sendable, Hashable {
    public var type: UInt16
    public var isCritical: Bool
    public var data: [UInt8]

    public init(type: UInt16, isCritical: Bool, data: [UInt8]) {
        self.type = type
        self.isCritical = isCritical
        self.data = data
    }
}

public struct BatchHeader: Sendable, Hashable {
    public static let magic: [UInt8] = [0x89, 0x47, 0x56, 0x58, 0x0D, 0x0A, 0x1A, 0x0A]
    public static let formatVersion: UInt16 = 1
    /// Magic, version and header length precede the header fields.
    public static let preambleLength = 14

    public var nodeID: String
    public var nodeEpoch: UInt64
    public var sequence: UInt64
    public var kind: BatchKind
    public var positionType: PositionType
    public var firstPosition: SourcePosition
    public var lastPosition: SourcePosition
    /// Every transaction whose commit position is at or below this is whole in
    /// this batch and the ones before it.
    public var completeThrough: UInt64
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    public var createdAt: Int64
    public var recordCount: UInt32
    public var resources: [String]
    public var compression: BodyCompression
    public var uncompressedLength: UInt64
    public var compressedLength: UInt64
    public var digestAlgorithm: DigestAlgorithm
    public var bodyDigest: [UInt8]
    public var signatureAlgorithm: SignatureAlgorithm
    public var keyID: [UInt8]
    public var provenance: Provenance?
    public var extensions: [HeaderExtension]

    /// The bytes the signature covers: preamble and header fields.
    public func signedRegion() -> [UInt8] {
        var fields = ByteWriter(capacity: 256)
        encodeFields(into: &fields)
        var out = ByteWriter(capacity: fields.count + Self.preambleLength)
        out.write(bytes: Self.magic)
        out.write(Self.formatVersion)
        out.write(UInt32(fields.count))
        out.write(bytes: fields.bytes)
        return out.bytes
    }

    func encodeFields(into w: inout ByteWriter) {
        w.write(string: nodeID, lengthAs: UInt8.self)
        w.write(nodeEpoch)
        w.write(sequence)
        w.write(kind.rawValue)
        w.write(positionType.rawValue)
        w.write(firstPosition.commit)
        w.write(firstPosition.ordinal)
        w.write(lastPosition.commit)
        w.write(lastPosition.ordinal)
        w.write(completeThrough)
        w.write(createdAt)
        w.write(recordCount)
        w.write(UInt16(resources.count))
        for resource in resources { w.write(string: resource, lengthAs: UInt8.self) }
        w.write(compression.rawValue)
        w.write(uncompressedLength)
        w.write(compressedLength)
        w.write(digestAlgorithm.rawValue)
        w.write(blob: bodyDigest, lengthAs: UInt8.self)
        w.write(signatureAlgorithm.rawValue)
        w.write(blob: keyID, lengthAs: UInt8.self)
        if let p = provenance {
            w.write(UInt8(1))
            w.write(string: p.originNode, lengthAs: UInt8.self)
            w.write(p.originEpoch)
            w.write(p.originSequence)
            w.write(p.originDigestAlgorithm.rawValue)
            w.write(blob: p.originDigest, lengthAs: UInt8.self)
            w.write(p.originSignatureAlgorithm.rawValue)
            w.write(blob: p.originKeyID, lengthAs: UInt8.self)
            w.write(blob: p.originSignature, lengthAs: UInt16.self)
            w.write(blob: p.originSignedHeader, lengthAs: UInt32.self)
        } else {
            w.write(UInt8(0))
        }
        w.write(UInt16(extensions.count))
        for e in extensions {
            w.write(e.type)
            w.write(UInt8(e.isCritical ? 1 : 0))
            w.write(blob: e.data, lengthAs: UInt32.self)
        }
    }

    /// Checks what an encoder must never write and a decoder must never accept.
    func validate(limits: BatchLimits) throws(BatchError) {
        guard Identifier.isValid(nodeID) else { throw .invalidHeader(field: "node_id", reason: "'\(nodeID)' must be \(Identifier.rule)") }
        guard nodeEpoch != 0 else { throw .invalidHeader(field: "node_epoch", reason: "must not be 0") }
        guard sequence != 0 else { throw .invalidHeader(field: "sequence", reason: "must not be 0 (sequences start at 1)") }
        guard Int(recordCount) <= limits.maxRecords else {
            throw .limitExceeded(what: "record_count", value: UInt64(recordCount), limit: UInt64(limits.maxRecords))
        }
        guard resources.count <= limits.maxResources else {
            throw .limitExceeded(what: "resource_count", value: UInt64(resources.count), limit: UInt64(limits.maxResources))
        }
        for resource in resources where !Identifier.isValid(resource) {
            throw .invalidHeader(field: "resources", reason: "'\(resource)' must be \(Identifier.rule)")
        }
        guard Set(resources).count == resources.count else { throw .invalidHeader(field: "resources", reason: "a resource code is listed twice") }
        guard uncompressedLength <= UInt64(limits.maxUncompressedBytes) else {
            throw .limitExceeded(what: "uncompressed_length", value: uncompressedLength, limit: UInt64(limits.maxUncompressedBytes))
        }
        guard compressedLength <= UInt64(limits.maxCompressedBytes) else {
            throw .limitExceeded(what: "compressed_length", value: compressedLength, limit: UInt64(limits.maxCompressedBytes))
        }
        guard digestAlgorithm == signatureAlgorithm.digest else {
            throw .invalidHeader(field: "digest_algorithm", reason: "\(signatureAlgorithm) signatures go with \(signatureAlgorithm.digest) digests, not \(digestAlgorithm)")
        }
        guard bodyDigest.count == DigestAlgorithm.outputLength else { throw .invalidHeader(field: "body_digest", reason: "must be 32 bytes, found \(bodyDigest.count)") }
        guard keyID.count == 16 else { throw .invalidHeader(field: "key_id", reason: "must be 16 bytes, found \(keyID.count)") }
        if recordCount > 0 {
            guard firstPosition <= lastPosition else { throw .invalidHeader(field: "first_position", reason: "is after last_position") }
        }
        if positionType == .none {
            // Hub-made batches number their records by ordinal alone.
            guard firstPosition.commit == 0, lastPosition.commit == 0, completeThrough == 0 else {
                throw .invalidHeader(field: "position_type", reason: "is none, so complete_through and the positions' commit parts must be 0")
            }
        }
        if kind == .delivery, provenance == nil { throw .invalidHeader(field: "provenance", reason: "a delivery batch must name its origin") }
        if let p = provenance {
            guard Identifier.isValid(p.originNode) else { throw .invalidHeader(field: "origin_node", reason: "must be \(Identifier.rule)") }
            guard p.originDigestAlgorithm == p.originSignatureAlgorithm.digest, p.originDigest.count == 32, p.originKeyID.count == 16 else {
                throw .invalidHeader(field: "provenance", reason: "origin digest, algorithm or key id is malformed")
            }
        }
        var seen = Set<UInt16>()
        for e in extensions {
            guard seen.insert(e.type).inserted else { throw .invalidHeader(field: "extensions", reason: "extension \(e.type) appears twice") }
        }
    }
}

extension BatchHeader {
    /// Reads the preamble and header fields; `reader` is left at the signature length.
    static func decode(_ outer: inout ByteReader, limits: BatchLimits) throws(BatchError) -> BatchHeader {
        var reader = outer
        let fileLength = outer.base.count
        func field<T>(_ name: String, _ body: (inout ByteReader) throws -> T) throws(BatchError) -> T {
            do {
                return try body(&reader)
            } catch ByteReader.Failure.truncated(let offset, _) {
                if reader.base.count < fileLength {
                    throw .invalidHeader(field: name, reason: "runs past the declared header length")
                }
                throw .truncated(what: "header field \(name)", offset: offset)
            } catch {
                throw .invalidHeader(field: name, reason: "is not valid UTF-8")
            }
        }
        let magic = try field("magic") { try $0.readBytes(min(8, $0.remaining)) }
        guard magic.elementsEqual(magic.count == 8 ? Self.magic : Array(Self.magic.prefix(magic.count))) else { throw .badMagic }
        guard magic.count == 8 else { throw .truncated(what: "magic", offset: reader.offset) }
        let version = try field("format_version") { try $0.read(UInt16.self) }
        guard version == formatVersion else { throw .unsupportedVersion(version) }
        let headerLength = Int(try field("header_length") { try $0.read(UInt32.self) })
        guard headerLength <= limits.maxHeaderBytes else {
            throw .limitExceeded(what: "header_length", value: UInt64(headerLength), limit: UInt64(limits.maxHeaderBytes))
        }
        guard reader.remaining >= headerLength else { throw .truncated(what: "header", offset: reader.base.count) }
        let end = reader.offset + headerLength
        // Fields are read from the declared header region only, so no field can reach into the signature or body.
        reader = ByteReader(UnsafeRawBufferPointer(rebasing: outer.base[0..<end]), offset: reader.offset)

        let nodeID = try field("node_id") { try $0.readString(lengthAs: UInt8.self) }
        let nodeEpoch = try field("node_epoch") { try $0.read(UInt64.self) }
        let sequence = try field("sequence") { try $0.read(UInt64.self) }
        let kindRaw = try field("kind") { try $0.read(UInt8.self) }
        guard let kind = BatchKind(rawValue: kindRaw) else { throw .invalidHeader(field: "kind", reason: "unknown batch kind \(kindRaw)") }
        let positionRaw = try field("position_type") { try $0.read(UInt8.self) }
        guard let positionType = PositionType(rawValue: positionRaw) else { throw .invalidHeader(field: "position_type", reason: "unknown position type \(positionRaw)") }
        let first = SourcePosition(commit: try field("first_position") { try $0.read(UInt64.self) }, ordinal: try field("first_position") { try $0.read(UInt32.self) })
        let last = SourcePosition(commit: try field("last_position") { try $0.read(UInt64.self) }, ordinal: try field("last_position") { try $0.read(UInt32.self) })
        let completeThrough = try field("complete_through") { try $0.read(UInt64.self) }
        let createdAt = try field("created_at") { try $0.read(Int64.self) }
        let recordCount = try field("record_count") { try $0.read(UInt32.self) }
        let resourceCount = Int(try field("resource_count") { try $0.read(UInt16.self) })
        guard resourceCount <= limits.maxResources else {
            throw .limitExceeded(what: "resource_count", value: UInt64(resourceCount), limit: UInt64(limits.maxResources))
        }
        var resources = [String]()
        resources.reserveCapacity(resourceCount)
        for _ in 0..<resourceCount { resources.append(try field("resources") { try $0.readString(lengthAs: UInt8.self) }) }
        let compressionRaw = try field("compression") { try $0.read(UInt8.self) }
        guard let compression = BodyCompression(rawValue: compressionRaw) else { throw .invalidHeader(field: "compression", reason: "unknown compression \(compressionRaw)") }
        let uncompressedLength = try field("uncompressed_length") { try $0.read(UInt64.self) }
        let compressedLength = try field("compressed_length") { try $0.read(UInt64.self) }
        let digestAlgorithm = try decodeDigestAlgorithm(try field("digest_algorithm") { try $0.read(UInt8.self) }, field: "digest_algorithm")
        let bodyDigest = try field("body_digest") { try $0.readBlob(lengthAs: UInt8.self) }
        let signatureAlgorithm = try decodeSignatureAlgorithm(try field("signature_algorithm") { try $0.read(UInt8.self) }, field: "signature_algorithm")
        let keyID = try field("key_id") { try $0.readBlob(lengthAs: UInt8.self) }

        var provenance: Provenance? = nil
        let hasProvenance = try field("provenance") { try $0.read(UInt8.self) }
        switch hasProvenance {
        case 0: break
        case 1:
            let node = try field("origin_node") { try $0.readString(lengthAs: UInt8.self) }
            let epoch = try field("origin_epoch") { try $0.read(UInt64.self) }
            let originSequence = try field("origin_sequence") { try $0.read(UInt64.self) }
            let originDigestAlgorithm = try decodeDigestAlgorithm(try field("origin_digest_algorithm") { try $0.read(UInt8.self) }, field: "origin_digest_algorithm")
            let originDigest = try field("origin_digest") { try $0.readBlob(lengthAs: UInt8.self) }
            let originSignatureAlgorithm = try decodeSignatureAlgorithm(try field("origin_signature_algorithm") { try $0.read(UInt8.self) }, field: "origin_signature_algorithm")
            let originKeyID = try field("origin_key_id") { try $0.readBlob(lengthAs: UInt8.self) }
            let originSignature = try field("origin_signature") { try $0.readBlob(lengthAs: UInt16.self) }
            let originHeader = try field("origin_signed_header") { try $0.readBlob(lengthAs: UInt32.self) }
            provenance = Provenance(originNode: node, originEpoch: epoch, originSequence: originSequence,
                                    originDigestAlgorithm: originDigestAlgorithm, originDigest: originDigest,
                                    originSignatureAlgorithm: originSignatureAlgorithm, originKeyID: originKeyID,
                                    originSignature: originSignature, originSignedHeader: originHeader)
        default:
            throw .invalidHeader(field: "provenance", reason: "presence flag must be 0 or 1, found \(hasProvenance)")
        }

        let extensionCount = Int(try field("extension_count") { try $0.read(UInt16.self) })
        var extensions = [HeaderExtension]()
        for _ in 0..<extensionCount {
            let type = try field("extension") { try $0.read(UInt16.self) }
            let flags = try field("extension") { try $0.read(UInt8.self) }
            guard flags <= 1 else { throw .invalidHeader(field: "extension", reason: "unknown flags \(flags)") }
            let data = try field("extension") { try $0.readBlob(lengthAs: UInt32.self) }
            if flags == 1 { throw .unknownCriticalExtension(type) }
            extensions.append(HeaderExtension(type: type, isCritical: false, data: data))
        }
        guard reader.offset == end else { throw .invalidHeader(field: "header_length", reason: "\(end - reader.offset) bytes of the declared header are not fields") }
        outer = ByteReader(outer.base, offset: end)

        let header = BatchHeader(nodeID: nodeID, nodeEpoch: nodeEpoch, sequence: sequence, kind: kind, positionType: positionType,
                                 firstPosition: first, lastPosition: last, completeThrough: completeThrough, createdAt: createdAt,
                                 recordCount: recordCount, resources: resources, compression: compression,
                                 uncompressedLength: uncompressedLength, compressedLength: compressedLength,
                                 digestAlgorithm: digestAlgorithm, bodyDigest: bodyDigest, signatureAlgorithm: signatureAlgorithm,
                                 keyID: keyID, provenance: provenance, extensions: extensions)
        try header.validate(limits: limits)
        return header
    }

    private static func decodeDigestAlgorithm(_ raw: UInt8, field: String) throws(BatchError) -> DigestAlgorithm {
        guard let algorithm = DigestAlgorithm(rawValue: raw) else { throw .invalidHeader(field: field, reason: "unknown digest algorithm \(raw)") }
        return algorithm
    }

    private static func decodeSignatureAlgorithm(_ raw: UInt8, field: String) throws(BatchError) -> SignatureAlgorithm {
        guard let algorithm = SignatureAlgorithm(rawValue: raw) else { throw .invalidHeader(field: field, reason: "unknown signature algorithm \(raw)") }
        return algorithm
    }
}
