/// The JSON forms of headers, records and values (spec: "JSON form"), used by
/// `govex batch inspect --json` and by the test vectors' expected output.
public enum BatchJSON {
    public static func string(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 2)
        appendString(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `text` as a JSON string. Byte-wise: the hub builds JSON for every row it
    /// stores, and only `"`, `\` and control characters need escaping (UTF-8's multi-byte
    /// sequences never contain bytes below 0x80).
    public static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            var start = 0
            for index in bytes.indices {
                let byte = bytes[index]
                guard byte == 0x22 || byte == 0x5C || byte < 0x20 else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
                switch byte {
                case 0x22: out.append(contentsOf: [0x5C, 0x22])
                case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                }
                start = index + 1
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...]))
        }
        out.append(UInt8(ascii: "\""))
    }

    public static func stringArray(_ items: [String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (index, item) in items.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(item, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends an object whose members are strings or null.
    public static func appendStringObject(_ members: [(String, String?)], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (index, (name, value)) in members.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            if let value { appendString(value, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        out.append(UInt8(ascii: "}"))
    }

    /// An object of members whose values are JSON already.
    public static func object(_ members: [(String, String)]) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(members.reduce(2) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 })
        for (index, member) in members.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(member.0, to: &out)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: member.1.utf8)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    public static func value(_ value: Value) -> String {
        switch value {
        case .null: return "null"
        case .unchanged: return object([("unchanged", "true")])
        case .bool(let v): return object([("type", string("bool")), ("value", v ? "true" : "false")])
        case .int2(let v): return object([("type", string("int2")), ("value", String(v))])
        case .int4(let v): return object([("type", string("int4")), ("value", String(v))])
        case .int8(let v): return object([("type", string("int8")), ("value", string(String(v)))])
        case .bytea(let v): return object([("type", string("bytea")), ("value", string(Hex.encode(v)))])
        case let .other(typeName, text):
            return object([("type", string("other")), ("type_name", string(typeName)), ("value", string(text))])
        default:
            return object([("type", string(value.typeName)), ("value", string(value.postgresText ?? ""))])
        }
    }

    static func columns(_ columns: [Column]) -> String {
        object(columns.map { ($0.name, value($0.value)) })
    }

    public static func record(_ record: ChangeRecord) -> String {
        var members: [(String, String)] = [
            ("op", string(record.operation.description)),
            ("resource", string(record.resource)),
            ("position", object([("commit", String(record.position.commit)), ("ordinal", String(record.position.ordinal))])),
        ]
        if record.operation != .truncate { members.append(("key", columns(record.key))) }
        if record.operation == .insert || record.operation == .update { members.append(("values", columns(record.values))) }
        if let oldKey = record.oldKey { members.append(("old_key", columns(oldKey))) }
        return object(members)
    }

    static func position(_ position: SourcePosition) -> String {
        object([("commit", String(position.commit)), ("ordinal", String(position.ordinal))])
    }

    public static func header(_ header: BatchHeader) -> String {
        var members: [(String, String)] = [
            ("format_version", String(BatchHeader.formatVersion)),
            ("node_id", string(header.nodeID)),
            ("node_epoch", string(String(header.nodeEpoch))),
            ("sequence", string(String(header.sequence))),
            ("kind", string(header.kind.description)),
            ("position_type", string(header.positionType.description)),
            ("first_position", position(header.firstPosition)),
            ("last_position", position(header.lastPosition)),
            ("complete_through", String(header.completeThrough)),
            ("created_at_us", String(header.createdAt)),
            ("record_count", String(header.recordCount)),
            ("resources", "[" + header.resources.map(string).joined(separator: ",") + "]"),
            ("compression", string("lz4-frame")),
            ("uncompressed_length", String(header.uncompressedLength)),
            ("compressed_length", String(header.compressedLength)),
            ("digest_algorithm", string(header.digestAlgorithm.description)),
            ("body_digest", string(Hex.encode(header.bodyDigest))),
            ("signature_algorithm", string(header.signatureAlgorithm.description)),
            ("key_id", string(Hex.encode(header.keyID))),
        ]
        if let p = header.provenance {
            members.append(("provenance", object([
                ("origin_node", string(p.originNode)),
                ("origin_epoch", string(String(p.originEpoch))),
                ("origin_sequence", string(String(p.originSequence))),
                ("origin_digest_algorithm", string(p.originDigestAlgorithm.description)),
                ("origin_digest", string(Hex.encode(p.originDigest))),
                ("origin_signature_algorithm", string(p.originSignatureAlgorithm.description)),
                ("origin_key_id", string(Hex.encode(p.originKeyID))),
                ("origin_signature", string(Hex.encode(p.originSignature))),
            ])))
        }
        members.append(("extensions", "[" + header.extensions.map {
            object([("type", String($0.type)), ("critical", $0.isCritical ? "true" : "false"), ("data", string(Hex.encode($0.data)))])
        }.joined(separator: ",") + "]"))
        return object(members)
    }
}
