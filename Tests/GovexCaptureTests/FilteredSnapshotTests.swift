import GovexCapture
import GovexPolicy
import GovexPostgres
import GovexTestSupport
import GovexWire
import Synchronization
import Testing

@Suite("Filtered snapshot of a hostile table name")
struct FilteredSnapshotTests {
    @Test("the filter becomes a quoted WHERE clause; a table named like an injection is only a name")
    func hostileNames() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            let hostile = "x\"; DROP TABLE y; --"
            try await sql.query("CREATE TABLE y (id int)")
            try await sql.query("CREATE TABLE \(SQLQuoting.identifier(hostile)) (id int PRIMARY KEY, \"st'atus\" text, title text)")
            try await sql.query("INSERT INTO \(SQLQuoting.identifier(hostile)) SELECT g, CASE WHEN g % 3 = 0 THEN 'draft' ELSE 'it''s open' END, 't' || g FROM generate_series(1, 300) g")
            let stream = try await ReplicationConnection.connect(database.conninfo)
            let slot = try await stream.createSlot(database.name + "_slot", temporary: true, exportSnapshot: true)
            let mapping = TableMapping(resource: "R", schema: "public", table: hostile, key: ["id"],
                                       filter: try RowFilter.parse("\"st'atus\" = 'it''s open' AND id > 10"))
            let records = Mutex<[ChangeRecord]>([])
            try await InitialSnapshot.copy(conninfo: database.conninfo, snapshotName: slot.snapshotName!, consistentPoint: slot.consistentPoint,
                                           mappings: [mapping], limits: .init(),
                                           emit: { body, _ in
                                               guard body.recordCount > 0 else { return }
                                               let file = try BatchSealer.seal(body, metadata: SampleBatches.metadata(), key: VectorKeys.gongan)
                                               let decoded = try BatchFile(bytes: file).records()
                                               records.withLock { $0 += decoded }
                                           }, progress: { _ in })
            let ids = records.withLock { $0.map { $0.key[0].value } }
            let expectedIDs: [Int] = (11...300).filter { $0 % 3 != 0 }
            let expected: [Value] = expectedIDs.map { Value.int4(Int32($0)) }
            #expect(ids == expected)
            #expect(try await sql.query("SELECT count(*) FROM y").rows[0][0] == "0", "table y still exists")
            await stream.close()
            await sql.close()
        }
    }
}
