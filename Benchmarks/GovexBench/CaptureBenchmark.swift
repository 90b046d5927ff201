import ArgumentParser
import Foundation
import GovexCapture
import GovexPostgres
import GovexTestSupport
import GovexWire

/// The agent's capture path end to end (walsender → pgoutput → decode → batch → LZ4 →
/// sign → fsynced spool → confirm) against `pg_recvlogical` streaming the same changes
/// (pgoutput, same publication) from a twin slot to /dev/null. Both slots are created
/// before the workload, so each consumer reads the same backlog as fast as it can.
struct CaptureBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Insert then update N rows; time the agent's capture to its spool against pg_recvlogical.",
        discussion: """
        Uses the PostgreSQL server named by GOVEX_TEST_PG (a superuser conninfo; wal_level=logical),
        or else starts a throwaway cluster. The agent's data directory (spool, fsynced) is --data-dir.
        """)

    @Option(help: "Rows inserted, then each updated once.")
    var rows = 1_000_000

    @Option(help: "Rows per workload transaction.")
    var transactionRows = 1_000

    @Flag(help: "Run the agent, then pg_recvlogical, instead of both at the same time.")
    var sequential = false

    @Option(help: "The agent's data directory (on a real disk: its fsyncs are part of the cost).")
    var dataDir = FileManager.default.currentDirectoryPath + "/.build/bench-capture"

    func run() async throws {
        #if DEBUG
        print("warning: this is a debug build; run with `swift run -c release govex-bench capture` for real figures")
        #endif
        let binaries = Subprocess.buildDirectory
        try? FileManager.default.removeItem(atPath: dataDir)
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        try Subprocess.check([binaries + "/govex", "keygen", "--out", dataDir + "/keys"])
        let changes = 2 * rows

        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await sql.query("""
                    CREATE TABLE residents (id int8 PRIMARY KEY, id_number text NOT NULL, name text NOT NULL,
                        district text, born date, score numeric(10,2), updated timestamptz)
                    """)
                try await sql.query("CREATE PUBLICATION govex FOR TABLE residents")
                let slot = database.name + "_agent", twin = database.name + "_twin"
                let configPath = dataDir + "/agent.toml"
                try Self.agentConfiguration(dataDir: dataDir, conninfo: database.conninfo, slot: slot)
                    .write(toFile: configPath, atomically: true, encoding: .utf8)

                // First start: the agent creates its slot (an empty snapshot), then stops.
                progress("agent: creating slot \(slot)")
                let first = try Subprocess.start([binaries + "/govex", "agent", "--config", configPath])
                for _ in 0..<600 where !((try? AgentState.load(from: dataDir).snapshotComplete) ?? false) {
                    try await Task.sleep(for: .milliseconds(100))
                }
                first.signal(SIGTERM)
                let stopped = await first.finish(within: .seconds(60))
                guard stopped.succeeded else { throw ValidationError("the agent's first run failed: \(stopped.output)") }
                try await sql.query("SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')", [twin])

                let workloadStart = ContinuousClock.now
                let lastStart = try await Self.workload(sql, rows: rows, transactionRows: transactionRows, progress: progress)
                let workloadTime = ContinuousClock.now - workloadStart
                let end = try await sql.query("SELECT pg_catalog.pg_current_wal_lsn()::text").rows[0][0] ?? "0/0"
                progress(String(format: "workload: %d changes committed in %.1f s; WAL end %@", changes, workloadTime.seconds, end))

                // Sequentially, the agent goes first: it reads the WAL cold, pg_recvlogical after it warm.
                let reference = sequential ? nil : Task { try await Self.runRecvLogical(conninfo: database.conninfo, slot: twin, endLSN: end) }
                let agent = try await Self.runAgent(binary: binaries + "/govex", configPath: configPath, dataDir: dataDir,
                                                    lastTransactionAfter: LSN.parse(lastStart) ?? 0, progress: progress)
                let recv: Run
                if let reference { recv = try await reference.value } else {
                    recv = try await Self.runRecvLogical(conninfo: database.conninfo, slot: twin, endLSN: end)
                }
                let spoolBytes = try Spool.entries(in: dataDir + "/spool").reduce(0) { $0 + $1.bytes }

                let agentRate = Double(changes) / agent.elapsed.seconds
                let recvRate = Double(changes) / recv.elapsed.seconds
                print("")
                print("govex capture benchmark: \(rows) inserts + \(rows) updates in transactions of \(transactionRows), "
                      + (sequential ? "one consumer at a time" : "both consumers at once") + ", \(ProcessInfo.processInfo.activeProcessorCount) cores")
                print(String(format: "pg_recvlogical (pgoutput → /dev/null):        %8.0f changes/s  (%.2f s, peak RSS %.1f MiB)",
                             recvRate, recv.elapsed.seconds, Double(recv.peakRSS) / 1_048_576))
                print(String(format: "govex agent (decode, batch, LZ4, sign, fsync): %8.0f changes/s  (%.2f s, peak RSS %.1f MiB)",
                             agentRate, agent.elapsed.seconds, Double(agent.peakRSS) / 1_048_576))
                print(String(format: "ratio agent / pg_recvlogical:                  %.2f×  (target ≥ 0.7×)", agentRate / recvRate))
                print(String(format: "agent peak RSS:                                %.1f MiB  (target ≤ 64 MiB)", Double(agent.peakRSS) / 1_048_576))
                print(String(format: "spool: %.1f MB in %d batches (%.0f bytes/change)", Double(spoolBytes) / 1e6,
                             try Spool.entries(in: dataDir + "/spool").count, Double(spoolBytes) / Double(changes)))
                try await sql.query("SELECT pg_catalog.pg_drop_replication_slot($1)", [slot])
                try await sql.query("SELECT pg_catalog.pg_drop_replication_slot($1)", [twin])
            }
        }
    }

    /// Inserts `rows` rows, then updates each once, in transactions of `transactionRows`;
    /// returns the WAL position just before the last transaction.
    static func workload(_ sql: PostgresConnection, rows: Int, transactionRows: Int,
                         progress: (String) -> Void) async throws -> String {
        for first in stride(from: 1, through: rows, by: transactionRows) {
            let last = min(first + transactionRows - 1, rows)
            try await sql.query("""
                INSERT INTO residents
                SELECT g, lpad((110101198001010000 + g)::text, 18, '0'), '张' || g, '东城区第' || (g % 97) || '街道',
                       date '1950-01-01' + (g % 20000), (g % 100000) / 100.0, timestamptz '2026-01-01 08:00:00+08' + g * interval '1 second'
                FROM generate_series(\(first), \(last)) g
                """)
            if last % (rows / 10 == 0 ? 1 : rows / 10) == 0 { progress("workload: \(last) rows inserted") }
        }
        var lastStart = "0/0"
        for first in stride(from: 1, through: rows, by: transactionRows) {
            let last = min(first + transactionRows - 1, rows)
            if last == rows { lastStart = try await sql.query("SELECT pg_catalog.pg_current_wal_lsn()::text").rows[0][0] ?? "0/0" }
            try await sql.query("UPDATE residents SET score = score + 1, updated = updated + interval '1 day' WHERE id BETWEEN \(first) AND \(last)")
            if last % (rows / 10 == 0 ? 1 : rows / 10) == 0 { progress("workload: \(last) rows updated") }
        }
        return lastStart
    }

    struct Run {
        let elapsed: Duration
        let peakRSS: Int
    }

    static func runRecvLogical(conninfo: String, slot: String, endLSN: String) async throws -> Run {
        let start = ContinuousClock.now
        let running = try Subprocess.start([
            "pg_recvlogical", "--dbname", conninfo, "--slot", slot, "--start", "--endpos", endLSN,
            "--option", "proto_version=1", "--option", "publication_names=govex",
            "--fsync-interval", "0", "--no-loop", "--file", "/dev/null",
        ])
        let result = await running.finish(within: .seconds(3600))
        let elapsed = ContinuousClock.now - start
        guard result.succeeded else { throw ValidationError("pg_recvlogical failed: \(result.output)") }
        return Run(elapsed: elapsed, peakRSS: result.peakRSS)
    }

    /// Starts the agent and times it until its state shows the last transaction spooled.
    static func runAgent(binary: String, configPath: String, dataDir: String, lastTransactionAfter: UInt64,
                         progress: (String) -> Void) async throws -> Run {
        let start = ContinuousClock.now
        let agent = try Subprocess.start([binary, "agent", "--config", configPath])
        var lastReport = start
        while true {
            if let position = (try? AgentState.load(from: dataDir))?.lastPosition, position.commit > lastTransactionAfter { break }
            if kill(agent.pid, 0) != 0 { throw ValidationError("the agent exited: \(await agent.finish().output)") }
            if ContinuousClock.now - lastReport > .seconds(2) {
                lastReport = ContinuousClock.now
                let records = (try? Spool.entries(in: dataDir + "/spool").count) ?? 0
                progress("agent: \(records) batches spooled")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let elapsed = ContinuousClock.now - start
        agent.signal(SIGTERM)
        let stopped = await agent.finish(within: .seconds(60))
        guard stopped.succeeded else { throw ValidationError("the agent did not stop cleanly: \(stopped.output)") }
        return Run(elapsed: elapsed, peakRSS: stopped.peakRSS)
    }

    static func agentConfiguration(dataDir: String, conninfo: String, slot: String) -> String {
        """
        [node]
        id = "gongan"
        data_dir = "\(dataDir)"

        [signing]
        algorithm = "ed25519"
        key = "\(dataDir)/keys/signing.key"

        [source]
        conninfo = "\(conninfo)"
        slot = "\(slot)"
        publication = "govex"

        [[publish]]
        resource = "GA-RK-0001"
        share = "unconditional"
        table = "public.residents"
        key = ["id"]
        """
    }

    func progress(_ message: String) {
        FileHandle.standardError.write(Data("… \(message)\n".utf8))
    }
}
