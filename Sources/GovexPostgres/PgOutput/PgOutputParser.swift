import GovexWire

/// Parses pgoutput messages: bytes in, `PgOutputMessage` out, no IO. Every
/// count and length is checked against the bytes that remain before it is
/// used, so arbitrary input throws instead of crashing or over-allocating.
public enum PgOutputParser {
    /// PostgreSQL tables have at most 1,600 columns (MaxHeapAttributeNumber).
    static let maxColumns = 1_600

    public static func parse(_ bytes: [UInt8]) throws(PgOutputError) -> PgOutputMessage {
        try MessageReader.withBytes(bytes) { raw throws(PgOutputError) in try parse(raw) }
    }

    public static func parse(_ raw: UnsafeRawBufferPointer) throws(PgOutputError) -> PgOutputMessage {
        var reader = MessageReader(reader: ByteReader(raw), name: "empty")
        let type = try reader.u8()
        reader.name = name(of: type)
        let message: PgOutputMessage
        switch type {
        case UInt8(ascii: "B"):
            message = .begin(finalLSN: try reader.u64(), commitTime: try reader.i64(), xid: try reader.u32())
        case UInt8(ascii: "C"):
            message = .commit(flags: try reader.u8(), commitLSN: try reader.u64(), endLSN: try reader.u64(), commitTime: try reader.i64())
        case UInt8(ascii: "O"):
            message = .origin(commitLSN: try reader.u64(), name: try reader.cString())
        case UInt8(ascii: "R"):
            message = .relation(try relation(&reader))
        case UInt8(ascii: "Y"):
            message = .type(oid: try reader.u32(), namespace: try reader.cString(), name: try reader.cString())
        case UInt8(ascii: "I"):
            let relation = try reader.u32()
            try reader.expect(UInt8(ascii: "N"), "new tuple marker N")
            message = .insert(relation: relation, new: try tuple(&reader))
        case UInt8(ascii: "U"):
            let relation = try reader.u32()
            var old: OldTuple? = nil
            var marker = try reader.u8()
            if marker == UInt8(ascii: "K") || marker == UInt8(ascii: "O") {
                let values = try tuple(&reader)
                old = marker == UInt8(ascii: "K") ? .key(values) : .full(values)
                marker = try reader.u8()
            }
            guard marker == UInt8(ascii: "N") else { throw reader.invalid("expected tuple marker K, O or N, found \(marker)") }
            message = .update(relation: relation, old: old, new: try tuple(&reader))
        case UInt8(ascii: "D"):
            let relation = try reader.u32()
            let marker = try reader.u8()
            guard marker == UInt8(ascii: "K") || marker == UInt8(ascii: "O") else { throw reader.invalid("expected tuple marker K or O, found \(marker)") }
            let values = try tuple(&reader)
            message = .delete(relation: relation, old: marker == UInt8(ascii: "K") ? .key(values) : .full(values))
        case UInt8(ascii: "T"):
            let count = Int(try reader.u32())
            let options = try reader.u8()
            guard options & ~3 == 0 else { throw reader.invalid("unknown truncate options \(options)") }
            guard count <= reader.remaining / 4 else { throw reader.invalid("\(count) relations do not fit in \(reader.remaining) bytes") }
            var relations = [UInt32]()
            relations.reserveCapacity(count)
            for _ in 0..<count { relations.append(try reader.u32()) }
            message = .truncate(relations: relations, cascade: options & 1 != 0, restartIdentity: options & 2 != 0)
        case UInt8(ascii: "M"):
            let flags = try reader.u8()
            guard flags <= 1 else { throw reader.invalid("unknown message flags \(flags)") }
            let lsn = try reader.u64()
            let prefix = try reader.cString()
            let length = try reader.i32()
            guard length >= 0 else { throw reader.invalid("negative content length \(length)") }
            message = .message(transactional: flags == 1, lsn: lsn, prefix: prefix, content: try reader.bytes(Int(length)))
        default:
            throw .unknownMessage(type)
        }
        guard reader.remaining == 0 else { throw .trailingBytes(message: reader.name, count: reader.remaining) }
        return message
    }

    static func name(of type: UInt8) -> String {
        switch type {
        case UInt8(ascii: "B"): return "Begin"
        case UInt8(ascii: "C"): return "Commit"
        case UInt8(ascii: "O"): return "Origin"
        case UInt8(ascii: "R"): return "Relation"
        case UInt8(ascii: "Y"): return "Type"
        case UInt8(ascii: "I"): return "Insert"
        case UInt8(ascii: "U"): return "Update"
        case UInt8(ascii: "D"): return "Delete"
        case UInt8(ascii: "T"): return "Truncate"
        case UInt8(ascii: "M"): return "Message"
        default: return "type \(type)"
        }
    }

    private static func relation(_ reader: inout MessageReader) throws(PgOutputError) -> RelationDescription {
        let id = try reader.u32()
        let namespace = try reader.cString()
        let name = try reader.cString()
        let identity = try reader.u8()
        guard [UInt8(ascii: "d"), UInt8(ascii: "n"), UInt8(ascii: "f"), UInt8(ascii: "i")].contains(identity) else {
            throw reader.invalid("unknown replica identity \(identity)")
        }
        let count = Int(try reader.i16())
        // Each column takes at least 10 bytes (flags, an empty name's NUL, type OID, modifier).
        guard count >= 0, count <= maxColumns, count <= reader.remaining / 10 else { throw reader.invalid("column count \(count) is impossible here") }
        var columns = [RelationDescription.Column]()
        columns.reserveCapacity(count)
        for _ in 0..<count {
            let flags = try reader.u8()
            guard flags <= 1 else { throw reader.invalid("unknown column flags \(flags)") }
            columns.append(RelationDescription.Column(isKey: flags == 1, name: try reader.cString(), typeOID: try reader.u32(), typeModifier: try reader.i32()))
        }
        return RelationDescription(id: id, namespace: namespace, name: name, replicaIdentity: identity, columns: columns)
    }

    private static func tuple(_ reader: inout MessageReader) throws(PgOutputError) -> [TupleValue] {
        let count = Int(try reader.i16())
        // Each column takes at least its kind byte.
        guard count >= 0, count <= maxColumns, count <= reader.remaining else { throw reader.invalid("tuple column count \(count) is impossible here") }
        var values = [TupleValue]()
        values.reserveCapacity(count)
        for _ in 0..<count {
            let kind = try reader.u8()
            switch kind {
            case UInt8(ascii: "n"): values.append(.null)
            case UInt8(ascii: "u"): values.append(.unchangedToast)
            case UInt8(ascii: "t"), UInt8(ascii: "b"):
                let length = try reader.i32()
                guard length >= 0 else { throw reader.invalid("negative value length \(length)") }
                let bytes = try reader.bytes(Int(length))
                values.append(kind == UInt8(ascii: "t") ? .text(bytes) : .binary(bytes))
            default:
                throw reader.invalid("unknown tuple value kind \(kind)")
            }
        }
        return values
    }
}

/// A `ByteReader` that reports failures as the pgoutput message being read.
struct MessageReader {
    /// Runs `body` over an array's bytes, keeping its typed error (the stdlib's accessor rethrows untyped).
    static func withBytes<T>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(PgOutputError) -> T) throws(PgOutputError) -> T {
        var result: Result<T, PgOutputError>!
        bytes.withUnsafeBytes { raw in
            do throws(PgOutputError) { result = .success(try body(raw)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    var reader: ByteReader
    var name: String

    var remaining: Int { reader.remaining }

    func invalid(_ reason: String) -> PgOutputError { .invalid(message: name, reason: reason) }

    private mutating func read<T: FixedWidthInteger>(_: T.Type) throws(PgOutputError) -> T {
        do { return try reader.read(T.self) } catch { throw .truncated(message: name, offset: reader.offset) }
    }

    mutating func u8() throws(PgOutputError) -> UInt8 { try read(UInt8.self) }
    mutating func i16() throws(PgOutputError) -> Int16 { try read(Int16.self) }
    mutating func u32() throws(PgOutputError) -> UInt32 { try read(UInt32.self) }
    mutating func i32() throws(PgOutputError) -> Int32 { try read(Int32.self) }
    mutating func u64() throws(PgOutputError) -> UInt64 { try read(UInt64.self) }
    mutating func i64() throws(PgOutputError) -> Int64 { try read(Int64.self) }

    mutating func expect(_ byte: UInt8, _ what: String) throws(PgOutputError) {
        let found = try u8()
        guard found == byte else { throw invalid("expected \(what), found \(found)") }
    }

    mutating func bytes(_ count: Int) throws(PgOutputError) -> [UInt8] {
        do { return try reader.readArray(count) } catch { throw .truncated(message: name, offset: reader.offset) }
    }

    /// A NUL-terminated string (identifiers: names are UTF-8 under a UTF-8 server encoding).
    mutating func cString() throws(PgOutputError) -> String {
        let start = reader.offset
        let rest = UnsafeRawBufferPointer(rebasing: reader.base[start...])
        guard let end = rest.firstIndex(of: 0) else { throw .truncated(message: name, offset: reader.base.count) }
        let length = end - rest.startIndex
        let text: String
        do {
            text = try ByteReader.string(UnsafeRawBufferPointer(rebasing: reader.base[start..<(start + length)]), at: start)
            _ = try reader.readBytes(length + 1)
        } catch {
            throw invalid("a name at byte \(start) is not valid UTF-8")
        }
        return text
    }
}
