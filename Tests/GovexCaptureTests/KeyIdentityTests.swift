import GovexCapture
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// A mapped key must identify one row: otherwise two source rows become one downstream.
@Suite("Keys that identify one row")
struct KeyIdentityTests {
    static let table = #""public"."t""#

    @Test("a unique index over key columns only, and NOT NULL key columns; anything else is named with its fix")
    func assessments() {
        #expect(KeyIdentity.assess(key: ["id"], uniqueIndexes: [["id"]], nullable: [], table: Self.table).isEmpty)
        #expect(KeyIdentity.assess(key: ["id", "region"], uniqueIndexes: [["id"]], nullable: [], table: Self.table).isEmpty,
                "a unique index on part of the key makes the whole key unique")
        let superset = KeyIdentity.assess(key: ["id"], uniqueIndexes: [["id", "region"]], nullable: [], table: Self.table)
        #expect(superset.map(\.fix) == [#"CREATE UNIQUE INDEX ON "public"."t" ("id")"#], "unique over more columns than the key: one key, many rows")
        let none = KeyIdentity.assess(key: ["id", "region"], uniqueIndexes: [], nullable: ["region"], table: Self.table)
        #expect(none.map(\.fix) == [#"CREATE UNIQUE INDEX ON "public"."t" ("id", "region")"#, #"ALTER TABLE "public"."t" ALTER COLUMN "region" SET NOT NULL"#])
    }

    @Test("capture refuses a key without a unique index, or one that allows NULL, with the DDL that fixes it; a primary key passes")
    func captureRefuses() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            try await sql.query("CREATE TABLE loose (code text, name text)")
            try await sql.query("INSERT INTO loose VALUES ('A1', 'first'), ('A1', 'second')")
            try await sql.query("CREATE TABLE nullable (code text UNIQUE, name text)")
            try await sql.query("CREATE TABLE keyed (code text PRIMARY KEY, name text)")
            try await sql.query("CREATE PUBLICATION govex FOR TABLE loose, nullable, keyed")
            func run(_ table: String) async -> String? {
                let configuration = CaptureConfiguration(
                    nodeID: "gongan", conninfo: database.conninfo, slot: database.name + "_" + table, publications: ["govex"],
                    mappings: [TableMapping(resource: "R", schema: "public", table: table, key: ["code"])],
                    dataDirectory: Subprocess.temporaryDirectory("govex-capture"), signingKey: VectorKeys.gongan)
                do {
                    try await CaptureService(configuration: configuration).run(shouldStop: { .graceful })
                    return nil
                } catch {
                    return "\(error)"
                }
            }
            let loose = await run("loose")
            #expect(loose?.contains(#"has no unique index: it may not identify one row; CREATE UNIQUE INDEX ON "public"."loose" ("code")"#) == true, "\(loose ?? "started")")
            let nullable = await run("nullable")
            #expect(nullable?.contains(#"key column code allows NULL; ALTER TABLE "public"."nullable" ALTER COLUMN "code" SET NOT NULL"#) == true, "\(nullable ?? "started")")
            #expect(await run("keyed") == nil)
            try await sql.dropSlot(database.name + "_keyed")
            #expect(try await sql.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1", [database.name + "%"]).rows[0][0] == "0",
                    "no slot made for a refused table")
            await sql.close()
        }
    }

    @Test("a table without a primary key, keyed by a unique NOT NULL index that is its replica identity: inserts, updates (a key change too) and deletes arrive keyed")
    func uniqueIndexKey() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            try await sql.query("CREATE TABLE registry (serial bigserial, code text NOT NULL, name text)")
            try await sql.query("CREATE UNIQUE INDEX registry_code ON registry (code)")
            try await sql.query("ALTER TABLE registry REPLICA IDENTITY USING INDEX registry_code")
            try await sql.query("CREATE PUBLICATION govex FOR TABLE registry")
            try await sql.query("INSERT INTO registry (code, name) VALUES ('A1', 'before')")
            let directory = Subprocess.temporaryDirectory("govex-capture")
            let configuration = CaptureConfiguration(
                nodeID: "gongan", conninfo: database.conninfo, slot: database.name + "_slot", publications: ["govex"],
                mappings: [TableMapping(resource: "R", schema: "public", table: "registry", key: ["code"], columns: .excluding(["serial"]))],
                batchLimits: .init(maxRecords: 100, maxBytes: 1 << 20, maxAge: .milliseconds(200)),
                dataDirectory: directory, signingKey: VectorKeys.gongan)
            let stop = CaptureServiceTests.StopSwitch()
            let running = Task { try await CaptureService(configuration: configuration).run(shouldStop: { stop.get() }) }
            #expect(try await eventually { (try? AgentState.load(from: directory).snapshotComplete) ?? false })
            try await sql.query("INSERT INTO registry (code, name) VALUES ('B2', 'new')")
            try await sql.query("UPDATE registry SET name = 'renamed' WHERE code = 'A1'")
            try await sql.query("UPDATE registry SET code = 'C3' WHERE code = 'B2'")
            try await sql.query("DELETE FROM registry WHERE code = 'A1'")
            #expect(try await eventually { ((try? CaptureServiceTests.spooledRecords(directory).records.count) ?? 0) >= 5 })
            stop.set(.graceful)
            try await running.value
            let records = try CaptureServiceTests.spooledRecords(directory).records
            let described = records.map { record in
                "\(record.operation) \(record.key.map { $0.value.postgresText ?? "null" }.joined())"
                    + (record.oldKey.map { " from " + $0.map { $0.value.postgresText ?? "null" }.joined() } ?? "")
                    + (record.values.map { " \($0.name)=\($0.value.postgresText ?? "null")" }.joined())
            }
            #expect(described == ["insert A1 name=before", "insert B2 name=new", "update A1 name=renamed", "update C3 from B2 name=new", "delete A1"], "\(described)")
            try await sql.dropSlot(configuration.slot)
            await sql.close()
        }
    }
}
