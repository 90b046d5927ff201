import Foundation
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// Quiet mapped tables must not hold WAL back while other tables take writes:
/// the agent confirms the server's position from keepalives when it holds nothing.
@Suite("Idle slot")
struct IdleSlotTests {
    @Test("after ~200 MB of writes to an unmapped table, the slot retains under 64 MB of WAL")
    func quietTablesHoldNoWAL() async throws {
        // Heavy: every WAL sender on the server decodes what it writes (or it waits on them).
        try await HeavyTestGate.shared.run { try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            let (_, slot, path) = try await AgentCommandTests.prepareAgent(database, sql, directoryPrefix: "govex-idle")
            try await sql.query("CREATE TABLE busy (id int PRIMARY KEY, payload text)")
            let agent = try Subprocess.start([AgentCommandTests.govex, "agent", "--config", path])
            let start = try await sql.query("SELECT pg_current_wal_lsn()::text").rows[0][0] ?? "0/0"
            for chunk in 0..<10 {
                try await sql.query("INSERT INTO busy SELECT g, repeat(md5(g::text), 32) FROM generate_series(\(chunk * 20_000 + 1), \((chunk + 1) * 20_000)) g")
            }
            let retained = { () async throws -> Int64 in
                let row = try await sql.query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1", [slot])
                return row.rows.first?[0].flatMap { Int64($0) } ?? .max
            }
            let written = try await sql.query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::int8", [start]).rows[0][0].flatMap { Int64($0) } ?? 0
            #expect(written > 200_000_000, "the workload wrote \(written) bytes of WAL")
            var lastRetained: Int64 = .max
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                // The restart position moves only after a running-transactions record is confirmed; a checkpoint makes one.
                try await sql.query("CHECKPOINT")
                lastRetained = try await retained()
                if lastRetained < 64 << 20 { break }
                try await Task.sleep(for: .seconds(1))
            }
            #expect(lastRetained < 64 << 20, "the slot still retains \(lastRetained) bytes of WAL")
            agent.signal(SIGTERM)
            let stopped = await agent.finish()
            #expect(stopped.status == 0, "\(stopped.output)")
            try await sql.dropSlot(slot)
            await sql.close()
        } }
    }
}
