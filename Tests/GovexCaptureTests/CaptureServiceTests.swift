import GovexCapture
import GovexPostgres
import GovexTestSupport
import GovexWire
import Synchronization
import Testing

/// The capture loop against a real server: every committed change of a mapped
/// table ends up in the spool exactly once, in commit order, across restarts.
@Suite("Capture service")
struct CaptureServiceTests {
    final class StopSwitch: Sendable {
        let value = Mutex<CaptureService.Stop?>(nil)
        func set(_ stop: CaptureService.Stop) { value.withLock { $0 = stop } }
        func get() -> CaptureService.Stop? { value.withLock { $0 } }
    }

    static func spooledRecords(_ directory: String) throws -> (records: [ChangeRecord], sequences: [UInt64]) {
        // Read-only: the agent may be running and holds the spool's lock.
        let entries = try Spool.entries(in: directory + "/spool")
        var records: [ChangeRecord] = []
        for entry in entries {
            let batch = try BatchFile(bytes: try DurableFile.read(directory + "/spool/" + Spool.fileName(entry.sequence), limit: 1 << 30))
            try batch.verify(with: VectorKeys.gongan.publicKey)
            records += try batch.records()
        }
        return (records, entries.map(\.sequence))
    }

    /// The agent's capture of public.residents as GA-RK-0001, signed by the test node's key.
    static func configuration(_ database: TestDatabase, slot: String, directory: String, maxRecords: Int) -> CaptureConfiguration {
        CaptureConfiguration(
            nodeID: "gongan", conninfo: database.conninfo, slot: slot, publications: ["govex"],
            mappings: [TableMapping(resource: "GA-RK-0001", schema: "public", table: "residents", key: ["id"])],
            batchLimits: .init(maxRecords: maxRecords, maxBytes: 1 << 20, maxAge: .milliseconds(200)),
            dataDirectory: directory, signingKey: VectorKeys.gongan)
    }

    /// Runs the service until `done` holds for the spool or 30 s pass, then stops it with `stop`.
    static func capture(_ service: CaptureService, stop: CaptureService.Stop, until done: @escaping @Sendable () throws -> Bool) async throws {
        let stopSwitch = StopSwitch()
        let running = Task { try await service.run(shouldStop: { stopSwitch.get() }) }
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline, !((try? done()) ?? false) { try await Task.sleep(for: .milliseconds(100)) }
        stopSwitch.set(stop)
        try await running.value
    }

    @Test("changes are spooled once each, in order, with gapless sequences, across an abandoned run and a restart")
    func captureAcrossRestart() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            try await sql.query("CREATE TABLE residents (id int PRIMARY KEY, name text)")
            try await sql.query("CREATE TABLE noise (id int PRIMARY KEY)")
            try await sql.query("CREATE PUBLICATION govex FOR TABLE residents, noise")
            // Present before the agent first starts: these arrive through the initial snapshot.
            try await sql.query("INSERT INTO residents SELECT g, 'old' || g FROM generate_series(1001, 1030) g")
            let directory = Subprocess.temporaryDirectory("govex-capture")
            let configuration = Self.configuration(database, slot: database.name + "_slot", directory: directory, maxRecords: 70)

            // First run: the slot is created; two transactions of 100 inserts each, then the run is abandoned like a crash.
            let first = Task {
                try await Self.capture(CaptureService(configuration: configuration), stop: .abandon) {
                    try Self.spooledRecords(directory).records.count >= 170
                }
            }
            try await Task.sleep(for: .milliseconds(500))
            try await sql.query("INSERT INTO residents SELECT g, 'a' || g FROM generate_series(1, 100) g")
            try await sql.query("INSERT INTO noise SELECT g FROM generate_series(1, 50) g")
            try await sql.query("INSERT INTO residents SELECT g, 'b' || g FROM generate_series(101, 200) g")
            try await first.value

            // While the agent is down: updates and deletes.
            try await sql.query("UPDATE residents SET name = 'c' || id WHERE id % 10 = 0 AND id <= 200")
            try await sql.query("DELETE FROM residents WHERE id > 190 AND id <= 200")

            // Second run resumes from the slot; whatever was re-sent and already spooled is dropped.
            try await Self.capture(CaptureService(configuration: configuration), stop: .graceful) {
                try Self.spooledRecords(directory).records.count >= 260
            }

            let (records, sequences) = try Self.spooledRecords(directory)
            #expect(sequences == Array(1...UInt64(sequences.count)), "gapless sequences")
            #expect(zip(records, records.dropFirst()).allSatisfy { $0.position < $1.position }, "commit order, no duplicates")
            let inserts = records.filter { $0.operation == .insert }.map { $0.key[0].value }
            #expect(inserts == (1001...1030).map { Value.int4(Int32($0)) } + (1...200).map { Value.int4(Int32($0)) },
                    "the snapshot's rows, then every insert, each exactly once")
            #expect(records.filter { $0.operation == .update }.count == 20)
            #expect(records.filter { $0.operation == .delete }.count == 10)
            #expect(records.count == 260)
            #expect(try BatchFile(bytes: try DurableFile.read(directory + "/spool/" + Spool.fileName(1), limit: 1 << 30)).header.kind == .snapshot)
            #expect(try AgentState.load(from: directory).snapshotComplete)
            #expect(Set(records.map(\.resource)) == ["GA-RK-0001"], "the unmapped table never appears")

            // Everything captured was confirmed: the slot is past our last transaction's commit.
            let lastCommit = LSN.format(records.last?.position.commit ?? 0)
            let lag = try await sql.query("""
                SELECT confirmed_flush_lsn > $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1
                """, [configuration.slot, lastCommit])
            #expect(lag.rows.first?[0] == "t")
            try await sql.dropSlot(configuration.slot)
            await sql.close()
        }
    }

    @Test("killed between spooling a batch and recording it, or before confirming it: restarted, nothing is spooled twice",
          arguments: ["capture.spooled-before-state", "capture.before-confirm"])
    func crashAroundSpooling(point: String) async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            try await sql.query("CREATE TABLE residents (id int PRIMARY KEY, name text)")
            try await sql.query("CREATE PUBLICATION govex FOR TABLE residents")
            let directory = Subprocess.temporaryDirectory("govex-capture")
            let slot = database.name + "_slot"
            let helper = Subprocess.buildDirectory + "/govex-test-helper"
            let agent = try Subprocess.start([helper, "capture", database.conninfo, directory, slot, "residents"], environment: ["GOVEX_CRASH_AT": point])
            // Write only once the (empty) snapshot is complete. The slot is listed as soon as its
            // creation starts, but rows committed before it is consistent belong to the snapshot,
            // and the crash point on the streaming path would then never be reached.
            for _ in 0..<300 where !((try? AgentState.load(from: directory).snapshotComplete) ?? false) {
                try await Task.sleep(for: .milliseconds(100))
            }
            try await sql.query("INSERT INTO residents SELECT g, 'n' || g FROM generate_series(1, 250) g")
            let crashed = await agent.finish()
            #expect(crashed.status == 134, "\(crashed.output)")

            let configuration = Self.configuration(database, slot: slot, directory: directory, maxRecords: 100)
            try await Self.capture(CaptureService(configuration: configuration), stop: .graceful) {
                try Self.spooledRecords(directory).records.count >= 250
            }
            let (records, sequences) = try Self.spooledRecords(directory)
            #expect(sequences == Array(1...UInt64(sequences.count)))
            #expect(records.map { $0.key[0].value } == (1...250).map { Value.int4(Int32($0)) }, "each row once, in order")
            try await sql.dropSlot(slot)
            await sql.close()
        }
    }

    @Test("a restart waits for the previous walsender to let go of the slot instead of failing")
    func waitsForTheSlot() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            try await sql.query("CREATE TABLE residents (id int PRIMARY KEY, name text)")
            try await sql.query("CREATE PUBLICATION govex FOR TABLE residents")
            let directory = Subprocess.temporaryDirectory("govex-capture")
            let configuration = Self.configuration(database, slot: database.name + "_slot", directory: directory, maxRecords: 100)
            try await Self.capture(CaptureService(configuration: configuration), stop: .graceful) {
                try AgentState.load(from: directory).snapshotComplete
            }
            // Someone else (as a crashed run's walsender would) holds the slot for a while.
            let holder = try await ReplicationConnection.connect(database.conninfo)
            try await holder.startReplication(slot: configuration.slot, from: 0, publications: ["govex"])
            let release = Task {
                try await Task.sleep(for: .seconds(1))
                await holder.close()
            }
            try await sql.query("INSERT INTO residents VALUES (1, 'after the restart')")
            try await Self.capture(CaptureService(configuration: configuration), stop: .graceful) {
                try Self.spooledRecords(directory).records.count >= 1
            }
            try await release.value
            #expect(try Self.spooledRecords(directory).records.map { $0.key[0].value } == [.int4(1)])
            try await sql.dropSlot(configuration.slot)
            await sql.close()
        }
    }
}
