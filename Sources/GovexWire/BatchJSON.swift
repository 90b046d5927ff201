/// The JSON forms of headers, records and values (spec: "JSON form"), used by
/// `govex batch inspect --json` and by the test vectors' expected output.
public enum BatchJSON {
    public static func string(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    public static func stringArray(_ items: [String]) -> String {
        "[" + items.map(string).joined(separator: ",") + "]"
    }

    public static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { string($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
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
