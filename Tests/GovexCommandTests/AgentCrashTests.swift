import Foundation
import GovexCapture
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// The agent SIGKILLed at random moments while the database takes 100,000 changes:
/// afterwards the spool holds every committed change exactly once, in commit order,
/// with no sequence gap.
@Suite("Agent crash test", .enabled(if: heavyTestsEnabled, "set GOVEX_HEAVY_TESTS=1 (Deploy/run-tests.sh runs it on its own)"))
struct AgentCrashTests {
    @Test("20 SIGKILLs during 100,000 changes lose nothing and duplicate nothing")
    func killedRepeatedly() async throws {
        let database = try await TestPostgres.createDatabase()
        defer { Task { await database.drop() } }
        let sql = try await database.connect()
        try await sql.query("CREATE TABLE residents (id int PRIMARY KEY, name text, secret text)")
        try await sql.query("CREATE TABLE negative (id int PRIMARY KEY, name text)")
        try await sql.query("CREATE PUBLICATION govex FOR TABLE residents, negative")
        let dataDir = Subprocess.temporaryDirectory("govex-crash")
        try Subprocess.check([AgentCommandTests.govex, "keygen", "--out", dataDir + "/keys"])
        let slot = database.name + "_slot"
        let path = try AgentCommandTests.write(AgentCommandTests.config(dataDir: dataDir, conninfo: database.conninfo, slot: slot))

        // 800 transactions: 80,000 inserts, then 20,000 updates, committed while the agent keeps dying.
        let writer = try await database.connect()
        let workload = Task {
            for batch in 0..<800 {
                let first = batch * 100 + 1
                try await writer.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(\(first), \(first + 99)) g")
            }
            for batch in 0..<200 {
                try await writer.query("UPDATE residents SET name = 'u' || id WHERE id BETWEEN \(batch * 100 + 1) AND \(batch * 100 + 100)")
            }
        }
        var kills = 0
        var generator = SystemRandomNumberGenerator()
        while kills < 20 {
            let agent = try Subprocess.start([AgentCommandTests.govex, "agent", "--config", path])
            try await Task.sleep(for: .milliseconds(Int.random(in: 150...900, using: &generator)))
            agent.signal(SIGKILL)
            let result = await agent.finish()
            #expect(result.status == 128 + SIGKILL, "\(result.output)")
            kills += 1
        }
        try await workload.value
        // A last run drains the slot and stops gracefully.
        let last = try Subprocess.start([AgentCommandTests.govex, "agent", "--config", path])
        let deadline = ContinuousClock.now + .seconds(60)
        var records: [ChangeRecord] = []
        let publicKey = try VerifyingKey(pem: String(contentsOfFile: dataDir + "/keys/signing.pub", encoding: .utf8))
        var sequences: [UInt64] = []
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            let entries = try Spool.entries(in: dataDir + "/spool")
            let total = entries.reduce(0) { total, entry in
                total + ((try? BatchFile(bytes: DurableFile.read(dataDir + "/spool/" + Spool.fileName(entry.sequence), limit: 1 << 30)).header.recordCount).map(Int.init) ?? 0)
            }
            if total >= 100_000 { break }
        }
        last.signal(SIGTERM)
        let stopped = await last.finish()
        #expect(stopped.status == 0)
        for entry in try Spool.entries(in: dataDir + "/spool") {
            let batch = try BatchFile(bytes: try DurableFile.read(dataDir + "/spool/" + Spool.fileName(entry.sequence), limit: 1 << 30))
            try batch.verify(with: publicKey)
            records += try batch.records()
            sequences.append(entry.sequence)
        }
        #expect(sequences == Array(1...UInt64(sequences.count)), "no sequence gap")
        #expect(zip(records, records.dropFirst()).allSatisfy { $0.position < $1.position }, "commit order, nothing twice")
        let inserted = records.filter { $0.operation == .insert }.map { $0.key[0].value }
        #expect(inserted == (1...80_000).map { Value.int4(Int32($0)) }, "every insert exactly once")
        #expect(records.filter { $0.operation == .update }.count == 20_000, "every update exactly once")
        #expect(records.count == 100_000)
        await writer.close()
        try await sql.dropSlot(slot)
        await sql.close()
    }
}

/// The two heavy agent tests (20 SIGKILLs under 100,000 changes; 200 MB of WAL) run on their
/// own, after the main suite: beside it they have stalled the whole run (under investigation).
let heavyTestsEnabled = ProcessInfo.processInfo.environment["GOVEX_HEAVY_TESTS"] == "1"
