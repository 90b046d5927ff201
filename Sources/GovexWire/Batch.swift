/// What the batch's producer says about it, beyond its records.
public struct BatchMetadata: Sendable, Hashable {
    public var nodeID: String
    public var nodeEpoch: UInt64
    public var sequence: UInt64
    public var kind: BatchKind
    public var positionType: PositionType
    public var completeThrough: UInt64
    public var createdAt: Int64
    public var provenance: Provenance?
    public var extensions: [HeaderExtension]

    public init(nodeID: String, nodeEpoch: UInt64, sequence: UInt64, kind: BatchKind = .change,
                positionType: PositionType = .postgresLSN, completeThrough: UInt64, createdAt: Int64,
                provenance: Provenance? = nil, extensions: [HeaderExtension] = []) {
        self.nodeID = nodeID
        self.nodeEpoch = nodeEpoch
        self.sequence = sequence
        self.kind = kind
        self.positionType = positionType
        self.completeThrough = completeThrough
        self.createdAt = createdAt
        self.provenance = provenance
        self.extensions = extensions
    }
}

/// Turns an encoded body into a sealed batch file: compress, digest, sign.
public enum BatchSealer {
    public static func seal(_ body: BatchBodyEncoder, metadata: BatchMetadata, key: SigningKey,
                            limits: BatchLimits = .default) throws(BatchError) -> [UInt8] {
        let digestAlgorithm = key.algorithm.digest
        var header = BatchHeader(
            nodeID: metadata.nodeID, nodeEpoch: metadata.nodeEpoch, sequence: metadata.sequence, kind: metadata.kind,
            positionType: metadata.positionType,
            firstPosition: body.firstPosition ?? SourcePosition(commit: 0, ordinal: 0),
            lastPosition: body.lastPosition ?? SourcePosition(commit: 0, ordinal: 0),
            completeThrough: metadata.completeThrough, createdAt: metadata.createdAt,
            recordCount: UInt32(clamping: body.recordCount), resources: body.resources, compression: .lz4Frame,
            uncompressedLength: UInt64(body.byteCount), compressedLength: 0,
            digestAlgorithm: digestAlgorithm, bodyDigest: [UInt8](repeating: 0, count: DigestAlgorithm.outputLength),
            signatureAlgorithm: key.algorithm, keyID: key.publicKey.keyID,
            provenance: metadata.provenance, extensions: metadata.extensions)
        // Every header field has a fixed size once its strings are known, so the
        // header's length is known before compressing: the body is compressed
        // straight into its place in the file, and nothing is copied afterwards.
        let headerLength = header.signedRegion().count
        let maxSignature = key.algorithm.maxSignatureLength
        let bodyOffset = headerLength + 2 + maxSignature
        let capacity = bodyOffset + LZ4Frame.compressBound(body.byteCount)
        var failure: BatchError? = nil
        let file = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            count = 0
            do throws(BatchError) {
                let raw = UnsafeMutableRawBufferPointer(buffer)
                let compressedLength = try converting {
                    try body.withBytes { try LZ4Frame.compress($0, into: UnsafeMutableRawBufferPointer(rebasing: raw[bodyOffset...])) }
                }
                let compressed = UnsafeRawBufferPointer(rebasing: raw[bodyOffset..<(bodyOffset + compressedLength)])
                header.compressedLength = UInt64(compressedLength)
                header.bodyDigest = digestAlgorithm.hash(compressed)
                let (signed, signature) = try sign(header, key: key, limits: limits)
                guard signed.count == headerLength, signature.count <= maxSignature else {
                    throw .invalidInput("header or signature larger than reserved")
                }
                var cursor = RawCursor(raw.baseAddress!)
                signed.withUnsafeBytes { cursor.put(raw: $0) }
                cursor.put(UInt16(signature.count))
                signature.withUnsafeBytes { cursor.put(raw: $0) }
                let bodyStart = cursor.pointer - raw.baseAddress!
                if bodyStart < bodyOffset {
                    // A shorter (SM2) signature: close the gap left for the longest one.
                    (raw.baseAddress! + bodyStart).copyMemory(from: raw.baseAddress! + bodyOffset, byteCount: compressedLength)
                }
                count = bodyStart + compressedLength
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return file
    }
}

extension BatchSealer {
    /// Validates a complete header and signs its signed region.
    static func sign(_ header: BatchHeader, key: SigningKey, limits: BatchLimits) throws(BatchError) -> (signed: [UInt8], signature: [UInt8]) {
        do throws(BatchError) {
            try header.validate(limits: limits)
        } catch {
            throw .invalidInput(error.description)
        }
        let signed = header.signedRegion()
        return (signed, try converting { try signed.withUnsafeBytes { try key.signature(for: $0) } })
    }

    /// Seals an already-compressed body under `header`, filling in the body's
    /// length, digest, algorithms and key id. The hub re-issues a provider's body
    /// this way without recompressing it. The body's content is not checked here:
    /// that is the reader's job.
    public static func seal(compressedBody: [UInt8], uncompressedLength: Int, header template: BatchHeader, key: SigningKey,
                            limits: BatchLimits = .default) throws(BatchError) -> [UInt8] {
        var header = template
        header.compression = .lz4Frame
        header.uncompressedLength = UInt64(uncompressedLength)
        header.compressedLength = UInt64(compressedBody.count)
        header.digestAlgorithm = key.algorithm.digest
        header.bodyDigest = header.digestAlgorithm.hash(compressedBody)
        header.signatureAlgorithm = key.algorithm
        header.keyID = key.publicKey.keyID
        let (signed, signature) = try sign(header, key: key, limits: limits)
        var writer = ByteWriter(capacity: signed.count + 2 + signature.count + compressedBody.count)
        writer.write(bytes: signed)
        writer.write(blob: signature, lengthAs: UInt16.self)
        writer.write(bytes: compressedBody)
        return writer.bytes
    }
}

extension Provenance {
    /// The provenance of a re-issue of `origin`.
    public init(of origin: BatchFile) {
        self.init(originNode: origin.header.nodeID, originEpoch: origin.header.nodeEpoch, originSequence: origin.header.sequence,
                  originDigestAlgorithm: origin.header.digestAlgorithm, originDigest: origin.header.bodyDigest,
                  originSignatureAlgorithm: origin.header.signatureAlgorithm, originKeyID: origin.header.keyID,
                  originSignature: origin.signature, originSignedHeader: origin.signedRegion)
    }
}

/// A batch file split into its parts, structurally checked, not yet trusted.
/// Call `verify(with:)` before believing anything it says.
public struct BatchFile: Sendable {
    public let header: BatchHeader
    /// The bytes the signature covers.
    public let signedRegion: [UInt8]
    public let signature: [UInt8]
    /// The LZ4 frame exactly as stored; the body digest is over these bytes.
    public let compressedBody: [UInt8]
    public let limits: BatchLimits

    public static let maxSignatureLength = 512

    public init(bytes: [UInt8], limits: BatchLimits = .default) throws(BatchError) {
        let parsed = try converting { try bytes.withUnsafeBytes { raw throws -> (BatchHeader, Int, [UInt8], Int) in
            var reader = ByteReader(raw)
            let header = try BatchHeader.decode(&reader, limits: limits)
            let signedEnd = reader.offset
            let signatureLength: UInt16
            do { signatureLength = try reader.read(UInt16.self) } catch { throw BatchError.truncated(what: "signature length", offset: raw.count) }
            guard signatureLength > 0, Int(signatureLength) <= Self.maxSignatureLength else {
                throw BatchError.invalidHeader(field: "signature", reason: "length \(signatureLength) is outside 1...\(Self.maxSignatureLength)")
            }
            let signature: [UInt8]
            do { signature = try reader.readArray(Int(signatureLength)) } catch { throw BatchError.truncated(what: "signature", offset: raw.count) }
            guard UInt64(reader.remaining) >= header.compressedLength else { throw BatchError.truncated(what: "body", offset: raw.count) }
            guard UInt64(reader.remaining) == header.compressedLength else { throw BatchError.trailingBytes(reader.remaining - Int(header.compressedLength)) }
            return (header, signedEnd, signature, reader.offset)
        } }
        self.header = parsed.0
        self.signedRegion = Array(bytes[0..<parsed.1])
        self.signature = parsed.2
        self.compressedBody = Array(bytes[parsed.3...])
        self.limits = limits
    }

    /// Checks, in order: the key's algorithm and id match the header, the body
    /// matches its digest, and the signature covers the header with this key.
    public func verify(with key: VerifyingKey) throws(BatchError) {
        guard key.algorithm == header.signatureAlgorithm else {
            throw .algorithmMismatch(batch: header.signatureAlgorithm.description, key: key.algorithm.description)
        }
        guard key.keyID == header.keyID else { throw .wrongKey(batchKeyID: Hex.encode(header.keyID), givenKeyID: Hex.encode(key.keyID)) }
        let actual = header.digestAlgorithm.hash(compressedBody)
        guard actual == header.bodyDigest else { throw .digestMismatch(declared: Hex.encode(header.bodyDigest), actual: Hex.encode(actual)) }
        let valid = signedRegion.withUnsafeBytes { key.isValidSignature(signature, for: $0) }
        guard valid else { throw .badSignature }
    }

    /// The digest that identifies this batch: over the signed region, which includes the body digest.
    public var identityDigest: [UInt8] { header.digestAlgorithm.hash(signedRegion) }

    /// The uncompressed body; its size was bounded by the limits when the header was read.
    public func decompressedBody() throws(BatchError) -> [UInt8] {
        try converting {
            try compressedBody.withUnsafeBytes { try LZ4Frame.decompress($0, expectedSize: Int(header.uncompressedLength)) }
        }
    }

    /// Decodes the records, up to `limit` of them. Verify first.
    public func records(limit: Int = .max) throws(BatchError) -> [ChangeRecord] {
        try contents(limit: limit).records
    }

    /// The records and every column name their schemas use (see `BatchBodyDecoder.columnNames`).
    public func contents(limit: Int = .max) throws(BatchError) -> (records: [ChangeRecord], columnNames: [String]) {
        let body = try decompressedBody()
        return try converting { try body.withUnsafeBytes { raw throws -> ([ChangeRecord], [String]) in
            var decoder = BatchBodyDecoder(body: raw, header: header, limits: limits)
            var records = [ChangeRecord]()
            records.reserveCapacity(min(Int(header.recordCount), limit, raw.count / 16 + 1))
            while records.count < limit, let record = try decoder.next() { records.append(record) }
            return (records, decoder.columnNames)
        } }
    }
}

extension Provenance {
    /// The origin's signed header, parsed, for checking it against these fields.
    public func originHeader(limits: BatchLimits = .default) throws(BatchError) -> BatchHeader {
        try converting { try originSignedHeader.withUnsafeBytes { raw throws in
            var reader = ByteReader(raw)
            let header = try BatchHeader.decode(&reader, limits: limits)
            guard reader.isAtEnd else { throw BatchError.invalidHeader(field: "origin_signed_header", reason: "holds bytes after the header") }
            return header
        } }
    }

    /// Checks the origin's signature with the origin node's key and that the
    /// provenance fields agree with the header it signed.
    public func verifyOrigin(with key: VerifyingKey) throws(BatchError) {
        let origin = try originHeader()
        guard origin.nodeID == originNode, origin.nodeEpoch == originEpoch, origin.sequence == originSequence,
              origin.bodyDigest == originDigest, origin.digestAlgorithm == originDigestAlgorithm,
              origin.signatureAlgorithm == originSignatureAlgorithm, origin.keyID == originKeyID else {
            throw .invalidHeader(field: "provenance", reason: "the fields disagree with the origin's signed header")
        }
        guard key.algorithm == originSignatureAlgorithm else {
            throw .algorithmMismatch(batch: originSignatureAlgorithm.description, key: key.algorithm.description)
        }
        guard key.keyID == originKeyID else { throw .wrongKey(batchKeyID: Hex.encode(originKeyID), givenKeyID: Hex.encode(key.keyID)) }
        let valid = originSignedHeader.withUnsafeBytes { key.isValidSignature(originSignature, for: $0) }
        guard valid else { throw .badSignature }
    }
}

/// Runs `body` and reports any failure as a `BatchError`: the stdlib's buffer
/// accessors rethrow untyped errors, so typed errors are recovered here.
func converting<T>(_ body: () throws -> T) throws(BatchError) -> T {
    do {
        return try body()
    } catch let error as BatchError {
        throw error
    } catch let error as LZ4Frame.Failure {
        switch error {
        case .compressionFailed: throw .invalidInput(error.description)
        default: throw .corruptBody(error.description)
        }
    } catch let error as KeyError {
        throw .invalidInput(error.description)
    } catch {
        throw .invalidInput("\(error)")
    }
}
