import GovexCapture
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// The initial copy table by table: a crash keeps what was copied, a table published later
/// is copied alone, and the spool, replayed as the hub applies it, equals the source tables.
@Suite("Resumable snapshot")
struct ResumableSnapshotTests {
    static func mapping(_ table: String) -> TableMapping {
        TableMapping(resource: table == "a" ? "GA-RK-0001" : "GA-" + table.uppercased(), schema: "public", table: table, key: ["id"])
    }

    static func configuration(_ database: TestDatabase, slot: String, directory: String, tables: [String]) -> CaptureConfiguration {
        CaptureConfiguration(
            nodeID: "gongan", conninfo: database.conninfo, slot: slot, publications: ["govex"],
            mappings: tables.map(mapping),
            batchLimits: .init(maxRecords: 100, maxBytes: 1 << 20, maxAge: .milliseconds(200)),
            dataDirectory: directory, signingKey: VectorKeys.gongan)
    }

    /// The rows a consumer holds after applying `records` in order, per resource: id → name.
    static func replay(_ records: [ChangeRecord]) -> [String: [Value: Value]] {
        var tables: [String: [Value: Value]] = [:]
        for record in records {
            switch record.operation {
            case .insert, .update:
                if let old = record.oldKey { tables[record.resource]?[old[0].value] = nil }
                tables[record.resource, default: [:]][record.key[0].value] = record.values.first?.value ?? .null
            case .delete:
                tables[record.resource]?[record.key[0].value] = nil
            case .truncate:
                tables[record.resource] = [:]
            }
        }
        return tables
    }

    static func rows(_ sql: PostgresConnection, _ table: String) async throws -> [Value: Value] {
        var rows: [Value: Value] = [:]
        for row in try await sql.query("SELECT id, name FROM \(table)").rows {
            rows[.int4(Int32(row[0]!)!)] = row[1].map(Value.text) ?? .null
        }
        return rows
    }

    /// How often each key of `resource` was inserted.
    static func insertCounts(_ records: [ChangeRecord], _ resource: String) -> [Value: Int] {
        records.filter { $0.resource == resource && $0.operation == .insert }.reduce(into: [:]) { $0[$1.key[0].value, default: 0] += 1 }
    }

    @Test("a crash mid-snapshot keeps the slot and the tables copied: the restart copies the rest, the cut-short table again after a truncate")
    func resumesAfterACrash() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            for table in ["a", "b", "c"] {
                try await sql.query("CREATE TABLE \(table) (id int PRIMARY KEY, name text)")
                try await sql.query("INSERT INTO \(table) SELECT g, '\(table)' || g FROM generate_series(1, 1000) g")
            }
            try await sql.query("CREATE PUBLICATION govex FOR TABLE a, b, c")
            let directory = Subprocess.temporaryDirectory("govex-capture")
            let slot = database.name + "_slot"
            let helper = Subprocess.buildDirectory + "/govex-test-helper"
            // 100 rows a batch: a takes 10 batches, the crash comes after 5 of b's.
            let crashed = try await Subprocess.run([helper, "capture", database.conninfo, directory, slot, "a,b,c"],
                                                   environment: ["GOVEX_CRASH_AT": "capture.snapshot-batch-spooled#15"])
            #expect(crashed.status == 134, "\(crashed.output)")
            let state = try AgentState.load(from: directory)
            #expect(state.tables["GA-RK-0001"]?.isCopied == true)
            #expect(state.tables["GA-B"]?.phase == .copying)
            #expect(state.tables["GA-C"]?.phase == .pending)
            #expect(try CaptureServiceTests.spooledRecords(directory).records.count == 1500)

            // While the agent is down: changes to the copied table, to rows of b already sent, and to c.
            try await sql.query("INSERT INTO a VALUES (5000, 'while down')")
            try await sql.query("DELETE FROM b WHERE id IN (1, 900)")
            try await sql.query("UPDATE c SET name = 'changed' WHERE id <= 10")
            let configuration = Self.configuration(database, slot: slot, directory: directory, tables: ["a", "b", "c"])
            let stop = CaptureServiceTests.StopSwitch()
            let running = Task { try await CaptureService(configuration: configuration).run(shouldStop: { stop.get() }) }
            #expect(try await eventually { (try? AgentState.load(from: directory).snapshotComplete) ?? false })
            try await sql.query("INSERT INTO c VALUES (6000, 'after the copy')")
            try await sql.query("UPDATE b SET name = 'after the copy' WHERE id = 2")
            #expect(try await eventually { (try? CaptureServiceTests.spooledRecords(directory).records.contains { $0.key.first?.value == .int4(6000) }) ?? false })
            stop.set(.graceful)
            try await running.value

            let (records, sequences) = try CaptureServiceTests.spooledRecords(directory)
            #expect(sequences == Array(1...UInt64(sequences.count)), "gapless sequences")
            #expect(Self.insertCounts(records, "GA-RK-0001").values.allSatisfy { $0 == 1 } && Self.insertCounts(records, "GA-RK-0001").count == 1001,
                    "a is not copied again: each row once, and the row inserted while down through the stream")
            #expect(records.filter { $0.operation == .truncate }.map(\.resource) == ["GA-B"], "only b's copy, cut short, starts over")
            let replayed = Self.replay(records)
            for table in ["a", "b", "c"] {
                let resource = Self.mapping(table).resource
                #expect(replayed[resource] == (try await Self.rows(sql, table)), "\(table): the spool replays to the table")
            }
            #expect(try AgentState.load(from: directory).snapshotComplete)
            try await sql.dropSlot(slot)
            await sql.close()
        }
    }

    @Test("a table published later is copied alone under its own snapshot; its changes from before the copy are not sent twice")
    func tableAddedLater() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            for table in ["a", "b"] {
                try await sql.query("CREATE TABLE \(table) (id int PRIMARY KEY, name text)")
            }
            try await sql.query("INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 100) g")
            try await sql.query("INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 300) g")
            try await sql.query("CREATE PUBLICATION govex FOR TABLE a, b")
            let directory = Subprocess.temporaryDirectory("govex-capture")
            let slot = database.name + "_slot"
            try await CaptureServiceTests.capture(CaptureService(configuration: Self.configuration(database, slot: slot, directory: directory, tables: ["a"])),
                                                  stop: .graceful) { try AgentState.load(from: directory).snapshotComplete }
            // Captured while only a is mapped: b's changes stream by and are not mapped.
            try await sql.query("INSERT INTO a SELECT g, 'a' || g FROM generate_series(101, 110) g")
            try await sql.query("UPDATE b SET name = 'updated' WHERE id <= 50")
            try await sql.query("INSERT INTO b VALUES (301, 'inserted')")
            try await sql.query("DELETE FROM b WHERE id = 300")

            let configuration = Self.configuration(database, slot: slot, directory: directory, tables: ["a", "b"])
            let stop = CaptureServiceTests.StopSwitch()
            let running = Task { try await CaptureService(configuration: configuration).run(shouldStop: { stop.get() }) }
            // The state said complete before this run began: wait for b's own copy.
            #expect(try await eventually { (try? AgentState.load(from: directory).tables["GA-B"]?.isCopied) == true })
            try await sql.query("INSERT INTO b VALUES (302, 'after the copy')")
            #expect(try await eventually { (try? CaptureServiceTests.spooledRecords(directory).records.contains { $0.key.first?.value == .int4(302) }) ?? false })
            stop.set(.graceful)
            try await running.value

            let (records, _) = try CaptureServiceTests.spooledRecords(directory)
            let a = Self.insertCounts(records, "GA-RK-0001"), b = Self.insertCounts(records, "GA-B")
            #expect(a.count == 110 && a.values.allSatisfy { $0 == 1 }, "a is not copied again; its changes while stopped arrive once")
            #expect(b.count == 301 && b.values.allSatisfy { $0 == 1 }, "b's rows once each: 1…299, 301 in the copy, 302 streamed")
            #expect(!records.contains { $0.resource == "GA-B" && $0.operation != .insert }, "b's updates and delete before its copy are in the copy, not sent again")
            #expect(!records.contains { $0.operation == .truncate })
            let replayed = Self.replay(records)
            #expect(replayed["GA-RK-0001"] == (try await Self.rows(sql, "a")))
            #expect(replayed["GA-B"] == (try await Self.rows(sql, "b")))
            let state = try AgentState.load(from: directory)
            if case .copied(let a)? = state.tables["GA-RK-0001"]?.phase, case .copied(let b)? = state.tables["GA-B"]?.phase {
                #expect(b > a, "b was copied under a later snapshot than a")
            } else {
                Issue.record("both tables copied: \(state.tables)")
            }
            #expect(try await sql.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1", [slot + "_copy%"]).rows[0][0] == "0",
                    "the copy's temporary slot is gone")
            try await sql.dropSlot(slot)
            await sql.close()
        }
    }

    @Test("a table to copy that is not in the publication is refused with the statement that adds it: its changes would be lost")
    func unpublishedTableRefused() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            try await sql.query("CREATE TABLE a (id int PRIMARY KEY, name text)")
            try await sql.query("CREATE TABLE b (id int PRIMARY KEY, name text)")
            try await sql.query("CREATE PUBLICATION govex FOR TABLE a")
            let directory = Subprocess.temporaryDirectory("govex-capture")
            let configuration = Self.configuration(database, slot: database.name + "_slot", directory: directory, tables: ["a", "b"])
            await #expect { try await CaptureService(configuration: configuration).run(shouldStop: { nil }) } throws: { error in
                "\(error)".contains(#"ALTER PUBLICATION "govex" ADD TABLE "public"."b""#)
            }
            #expect(try CaptureServiceTests.spooledRecords(directory).records.isEmpty, "nothing copied")
            await sql.close()
        }
    }
}
