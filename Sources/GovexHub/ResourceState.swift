import GovexWire

/// What one accepted batch does to the hub's copy of its resources, reduced to a final
/// state per key so that it can be written with a few set-based statements: a key is
/// either deleted or upserted, never both; a truncate resets its resource first.
/// Pure: records in, changes out.
public struct ResourceStateChanges: Sendable, Equatable {
    public struct Upsert: Sendable, Equatable {
        public var resource: String
        public var key: String
        /// Column name → text form (nil = NULL). Unchanged TOAST columns are absent:
        /// they keep the stored value of `baseKey`'s row.
        public var values: [(String, String?)]
        /// Column name → type tag (`ValueTypeTag`), so that backfill rebuilds typed values.
        public var types: [(String, String)] = []
        /// The row whose stored values fill the absent columns: the same key, or the old
        /// key of a key change; nil when the row is complete and needs no stored values.
        public var baseKey: String?
        public var position: SourcePosition

        public static func == (lhs: Upsert, rhs: Upsert) -> Bool {
            lhs.resource == rhs.resource && lhs.key == rhs.key && lhs.baseKey == rhs.baseKey && lhs.position == rhs.position
                && lhs.values.map(\.0) == rhs.values.map(\.0) && lhs.values.map(\.1) == rhs.values.map(\.1)
        }
    }

    public var truncated: [String] = []
    public var upserts: [Upsert] = []
    public var deletes: [(resource: String, key: String)] = []

    public static func == (lhs: ResourceStateChanges, rhs: ResourceStateChanges) -> Bool {
        lhs.truncated == rhs.truncated && lhs.upserts == rhs.upserts
            && lhs.deletes.map(\.resource) == rhs.deletes.map(\.resource) && lhs.deletes.map(\.key) == rhs.deletes.map(\.key)
    }

    /// The canonical text of a key: a JSON array of its columns' text forms, in key order.
    public static func keyText(_ key: [Column]) -> String {
        "[" + key.map { $0.value.postgresText.map(BatchJSON.string) ?? "null" }.joined(separator: ",") + "]"
    }

    public static func collapse(_ records: [ChangeRecord]) -> ResourceStateChanges {
        enum Final {
            case upsert(ResourceStateChanges.Upsert)
            case delete
        }
        struct Slot: Hashable {
            let resource: String
            let key: String
        }
        var finals: [Slot: Final] = [:]
        var order: [Slot] = []
        var truncated: [String] = []
        func set(_ slot: Slot, _ final: Final) {
            if finals.updateValue(final, forKey: slot) == nil { order.append(slot) }
        }
        for record in records {
            switch record.operation {
            case .truncate:
                for slot in finals.keys where slot.resource == record.resource { finals[slot] = nil }
                order.removeAll { $0.resource == record.resource }
                if !truncated.contains(record.resource) { truncated.append(record.resource) }
            case .delete:
                set(Slot(resource: record.resource, key: keyText(record.key)), .delete)
            case .insert, .update:
                let key = keyText(record.key)
                let oldKey = record.oldKey.map(keyText)
                var pending: ResourceStateChanges.Upsert? = nil
                if let oldKey, oldKey != key {
                    // A key change: the old key goes; unchanged columns come from its row.
                    let old = Slot(resource: record.resource, key: oldKey)
                    if case .upsert(let earlier)? = finals[old] { pending = earlier }
                    set(old, .delete)
                } else if case .upsert(let earlier)? = finals[Slot(resource: record.resource, key: key)] {
                    pending = earlier
                }
                let carried = pending?.values ?? []
                let carriedTypes = pending?.types ?? []
                var values: [(String, String?)] = []
                var types: [(String, String)] = []
                var unresolved = false
                for column in record.key + record.values {
                    if case .unchanged = column.value {
                        if let earlier = carried.first(where: { $0.0 == column.name }) {
                            values.append(earlier)
                            if let type = carriedTypes.first(where: { $0.0 == column.name }) { types.append(type) }
                        } else {
                            unresolved = true
                        }
                        continue
                    }
                    values.append((column.name, column.value.postgresText))
                    if case .null = column.value { continue }  // NULL says nothing about the type: keep the stored tag
                    types.append((column.name, ValueTypeTag.tag(of: column.value)))
                }
                // Only a row with a column neither sent nor carried needs the stored one.
                let base: String? = unresolved ? (pending.map { $0.baseKey ?? key } ?? oldKey ?? key) : pending?.baseKey
                set(Slot(resource: record.resource, key: key),
                    .upsert(Upsert(resource: record.resource, key: key, values: values, types: types, baseKey: base, position: record.position)))
            }
        }
        var changes = ResourceStateChanges()
        changes.truncated = truncated
        for slot in order {
            switch finals[slot] {
            case .upsert(let upsert)?: changes.upserts.append(upsert)
            case .delete?: changes.deletes.append((slot.resource, slot.key))
            case nil: break
            }
        }
        return changes
    }
}

/// A value's type as the hub's copy records it beside the text form: the value model's
/// type name, or `other:` and PostgreSQL's own name for a type govex does not model.
public enum ValueTypeTag {
    public static func tag(of value: Value) -> String {
        if case .other(let typeName, _) = value { return "other:" + typeName }
        return value.typeName
    }

    public static func type(of tag: String?) -> ValueType {
        switch tag ?? "text" {
        case "bool": return .bool
        case "int2": return .int2
        case "int4": return .int4
        case "int8": return .int8
        case "float4": return .float4
        case "float8": return .float8
        case "numeric": return .numeric
        case "bytea": return .bytea
        case "date": return .date
        case "time": return .time
        case "timestamp": return .timestamp
        case "timestamptz": return .timestamptz
        case "uuid": return .uuid
        case "json": return .json
        case "jsonb": return .jsonb
        case let other where other.hasPrefix("other:"): return .other(String(other.dropFirst(6)))
        default: return .text
        }
    }
}
