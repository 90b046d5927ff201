import GovexHub
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
        #expect(ResourceStateChanges.keyText([Column("a", .text("x,y"))]) != ResourceStateChanges.keyText([Column("a", .text("x")), Column("b", .text("y"))]))
        #expect(ResourceStateChanges.keyText([Column("a", .null)]) == "[null]")
    }
}
