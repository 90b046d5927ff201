import GovexApply
import GovexWire
import Testing

/// What an apply does, as statements, without a database.
@Suite("Apply plan")
struct ApplyPlanTests {
    func record(_ operation: ChangeOperation, _ id: Int32, name: Value? = nil, oldID: Int32? = nil, ordinal: UInt32 = 0) -> ChangeRecord {
        ChangeRecord(operation: operation, resource: "R", position: SourcePosition(commit: 1, ordinal: ordinal), key: [Column("id", .int4(id))],
                     values: name.map { [Column("name", $0)] } ?? [], oldKey: oldID.map { [Column("id", .int4($0))] })
    }

    @Test("consecutive upserts of one shape are one statement; a repeated key starts the next")
    func upsertRuns() throws {
        let statements = try ApplyPlan.statements(for: [
            record(.insert, 1, name: .text("a")), record(.update, 2, name: .text("b")), record(.update, 1, name: .text("c")),
        ], schema: "s", table: "t")
        #expect(statements == [
            ApplyStatement(sql: #"INSERT INTO "s"."t" ("id", "name") VALUES ($1, $2), ($3, $4) ON CONFLICT ("id") DO UPDATE SET "name" = EXCLUDED."name""#,
                           parameters: ["1", "a", "2", "b"]),
            ApplyStatement(sql: #"INSERT INTO "s"."t" ("id", "name") VALUES ($1, $2) ON CONFLICT ("id") DO UPDATE SET "name" = EXCLUDED."name""#,
                           parameters: ["1", "c"]),
        ])
    }

    @Test("unchanged (TOASTed) columns are left alone; NULL is a value")
    func unchangedColumns() throws {
        let statements = try ApplyPlan.statements(for: [record(.update, 1, name: .unchanged), record(.update, 2, name: .null)],
                                                  schema: "s", table: "t")
        #expect(statements == [
            ApplyStatement(sql: #"INSERT INTO "s"."t" ("id") VALUES ($1) ON CONFLICT ("id") DO NOTHING"#, parameters: ["1"]),
            ApplyStatement(sql: #"INSERT INTO "s"."t" ("id", "name") VALUES ($1, $2) ON CONFLICT ("id") DO UPDATE SET "name" = EXCLUDED."name""#,
                           parameters: ["2", nil]),
        ])
    }

    @Test("deletes batch up, a truncate deletes everything, a key change moves the row and upserts it")
    func deletesTruncatesAndKeyChanges() throws {
        let statements = try ApplyPlan.statements(for: [
            record(.delete, 1), record(.delete, 2), record(.truncate, 0), record(.update, 9, name: .unchanged, oldID: 8),
        ], schema: "s", table: "t")
        #expect(statements.map(\.sql) == [
            #"DELETE FROM "s"."t" WHERE "id" IN ($1, $2)"#,
            #"DELETE FROM "s"."t""#,
            #"DELETE FROM "s"."t" WHERE "id" = $1"#,
            #"UPDATE "s"."t" SET "id" = $1 WHERE "id" = $2"#,
            #"INSERT INTO "s"."t" ("id") VALUES ($1) ON CONFLICT ("id") DO NOTHING"#,
        ])
        #expect(statements[0].parameters == ["1", "2"])
        #expect(statements[3].parameters == ["9", "8"])
    }

    @Test("composite keys delete by row comparison; names with quotes stay quoted")
    func compositeKeys() throws {
        let records = [1, 2].map { ChangeRecord(operation: .delete, resource: "R", position: SourcePosition(commit: 1, ordinal: 0),
                                                key: [Column("a\"b", .int4(Int32($0))), Column("c", .text("x"))]) }
        let statements = try ApplyPlan.statements(for: records, schema: "my schema", table: "t\"1")
        #expect(statements == [ApplyStatement(sql: #"DELETE FROM "my schema"."t""1" WHERE ("a""b", "c") IN (($1, $2), ($3, $4))"#,
                                              parameters: ["1", "x", "2", "x"])])
    }

    @Test("a run never exceeds the parameter limit")
    func parameterLimit() throws {
        let records = (0..<40_000).map { record(.insert, Int32($0), name: .text("n")) }
        let statements = try ApplyPlan.statements(for: records, schema: "s", table: "t")
        #expect(statements.count == 3)
        #expect(statements.allSatisfy { $0.parameters.count <= ApplyPlan.maxParameters })
        #expect(statements.reduce(0) { $0 + $1.parameters.count } == 80_000)
    }

    @Test("a key that is NULL or unchanged is refused with the record's position")
    func badKeys() {
        let record = ChangeRecord(operation: .delete, resource: "R", position: SourcePosition(commit: 0x10, ordinal: 3), key: [Column("id", .null)])
        #expect(throws: ApplyPlanError(description: "key column id of the delete at 0/10#3 is null")) {
            try ApplyPlan.statements(for: [record], schema: "s", table: "t")
        }
    }
}
