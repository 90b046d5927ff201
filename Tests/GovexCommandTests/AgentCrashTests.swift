import Foundation
import GovexCapture
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// The agent SIGKILLed at random moments while the database takes 100,000 changes:
/// afterwards the spool holds every committed change exactly once, in commit order,
/// with no sequence gap.
@Suite("Agent crash test")
struct AgentCrashTests {
    @Test("20 SIGKILLs during 100,000 changes lose nothing and duplicate nothing")
    func killedRepeatedly() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            let (dataDir, slot, path) = try await AgentCommandTests.prepareAgent(database, sql, directoryPrefix: "govex-crash")

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
            // The table as it now stands: what applying the spool in order must reproduce.
            var expected: [Int32: String] = [:]
            for row in try await sql.query("SELECT id, name FROM residents").rows {
                expected[Int32(row[0]!)!] = row[1]!
            }
            #expect(expected.count == 80_000)

            // A last run drains the slot and stops gracefully.
            let last = try Subprocess.start([AgentCommandTests.govex, "agent", "--config", path])
            let publicKey = try VerifyingKey(pem: String(contentsOfFile: dataDir + "/keys/signing.pub", encoding: .utf8))
            let deadline = ContinuousClock.now + .seconds(90)
            var spooled = try Self.readSpool(dataDir + "/spool", key: publicKey)
            while ContinuousClock.now < deadline, Self.apply(spooled.batches) != expected {
                try await Task.sleep(for: .seconds(1))
                spooled = try Self.readSpool(dataDir + "/spool", key: publicKey)
            }
            last.signal(SIGTERM)
            let stopped = await last.finish()
            #expect(stopped.status == 0, "\(stopped.output)")
            spooled = try Self.readSpool(dataDir + "/spool", key: publicKey)

            #expect(spooled.sequences == Array(1...UInt64(spooled.sequences.count)), "no sequence gap")
            let records = spooled.batches.flatMap(\.records)
            #expect(zip(records, records.dropFirst()).allSatisfy { $0.position < $1.position }, "commit order, nothing twice")
            let state = Self.apply(spooled.batches)
            #expect(state.count == expected.count && state == expected,
                    "applying the spool reproduces the table: \(state.count) rows, \(state.filter { expected[$0.key] != $0.value }.count) differ")

            // A kill during the initial copy restarts it (the partial copy's rows are upserts the
            // complete copy repeats); after the last complete copy, each change comes exactly once.
            let lastSnapshot = spooled.batches.lastIndex { $0.kind == .snapshot }
            let copied = lastSnapshot.map { index in
                Set(spooled.batches[...index].reversed().prefix { $0.kind == .snapshot }.flatMap(\.records).map(\.id))
            } ?? []
            let changes = spooled.batches[(lastSnapshot.map { $0 + 1 } ?? 0)...].flatMap(\.records)
            #expect(!spooled.batches[(lastSnapshot.map { $0 + 1 } ?? 0)...].contains { $0.kind == .snapshot })
            let streamedInserts = changes.filter { $0.operation == .insert }.map(\.id)
            #expect(Set(streamedInserts).count == streamedInserts.count, "no insert streamed twice")
            #expect(copied.isDisjoint(with: streamedInserts), "no row both copied and streamed as an insert")
            #expect(copied.count + streamedInserts.count == 80_000, "\(copied.count) copied + \(streamedInserts.count) streamed")
            let updates = changes.filter { $0.operation == .update }.count
            #expect(updates <= 20_000 && (updates == 20_000 || !copied.isEmpty), "\(updates) updates streamed")
            await writer.close()
            try await sql.dropSlot(slot)
            await sql.close()
        }
    }
}

extension AgentCrashTests {
    struct SpooledBatch {
        let kind: BatchKind
        let records: [ChangeRecord]
    }

    static func readSpool(_ directory: String, key: VerifyingKey) throws -> (batches: [SpooledBatch], sequences: [UInt64]) {
        let entries = try Spool.entries(in: directory)
        let batches = try entries.map { entry in
            let batch = try BatchFile(bytes: try DurableFile.read(directory + "/" + Spool.fileName(entry.sequence), limit: 1 << 30))
            try batch.verify(with: key)
            return SpooledBatch(kind: batch.header.kind, records: try batch.records())
        }
        return (batches, entries.map(\.sequence))
    }

    /// The `residents` table a subscriber would hold after applying the batches in order
    /// (snapshot rows are upserts).
    static func apply(_ batches: [SpooledBatch]) -> [Int32: String] {
        var table: [Int32: String] = [:]
        for record in batches.lazy.flatMap(\.records) where record.resource == "GA-RK-0001" {
            switch record.operation {
            case .insert, .update:
                if case .text(let name)? = record.values.first(where: { $0.name == "name" })?.value { table[record.id] = name }
            case .delete: table[record.id] = nil
            case .truncate: table = [:]
            }
        }
        return table
    }
}

private extension ChangeRecord {
    var id: Int32 {
        guard case .int4(let id) = key[0].value else { return -1 }
        return id
    }
}
