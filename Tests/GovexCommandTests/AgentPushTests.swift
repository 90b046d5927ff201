import Foundation
import GovexCapture
import GovexHub
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// A real agent and a real hub, as processes: changes reach the hub's copy of the
/// resource; while the hub is down the spool grows, and drains in order once it is back.
@Suite("Agent pushes to the hub")
struct AgentPushTests {
    /// A hub initialised in `hubDatabase`, with GA-RK-0001 (provided by gongan) in its catalog and a token for gongan.
    static func prepareHub(_ hubDatabase: TestDatabase) async throws -> (config: String, port: Int, token: String, caHash: String) {
        let govex = AgentCommandTests.govex
        let port = try freeLoopbackPort()
        let config = try AgentCommandTests.write(HubCommandTests.config(dataDir: Subprocess.temporaryDirectory("govex-hub"), conninfo: hubDatabase.conninfo,
                                                                        port: port, metrics: true))
        try await Subprocess.checkAsync([govex, "hub", "init", "--config", config])
        try await PostgresConnection.with(hubDatabase.conninfo) { sql in
            try await Catalog.upsert(Catalog.Resource(code: "GA-RK-0001", name: "residents", provider: "gongan", share: "conditional", key: ["id"], columns: ["id", "name"]), on: sql)
        }
        let added = try await Subprocess.run([govex, "hub", "node", "add", "gongan", "--config", config])
        let token = try #require(added.output.split(separator: "\n").first { !$0.contains(" ") }.map(String.init))
        let command = try #require(added.output.split(separator: "\n").first { $0.contains("govex enroll") })
        let caHash = try #require(command.split(separator: " ").drop { $0 != "--ca-sha256" }.dropFirst().first.map(String.init))
        return (config, port, token, caHash)
    }

    static func startHub(_ config: String) async throws -> Subprocess.Running {
        let hub = try Subprocess.start([AgentCommandTests.govex, "hub", "--config", config])
        for _ in 0..<100 {
            if (try? String(contentsOfFile: hub.outputPath, encoding: .utf8))?.contains("listening on") == true { return hub }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("the hub did not start: \((try? String(contentsOfFile: hub.outputPath, encoding: .utf8)) ?? "")")
    }

    struct Exchange {
        let hub: Subprocess.Running
        let hubConfig: String
        let sql: PostgresConnection
        let hubSQL: PostgresConnection
        let dataDir: String
        let slot: String
        let agentConfig: String
    }

    /// A hub (started) and an enrolled agent (not started), each with a database of its own.
    static func withExchange(_ prefix: String, _ body: (Exchange, TestDatabase) async throws -> Void) async throws {
        try await TestPostgres.withDatabase { hubDatabase in
            try await TestPostgres.withDatabase { agentDatabase in
                let (hubConfig, port, token, caHash) = try await prepareHub(hubDatabase)
                let hub = try await startHub(hubConfig)
                do {
                    try await PostgresConnection.with(agentDatabase.conninfo) { sql in
                        try await PostgresConnection.with(hubDatabase.conninfo) { hubSQL in
                            let (dataDir, slot, agentConfig) = try await AgentCommandTests.prepareAgent(
                                agentDatabase, sql, directoryPrefix: prefix, hub: "https://127.0.0.1:\(port)")
                            try await Subprocess.checkAsync([AgentCommandTests.govex, "enroll", "--hub", "https://127.0.0.1:\(port)", "--token", token,
                                                             "--ca-sha256", caHash, "--config", agentConfig])
                            try await body(Exchange(hub: hub, hubConfig: hubConfig, sql: sql, hubSQL: hubSQL, dataDir: dataDir, slot: slot,
                                                    agentConfig: agentConfig), agentDatabase)
                        }
                    }
                } catch {
                    await hub.stopIfRunning()
                    throw error
                }
                // A test that returns early (or forgets) leaves no hub running.
                await hub.stopIfRunning()
            }
        }
    }

    /// Waits up to 60 s for `condition`.
    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        try await GovexTestSupport.eventually(condition)
    }

    @Test("an agent whose [[publish]] columns differ from the catalog's does not start; a failed request to the hub is an error, not a crash")
    func refusesMismatchedColumns() async throws {
        try await Self.withExchange("govex-columns") { exchange, _ in
            // The catalog lists id alone; the agent would publish id and name.
            try await Catalog.upsert(Catalog.Resource(code: "GA-RK-0001", name: "residents", provider: "gongan", share: "conditional",
                                                      key: ["id"], columns: ["id"]), on: exchange.hubSQL)
            let agent = try await Subprocess.run([AgentCommandTests.govex, "agent", "--config", exchange.agentConfig], within: .seconds(60))
            #expect(agent.status == 2, "\(agent.output)")
            #expect(agent.output.contains("[[publish]] GA-RK-0001 publishes name, which the hub's catalog does not list"), "\(agent.output)")
            #expect(!agent.output.contains("streaming"), "nothing was captured: \(agent.output)")
            let slots = try await exchange.sql.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", [exchange.slot]).rows[0][0]
            #expect(slots == "0", "no slot was made")

            // With the hub gone, a command's request fails cleanly (the client is shut down, no abort).
            exchange.hub.signal(SIGTERM)
            _ = await exchange.hub.finish(within: .seconds(30))
            let listed = try await Subprocess.run([AgentCommandTests.govex, "subscriptions", "--config", exchange.agentConfig], within: .seconds(60))
            #expect(listed.status == 2, "an error exit, not a signal: \(listed.status) \(listed.output)")
            #expect(!listed.output.contains("not shut down"), "\(listed.output)")
        }
    }

    @Test("captured changes reach the hub's copy; a hub outage only grows the spool, which then drains in order")
    func pushThroughOutage() async throws {
        try await Self.withExchange("govex-push") { exchange, agentDatabase in
            var hub = exchange.hub
            let (sql, hubSQL, dataDir, slot, agentConfig, hubConfig) = (exchange.sql, exchange.hubSQL, exchange.dataDir, exchange.slot, exchange.agentConfig, exchange.hubConfig)
            let govex = AgentCommandTests.govex
            try await sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(1, 50) g")
            let agent = try Subprocess.start([govex, "agent", "--config", agentConfig])

            func hubRows() async throws -> Int {
                Int(try await hubSQL.query("SELECT count(*) FROM govex.resource_rows WHERE resource = 'GA-RK-0001'").rows[0][0] ?? "") ?? -1
            }
            func spooled() -> Int { ((try? Spool.entries(in: dataDir + "/spool")) ?? []).count }
            try await sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(51, 100) g")
            #expect(try await Self.eventually { try await hubRows() == 100 && spooled() == 0 }, "snapshot and changes at the hub, spool empty")

            // The hub goes away; capture goes on into the spool.
            hub.signal(SIGTERM)
            let firstHubLog = await hub.finish().output
            for batch in 0..<5 {
                try await sql.query("INSERT INTO residents SELECT g, 'o' || g, 's' FROM generate_series(\(101 + batch * 20), \(120 + batch * 20)) g")
                try await Task.sleep(for: .milliseconds(300))
            }
            try await sql.query("UPDATE residents SET name = 'changed' WHERE id <= 10")
            try await sql.query("DELETE FROM residents WHERE id > 190")
            #expect(try await Self.eventually { spooled() >= 3 }, "the spool grows while the hub is down")

            hub = try await Self.startHub(hubConfig)
            #expect(try await Self.eventually { spooled() == 0 }, "the spool drains once the hub is back")
            // The hub's copy follows once the merger has taken what the drained spool pushed.
            func changed() async throws -> Int {
                try await HubCopy.rows(of: "GA-RK-0001", on: hubSQL).filter { $0.value(of: "name") == .text("changed") }.count
            }
            let caughtUp = try await Self.eventually {
                let (rows, changedRows) = (try await hubRows(), try await changed())
                return rows == 190 && changedRows == 10
            }
            let (rows, changedRows) = (try await hubRows(), try await changed())
            #expect(caughtUp, "rows \(rows), changed \(changedRows)")
            // The hub's Prometheus endpoint: what it accepted since it came back, and an empty merge queue.
            let secondHubLog = (try? String(contentsOfFile: hub.outputPath, encoding: .utf8)) ?? ""
            let metricsPort = try #require(secondHubLog.split(separator: "\n").first { $0.contains("metrics on http://") }
                .flatMap { $0.split(separator: ":").last?.split(separator: "/").first }.flatMap { Int($0) }, "\(secondHubLog)")
            #expect(try await Self.eventually {
                let metrics = try httpGet(port: metricsPort, path: "/metrics")
                return metrics.contains("govex_hub_batches_total{node=\"gongan\",decision=\"accepted\"}") && metrics.contains("govex_hub_merge_queue_records 0")
                    && metrics.contains("govex_hub_merged_batches_total") && metrics.contains("govex_hub_node_last_push_timestamp_seconds{node=\"gongan\"}")
            }, "\((try? httpGet(port: metricsPort, path: "/metrics")) ?? "")")
            #expect(MetricsText.typesWithoutHelp(try httpGet(port: metricsPort, path: "/metrics")).isEmpty)
            let sequences = try await hubSQL.query("SELECT sequence::int8 FROM govex.batch_index ORDER BY sequence").rows.map { Int($0[0] ?? "") ?? 0 }
            #expect(sequences == Array(1...sequences.count), "stored in order, once each")
            #expect(try await hubSQL.query("SELECT bool_and(accepted) FROM govex.batch_index").rows[0][0] == "t")

            agent.signal(SIGTERM)
            let stopped = await agent.finish()
            #expect(stopped.status == 0, "\(stopped.output)")
            #expect(stopped.output.contains("retrying with backoff"), "the outage was reported")
            #expect(stopped.output.contains("[[publish]] GA-XX-0009 is not a resource this node provides in the hub's catalog"))
            #expect(stopped.output.contains("[[publish]] GA-RK-0001 says share = \"unconditional\" but the hub's catalog says \"conditional\""))
            hub.signal(SIGTERM)
            _ = await hub.finish()
            let hubLog = firstHubLog
            #expect(hubLog.contains("alarm from node gongan: [[publish]] GA-XX-0009 is not a resource"), "\(hubLog)")
            try await sql.dropSlot(slot)
        }
    }

    @Test("the hub SIGKILLed again and again mid-ingest: every batch is stored once, in order, and the hub's copy equals the table")
    func hubKilledMidIngest() async throws {
        try await Self.withExchange("govex-hubkill") { exchange, agentDatabase in
            var hub = exchange.hub
            let (sql, hubSQL, dataDir, slot, agentConfig, hubConfig) = (exchange.sql, exchange.hubSQL, exchange.dataDir, exchange.slot, exchange.agentConfig, exchange.hubConfig)
            let govex = AgentCommandTests.govex
            let agent = try Subprocess.start([govex, "agent", "--config", agentConfig])
            let writer = try await agentDatabase.connect()
            let workload = Task {
                for batch in 0..<40 {
                    try await writer.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(\(batch * 250 + 1), \(batch * 250 + 250)) g")
                    try await Task.sleep(for: .milliseconds(50))
                }
                try await writer.query("UPDATE residents SET name = 'u' || id WHERE id % 7 = 0")
            }
            for _ in 0..<5 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...800)))
                hub.signal(SIGKILL)
                _ = await hub.finish()
                hub = try await Self.startHub(hubConfig)
            }
            try await workload.value
            func spooled() -> Int { ((try? Spool.entries(in: dataDir + "/spool")) ?? []).count }
            let table = try await sql.query("SELECT count(*), count(*) FILTER (WHERE name LIKE 'u%') FROM residents").rows[0]
            func copy() async throws -> [String?] {
                let rows = try await HubCopy.rows(of: "GA-RK-0001", on: hubSQL)
                let updated = rows.filter { if case .text(let name)? = $0.value(of: "name") { name.hasPrefix("u") } else { false } }
                return [String(rows.count), String(updated.count)]
            }
            // An empty spool alone does not say the capture has caught up (it may not have sealed
            // the last changes yet): wait for the hub's copy to hold the whole table.
            #expect(try await Self.eventually { try await copy() == table && spooled() == 0 },
                    "the spool drains: \((try? String(contentsOfFile: agent.outputPath, encoding: .utf8)) ?? "")\n\((try? String(contentsOfFile: hub.outputPath, encoding: .utf8)) ?? "")")

            let sequences = try await hubSQL.query("SELECT sequence::int8 FROM govex.batch_index ORDER BY sequence").rows.map { Int($0[0] ?? "") ?? 0 }
            #expect(sequences == Array(1...max(sequences.count, 1)), "every sequence once, no gap")
            #expect(try await hubSQL.query("SELECT count(*) FROM govex.batches").rows[0][0] == String(sequences.count), "stored once each")
            #expect(try await hubSQL.query("SELECT bool_and(accepted) FROM govex.batch_index").rows[0][0] == "t")
            let copied = try await copy()
            #expect(copied == table && table[0] == "10000", "the hub's copy: \(copied), the table: \(table)")

            agent.signal(SIGTERM)
            #expect(await agent.finish().status == 0)
            hub.signal(SIGTERM)
            _ = await hub.finish()
            await writer.close()
            try await sql.dropSlot(slot)
        }
    }
}
