import GovexApply
import GovexPostgres
import GovexWire
import Testing

/// What an apply does, as staged rows and statements, without a database.
@Suite("Apply plan")
struct ApplyPlanTests {
    func record(_ operation: ChangeOperation, _ id: Int32, name: Value? = nil, oldID: Int32? = nil, ordinal: UInt32 = 0) -> ChangeRecord {
        ChangeRecord(operation: operation, resource: "R", position: SourcePosition(commit: 1, ordinal: ordinal), key: [Column("id", .int4(id))],
                     values: name.map { [Column("name", $0)] } ?? [], oldKey: oldID.map { [Column("id", .int4($0))] })
    }

    func staged(_ steps: [ApplyStep]) -> [StagedChanges] {
        steps.compactMap { if case .staged(let changes) = $0 { changes } else { nil } }
    }

    @Test("records fold into one row per key, in the order they came: the last write wins, a delete then insert replaces")
    func folding() throws {
        let steps = try ApplyPlan.steps(for: [
            record(.insert, 1, name: .text("a")), record(.update, 2, name: .text("b")), record(.update, 1, name: .text("c")),
            record(.delete, 2), record(.delete, 3), record(.insert, 3, name: .text("d")),
        ], schema: "s", table: "t")
        let runs = staged(steps)
        #expect(steps.count == 1 && runs.count == 1)
        #expect(runs[0].keyNames == ["id"] && runs[0].columns == ["name"])
        #expect(runs[0].rows.map(\.action) == [.upsert, .delete, .upsert])
        #expect(runs[0].rows.map(\.key) == [["1"], ["2"], ["3"]])
        #expect(runs[0].rows.map(\.replaces) == [false, false, true])
        #expect(runs[0].rows[0].values == ["c"])
        #expect(runs[0].statements(target: #""s"."t""#, stage: "st") == [
            #"DELETE FROM "s"."t" AS t USING st AS s WHERE (s.govex_action = 'd' OR s.govex_replaces) AND t."id" = s."id""#,
            #"INSERT INTO "s"."t" ("id", "name") SELECT "id", "name" FROM st WHERE govex_action = 'u' AND govex_present = '1' ON CONFLICT ("id") DO UPDATE SET "name" = EXCLUDED."name""#,
        ])
    }

    @Test("unchanged (TOASTed) columns are left alone, a later record's value fills them; NULL is a value")
    func unchangedColumns() throws {
        let steps = try ApplyPlan.steps(for: [
            record(.update, 1, name: .unchanged), record(.update, 2, name: .null), record(.update, 3, name: .unchanged), record(.update, 3, name: .text("z")),
        ], schema: "s", table: "t")
        let run = try #require(staged(steps).first)
        #expect(run.rows.map { run.presence(of: $0) } == ["0", "1", "1"])
        #expect(run.rows.map(\.values) == [[], [nil], ["z"]])
        let statements = run.statements(target: "t", stage: "st")
        #expect(statements == [
            #"INSERT INTO t ("id") SELECT "id" FROM st WHERE govex_action = 'u' AND govex_present = '0' ON CONFLICT ("id") DO NOTHING"#,
            #"INSERT INTO t ("id", "name") SELECT "id", "name" FROM st WHERE govex_action = 'u' AND govex_present = '1' ON CONFLICT ("id") DO UPDATE SET "name" = EXCLUDED."name""#,
        ])
        var copy: [UInt8] = []
        run.copyData { copy += $0 }
        #expect(String(decoding: copy, as: UTF8.self) == "u\tf\t0\t1\t\\N\nu\tf\t1\t2\t\\N\nu\tf\t1\t3\tz\n")
    }

    @Test("a truncate ends the run; a key change deletes the old key and replaces the new; one without every column moves the stored row")
    func truncatesAndKeyChanges() throws {
        let steps = try ApplyPlan.steps(for: [
            record(.insert, 1, name: .text("a")), record(.truncate, 0), record(.update, 5, name: .text("b"), oldID: 4),
            record(.update, 9, name: .unchanged, oldID: 8),
        ], schema: "s", table: "t")
        #expect(steps.count == 6)
        #expect(steps[1] == .statement(ApplyStatement(sql: #"DELETE FROM "s"."t""#, parameters: [])))
        let moved = staged(steps)[1]
        #expect(moved.rows.map(\.action) == [.delete, .upsert] && moved.rows.map(\.key) == [["4"], ["5"]] && moved.rows[1].replaces)
        #expect(steps[3] == .statement(ApplyStatement(sql: #"DELETE FROM "s"."t" WHERE "id" = $1"#, parameters: ["9"])))
        #expect(steps[4] == .statement(ApplyStatement(sql: #"UPDATE "s"."t" SET "id" = $1 WHERE "id" = $2"#, parameters: ["9", "8"])))
        #expect(staged(steps)[2].rows.map(\.key) == [["9"]])
    }

    @Test("composite keys match column by column; names with quotes stay quoted; COPY escapes what it must")
    func compositeKeysAndEscapes() throws {
        // Updates: planned per key and staged (inserts of whole rows skip the plan, see newRows).
        let records = ["x\ty", "back\\slash\nline"].enumerated().map {
            ChangeRecord(operation: .update, resource: "R", position: SourcePosition(commit: 1, ordinal: 0),
                         key: [Column("a\"b", .int4(Int32($0.offset))), Column("c", .text("k"))], values: [Column("v", .text($0.element))])
        }
        let run = try #require(staged(try ApplyPlan.steps(for: records, schema: "my schema", table: "t\"1")).first)
        #expect(run.copyStatement(stage: "st") == #"COPY st ("govex_action", "govex_replaces", "govex_present", "a""b", "c", "v") FROM STDIN"#)
        var copy: [UInt8] = []
        run.copyData { copy += $0 }
        #expect(String(decoding: copy, as: UTF8.self) == "u\tf\t1\t0\tk\tx\\ty\nu\tf\t1\t1\tk\tback\\\\slash\\nline\n")
        var fields: [[UInt8]?] = []
        let firstLine = Array(copy.split(separator: UInt8(ascii: "\n"))[1])
        try firstLine.withUnsafeBytes { fields = try CopyText.fields($0, expected: 6) }
        #expect(fields[5].map { String(decoding: $0, as: UTF8.self) } == "back\\slash\nline", "what COPY reads back is the value")
    }

    @Test("200,000 records stream out in bounded chunks")
    func chunks() throws {
        let records = (0..<200_000).map { record(.update, Int32($0), name: .text("name \($0)")) }
        let run = try #require(staged(try ApplyPlan.steps(for: records, schema: "s", table: "t")).first)
        var sizes: [Int] = []
        run.copyData(chunkSize: 1 << 16) { sizes.append($0.count) }
        #expect(sizes.count > 10 && sizes.allSatisfy { $0 < (1 << 16) + 4096 })
        #expect(run.rows.count == 200_000)
    }

    @Test("a key that is NULL or unchanged is refused with the record's position; so is a change of key columns")
    func badKeys() {
        let record = ChangeRecord(operation: .delete, resource: "R", position: SourcePosition(commit: 0x10, ordinal: 3), key: [Column("id", .null)])
        #expect(throws: ApplyPlanError(description: "key column id of the delete at 0/10#3 is null")) {
            try ApplyPlan.steps(for: [record], schema: "s", table: "t")
        }
        let other = ChangeRecord(operation: .delete, resource: "R", position: SourcePosition(commit: 0x10, ordinal: 4), key: [Column("code", .text("a"))])
        #expect(throws: ApplyPlanError.self) { try ApplyPlan.steps(for: [self.record(.delete, 1), other], schema: "s", table: "t") }
    }

    @Test("inserts of whole rows are copied straight from the records; with the prefix, and a repeated key folded, their lines are the staged plan's")
    func newRows() throws {
        func insert(_ id: Int32, _ name: Value, _ operation: ChangeOperation = .insert) -> ChangeRecord {
            ChangeRecord(operation: operation, resource: "R", position: SourcePosition(commit: 1, ordinal: UInt32(id)),
                         key: [Column("id", .int4(id)), Column("part", .text("p\t\(id)"))], values: [Column("name", name), Column("note", .text("x\ny\\"))])
        }
        let truncate = ChangeRecord(operation: .truncate, resource: "R", position: SourcePosition(commit: 0, ordinal: 0))
        // Key 7 twice: the staged plan folds it into its second values.
        let records = (1...50).map { insert(Int32($0), $0 % 7 == 0 ? .null : .text("n\r\($0)")) } + [insert(7, .text("again"))]
        guard case .newRows(let rows)? = try ApplyPlan.steps(for: records, schema: "public", table: "t").first else {
            Issue.record("inserts of whole rows are new rows")
            return
        }
        #expect(rows.shape.directCopyStatement(target: "public.t") == #"COPY public.t ("id", "part", "name", "note") FROM STDIN"#)
        var direct: [UInt8] = []
        rows.directCopyData(chunkSize: 64) { direct += $0 }
        // The same records after a truncate take the staged way (a run of inserts, planned per key).
        let stagedSteps = try ApplyPlan.steps(for: [truncate] + records, schema: "public", table: "t")
        guard case .staged(let planned)? = stagedSteps.last else {
            Issue.record("after a truncate the records are staged")
            return
        }
        #expect(planned.onlyNewRows)
        var stagedLines: [UInt8] = []
        planned.copyData(chunkSize: 64) { stagedLines += $0 }
        #expect(StagedChanges.stagedText(fromDirect: direct, linePrefix: rows.shape.stagedLinePrefix, keyFields: 2) == stagedLines)
        #expect(rows.shape.upsertStatement(presence: "11", target: "t", stage: "st") == planned.statements(target: "t", stage: "st").last)
        func steps(_ records: [ChangeRecord]) throws -> [ApplyStep] { try ApplyPlan.steps(for: records, schema: "public", table: "t") }
        #expect(try staged(steps([insert(1, .text("a")), insert(1, .text("b"), .update)])).first?.onlyNewRows == false, "an update may meet a stored row")
        #expect(try staged(steps([insert(1, .text("a")), insert(2, .unchanged)])).first?.onlyNewRows == false, "a row without every column is not new")
        #expect(throws: ApplyPlanError.self, "a NULL key is refused as before") {
            try steps([ChangeRecord(operation: .insert, resource: "R", position: SourcePosition(commit: 1, ordinal: 0), key: [Column("id", .null)])])
        }
    }
}
