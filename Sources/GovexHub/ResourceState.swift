import GovexDiff
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
    /// Every record was an insert: the upserts are new keys, unless the hub's copy already
    /// holds some of them (a snapshot sent again after an epoch reset).
    public var onlyInserts = false
    public var deletes: [(resource: String, key: String)] = []

    public static func == (lhs: ResourceStateChanges, rhs: ResourceStateChanges) -> Bool {
        lhs.truncated == rhs.truncated && lhs.upserts == rhs.upserts
            && lhs.deletes.map(\.resource) == rhs.deletes.map(\.resource) && lhs.deletes.map(\.key) == rhs.deletes.map(\.key)
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
        // Keys in first-touched order, each with its final state (nil once truncated away);
        // `index` finds a key's entry. A batch's keys are nearly all distinct, so the common
        // path hashes each key once.
        var entries: [(slot: Slot, final: Final?)] = []
        entries.reserveCapacity(records.count)
        var index: [Slot: Int] = [:]
        index.reserveCapacity(records.count)
        var truncated: [String] = []
        func entry(_ slot: Slot) -> Int {
            if let existing = index.updateValue(entries.count, forKey: slot) {
                index[slot] = existing
                return existing
            }
            entries.append((slot, nil))
            return entries.count - 1
        }
        for record in records {
            switch record.operation {
            case .truncate:
                for position in entries.indices where entries[position].slot.resource == record.resource {
                    entries[position].final = nil
                    index[entries[position].slot] = nil
                }
                if !truncated.contains(record.resource) { truncated.append(record.resource) }
            case .delete:
                entries[entry(Slot(resource: record.resource, key: RowDigest.keyText(record.key)))].final = .delete
            case .insert, .update:
                let key = RowDigest.keyText(record.key)
                let oldKey = record.oldKey.map(RowDigest.keyText)
                var pending: ResourceStateChanges.Upsert? = nil
                let keyChanged = oldKey != nil && oldKey != key
                if keyChanged, let oldKey {
                    // A key change: the old key goes; unchanged columns come from its row.
                    let old = entry(Slot(resource: record.resource, key: oldKey))
                    if case .upsert(let earlier)? = entries[old].final { pending = earlier }
                    entries[old].final = .delete
                }
                let position = entry(Slot(resource: record.resource, key: key))
                if !keyChanged, case .upsert(let earlier)? = entries[position].final { pending = earlier }
                var columns: [Column] = []
                columns.reserveCapacity(record.key.count + record.values.count)
                var unresolved = false
                for part in [record.key, record.values] {
                    for column in part {
                        guard case .unchanged = column.value else {
                            columns.append(column)
                            continue
                        }
                        if let earlier = pending?.columns.first(where: { $0.name == column.name }) {
                            columns.append(earlier)
                        } else {
                            unresolved = true
                        }
                    }
                }
                // Only a row with a column neither sent nor carried needs the stored one.
                let base: String? = unresolved ? (pending.map { $0.baseKey ?? key } ?? oldKey ?? key) : pending?.baseKey
                entries[position].final = .upsert(Upsert(resource: record.resource, key: key, columns: columns, baseKey: base,
                                                         position: record.position))
            }
        }
        var changes = ResourceStateChanges()
        changes.truncated = truncated
        changes.onlyInserts = !records.isEmpty && records.allSatisfy { $0.operation == .insert }
        changes.upserts.reserveCapacity(entries.count)
        for (slot, final) in entries {
            switch final {
            case .upsert(let upsert)?: changes.upserts.append(upsert)
            case .delete?: changes.deletes.append((slot.resource, slot.key))
            case nil: break
            }
        }
        return changes
    }
}
