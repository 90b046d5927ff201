import GovexHub
import GovexTestSupport
import GovexDiff
import GovexWire
import Testing

@Suite("Resource state changes")
struct ResourceStateTests {
    static func record(_ operation: ChangeOperation, _ id: Int32, _ name: Value? = nil, oldKey: Int32? = nil, ordinal: UInt32 = 0) -> ChangeRecord {
        ChangeRecord(operation: operation, resource: "R", position: SourcePosition(commit: 100, ordinal: ordinal),
                     key: operation == .truncate ? [] : [Column("id", .int4(id))],
                     values: name.map { [Column("name", $0)] } ?? [], oldKey: oldKey.map { [Column("id", .int4($0))] })
    }

    @Test("each key ends either upserted or deleted, in first-touched order")
    func finalStates() {
        let changes = ResourceStateChanges.collapse([
            Self.record(.insert, 1, .text("a")), Self.record(.insert, 2, .text("b"), ordinal: 1),
            Self.record(.delete, 1, ordinal: 2), Self.record(.update, 2, .text("c"), ordinal: 3),
        ])
        #expect(changes.deletes.map(\.key) == ["[\"1\"]"])
        #expect(changes.upserts.map(\.key) == ["[\"2\"]"])
        #expect(changes.upserts[0].columns.map(\.value) == [.int4(2), .text("c")])
        #expect(changes.upserts[0].baseKey == nil, "a complete row needs no stored values")
    }

    @Test("an unchanged column is filled from an earlier upsert in the batch, or left to the stored row")
    func unchanged() {
        let alone = ResourceStateChanges.collapse([Self.record(.update, 1, .unchanged)])
        #expect(alone.upserts[0].columns.map(\.name) == ["id"], "absent: the stored value stays")
        #expect(alone.upserts[0].baseKey == "[\"1\"]")
        let after = ResourceStateChanges.collapse([Self.record(.insert, 1, .text("a")), Self.record(.update, 1, .unchanged, ordinal: 1)])
        #expect(after.upserts[0].columns.map(\.value) == [.int4(1), .text("a")])
        let null = ResourceStateChanges.collapse([Self.record(.update, 1, .null)])
        #expect(null.upserts[0].columns.map(\.value) == [.int4(1), .null], "NULL is a value, not unchanged")
    }

    @Test("a key change deletes the old key and takes unchanged columns from its row")
    func keyChange() {
        let changes = ResourceStateChanges.collapse([Self.record(.update, 9, .unchanged, oldKey: 4)])
        #expect(changes.deletes.map(\.key) == ["[\"4\"]"])
        #expect(changes.upserts[0].key == "[\"9\"]" && changes.upserts[0].baseKey == "[\"4\"]")
    }

    @Test("a truncate forgets what came before it in the batch and resets the resource")
    func truncate() {
        let changes = ResourceStateChanges.collapse([
            Self.record(.insert, 1, .text("a")), Self.record(.truncate, 0, ordinal: 1), Self.record(.insert, 2, .text("b"), ordinal: 2),
        ])
        #expect(changes.truncated == ["R"])
        #expect(changes.upserts.map(\.key) == ["[\"2\"]"] && changes.deletes.isEmpty)
    }

    @Test("key text is unambiguous: a comma inside a value is not a separator")
    func keyText() {
        #expect(RowDigest.keyText([Column("a", .text("x,y"))]) != RowDigest.keyText([Column("a", .text("x")), Column("b", .text("y"))]))
        #expect(RowDigest.keyText([Column("a", .null)]) == "[null]")
    }

    /// The hub's copy after `changes`, as `HubCopy.apply` writes it (`HubCopy.replay`, its in-memory form).
    static func applied(_ changes: ResourceStateChanges, to stored: [String: [String: Value]]) -> [String: [String: Value]] {
        var rows = stored.mapValues { row in row.map { Column($0.key, $0.value) } }
        HubCopy.replay(changes, onto: &rows)
        return rows.mapValues { Dictionary(uniqueKeysWithValues: $0.map { ($0.name, $0.value) }) }
    }

    /// The same records applied one at a time, as PostgreSQL would have applied them.
    static func replayed(_ records: [ChangeRecord], on stored: [String: [String: Value]]) -> [String: [String: Value]] {
        var state = stored
        for record in records {
            switch record.operation {
            case .truncate: state = [:]
            case .delete: state[RowDigest.keyText(record.key)] = nil
            case .insert, .update:
                let key = RowDigest.keyText(record.key)
                let oldKey = record.oldKey.map(RowDigest.keyText) ?? key
                var row = state[oldKey] ?? [:]
                state[oldKey] = nil
                for column in record.key + record.values where column.value != .unchanged { row[column.name] = column.value }
                state[key] = row
            }
        }
        return state
    }

    @Test("collapsing a batch and writing the result equals replaying its records one by one (random batches, key changes, TOAST)")
    func collapseEqualsReplay() {
        var random = SplitMix64(state: 0xC011_A95E)
        for round in 0..<500 {
            let stored = Dictionary(uniqueKeysWithValues: (0..<4).map { id in
                (RowDigest.keyText([Column("id", .int4(Int32(id)))]), ["id": Value.int4(Int32(id)), "name": .text("s\(id)"), "doc": .text("d\(id)")])
            })
            var records: [ChangeRecord] = []
            var present = Set(stored.keys.compactMap { key in Int32(key.dropFirst(2).dropLast(2)) })
            for ordinal in 0..<Int(random.next() % 12 + 1) {
                let id = Int32(random.next() % 7)
                let roll = random.next() % 20
                let name: Value = random.next() % 3 == 0 ? .unchanged : .text("n\(round).\(ordinal)")
                let doc: Value = random.next() % 3 == 0 ? .unchanged : .text("x\(ordinal)")
                if roll == 0 {
                    records.append(Self.record(.truncate, 0, ordinal: UInt32(ordinal)))
                    present = []
                } else if roll < 5 {
                    records.append(Self.record(.delete, id, ordinal: UInt32(ordinal)))
                    present.remove(id)
                } else if roll < 8, let old = present.randomElement(using: &random), old != id, !present.contains(id) {
                    var change = Self.record(.update, id, name, oldKey: old, ordinal: UInt32(ordinal))
                    change.values.append(Column("doc", doc))
                    records.append(change)
                    present.remove(old)
                    present.insert(id)
                } else if present.contains(id) {
                    var change = Self.record(.update, id, name, ordinal: UInt32(ordinal))
                    change.values.append(Column("doc", doc))
                    records.append(change)
                } else {
                    // An insert carries every column.
                    var insert = Self.record(.insert, id, .text("i\(ordinal)"), ordinal: UInt32(ordinal))
                    insert.values.append(Column("doc", .text("j\(ordinal)")))
                    records.append(insert)
                    present.insert(id)
                }
            }
            let collapsed = Self.applied(ResourceStateChanges.collapse(records), to: stored)
            #expect(collapsed == Self.replayed(records, on: stored), "round \(round): \(records)")
        }
    }
}
