import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// The walsender connection on a real server: slot with exported snapshot,
/// stream, and confirmed positions.
@Suite("Logical replication stream")
struct ReplicationStreamTests {
    static func commits(_ messages: [PgOutputMessage]) -> [UInt64] {
        messages.compactMap { if case .commit(_, _, let end, _) = $0 { return end } else { return nil } }
    }

    @Test("snapshot and stream together hold every row once; flushed positions are confirmed")
    func snapshotThenStream() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            try await sql.query("CREATE TABLE \(SQLQuoting.identifier("居民 \"登记\"")) (id int PRIMARY KEY, name text)")
            try await sql.query("CREATE PUBLICATION \(SQLQuoting.identifier("govex pub")) FOR TABLE \(SQLQuoting.identifier("居民 \"登记\""))")
            try await sql.query("INSERT INTO \(SQLQuoting.identifier("居民 \"登记\"")) SELECT g, 'before ' || g FROM generate_series(1, 100) g")

            let stream = try await ReplicationConnection.connect(database.conninfo)
            let system = try await stream.identifySystem()
            #expect(system.database == database.name)
            let slot = try await stream.createSlot(database.name + "_slot", temporary: true, exportSnapshot: true)
            #expect(slot.consistentPoint > 0)
            let snapshotName = try #require(slot.snapshotName)

            // Written after the slot exists: in the stream, not in the snapshot.
            try await sql.query("INSERT INTO \(SQLQuoting.identifier("居民 \"登记\"")) SELECT g, 'after ' || g FROM generate_series(101, 150) g")

            let reader = try await database.connect()
            try await reader.query("BEGIN ISOLATION LEVEL REPEATABLE READ")
            try await reader.query("SET TRANSACTION SNAPSHOT \(SQLQuoting.literal(snapshotName))")
            let inSnapshot = try await reader.query("SELECT count(*), max(id) FROM \(SQLQuoting.identifier("居民 \"登记\""))")
            #expect(inSnapshot.rows[0] == ["100", "100"])
            try await reader.query("COMMIT")

            try await stream.startReplication(slot: slot.name, from: 0, publications: ["govex pub"])
            let messages = try await ReplicationTestStream.collect(stream) { !Self.commits($0).isEmpty }
            let inserted = messages.compactMap { message -> String? in
                guard case .insert(_, let values) = message, case .text(let id) = values[0] else { return nil }
                return String(decoding: id, as: UTF8.self)
            }
            #expect(inserted == (101...150).map(String.init))
            let commitEnd = try #require(Self.commits(messages).first)

            try await stream.sendStatus(written: commitEnd, flushed: commitEnd, applied: commitEnd)
            var confirmed: String? = nil
            for _ in 0..<50 {
                confirmed = try await sql.query("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", [slot.name]).rows.first?[0] ?? nil
                if confirmed == LSN.format(commitEnd) { break }
                _ = try await stream.next(timeout: .milliseconds(100))
            }
            #expect(confirmed == LSN.format(commitEnd))
            await stream.close()
            await reader.close()
            await sql.close()
        }
    }

    @Test("slot names that would need quoting are refused before reaching the server", arguments: ["Upper", "with space", "x;drop", ""])
    func badSlotNames(name: String) async throws {
        try await TestPostgres.withDatabase { database in
            let stream = try await ReplicationConnection.connect(database.conninfo)
            await #expect(throws: PostgresError.self) { _ = try await stream.createSlot(name) }
            await stream.close()
        }
    }
}
