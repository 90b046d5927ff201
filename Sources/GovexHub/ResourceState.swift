import GovexWire

/// What one accepted batch does to the hub's copy of its resources, reduced to a final
/// state per key so that it can be written with a few set-based statements: a key is
/// either deleted or upserted, never both; a truncate resets its resource first.
/// Pure: records in, changes out.
public struct ResourceStateChanges: Sendable, Equatable {
    public struct Upsert: Sendable, Equatable {
        public var resource: String
        public var key: String
        /// The row's columns, typed as captured. Unchanged TOAST columns are absent: they
        /// keep the stored value of `baseKey`'s row.
        public var columns: [Column]
        /// The row whose stored values fill the absent columns: the same key, or the old
        /// key of a key change; nil when the row is complete and needs no stored values.
        public var baseKey: String?
        public var position: SourcePosition
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
                let carried = pending?.columns ?? []
                var columns: [Column] = []
                columns.reserveCapacity(record.key.count + record.values.count)
                var unresolved = false
                for column in record.key + record.values {
                    guard case .unchanged = column.value else {
                        columns.append(column)
                        continue
                    }
                    if let earlier = carried.first(where: { $0.name == column.name }) {
                        columns.append(earlier)
                    } else {
                        unresolved = true
                    }
                }
                // Only a row with a column neither sent nor carried needs the stored one.
                let base: String? = unresolved ? (pending.map { $0.baseKey ?? key } ?? oldKey ?? key) : pending?.baseKey
                set(Slot(resource: record.resource, key: key),
                    .upsert(Upsert(resource: record.resource, key: key, columns: columns, baseKey: base, position: record.position)))
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
