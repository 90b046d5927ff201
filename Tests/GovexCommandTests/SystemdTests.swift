import Foundation
import GovexAgent
import GovexPostgres
import GovexTestSupport
import Testing

/// The sd_notify conversation and the journal's form, for the hub and the agent as systemd
/// runs them (Type=notify, WatchdogSec), against a real datagram socket.
@Suite("govex under systemd")
struct SystemdTests {
    static let govex = AgentCommandTests.govex

    /// Every line a service writes carries a journald priority prefix.
    static func unprefixedLines(_ output: String) -> [Substring] {
        output.split(separator: "\n").filter { line in
            !(line.count > 3 && line.first == "<" && line.dropFirst().first.map { ("0"..."7").contains($0) } == true && line.dropFirst(2).first == ">")
        }
    }

    @Test("the hub says READY=1 once listening, WATCHDOG=1 on its own, STOPPING=1 and `stopped` at SIGTERM; every line has a priority")
    func hubNotifies() async throws {
        try await TestPostgres.withDatabase { database in
            let port = try freeLoopbackPort()
            let config = try AgentCommandTests.write(HubCommandTests.config(dataDir: Subprocess.temporaryDirectory("govex-hub-sd"),
                                                                            conninfo: database.conninfo, port: port))
            try await Subprocess.checkAsync([Self.govex, "hub", "init", "--config", config])
            let notifyPath = Subprocess.temporaryDirectory("gvx-h") + "/n"
            let notifications = try DatagramListener(path: notifyPath)
            let hub = try Subprocess.start([Self.govex, "hub", "--config", config], environment: ["NOTIFY_SOCKET": notifyPath, "WATCHDOG_USEC": "1000000"])
            #expect(await notifications.arrives("READY=1", within: .seconds(30)), "no READY=1 from the hub")
            #expect(await notifications.arrives("WATCHDOG=1", within: .seconds(2)), "the hub unit has WatchdogSec: it would be killed")
            hub.signal(SIGTERM)
            let stopped = await hub.finish(within: .seconds(30))
            #expect(stopped.status == 0, "\(stopped.output)")
            #expect(await notifications.arrives("STOPPING=1", within: .seconds(1)))
            #expect(stopped.output.contains("<6>govex hub: stopping"), "\(stopped.output)")
            #expect(stopped.output.contains("<6>govex hub: stopped"), "\(stopped.output)")
            #expect(Self.unprefixedLines(stopped.output).isEmpty, "lines journald cannot rank: \(Self.unprefixedLines(stopped.output))")
        }
    }

    @Test("a service that cannot start says why at a journald priority (critical), naming the file")
    func fatalStartErrors() async throws {
        let missing = Subprocess.temporaryDirectory("govex-missing") + "/absent.toml"
        let agent = try await Subprocess.run([Self.govex, "agent", "--config", missing])
        #expect(agent.status == 2)
        #expect(agent.output.hasPrefix("<2>govex agent: cannot run: cannot read \(missing)"), "\(agent.output)")
        let hub = try await Subprocess.run([Self.govex, "hub", "--config", missing])
        #expect(hub.status == 2)
        #expect(hub.output.hasPrefix("<2>govex hub: cannot run:") && hub.output.contains(missing), "\(hub.output)")
    }

    @Test("`govex agent --validate` (the unit's ExecReload, before SIGHUP): 0 for a good file, 2 naming the problem for a broken one")
    func validate() async throws {
        let dataDir = Subprocess.temporaryDirectory("govex-validate")
        try Subprocess.check([Self.govex, "keygen", "--out", dataDir + "/keys"])
        let good = try AgentCommandTests.write(AgentCommandTests.config(dataDir: dataDir, conninfo: "host=127.0.0.1 port=1", slot: "govex_v"))
        let ok = try await Subprocess.run([Self.govex, "agent", "--validate", "--config", good])
        #expect(ok.status == 0 && ok.output.contains("loads"), "\(ok.output)")
        let broken = try AgentCommandTests.write(AgentCommandTests.config(dataDir: dataDir, conninfo: "host=127.0.0.1 port=1", slot: "govex_v")
            .replacingOccurrences(of: "[batch]", with: "[batchh]"))
        let refused = try await Subprocess.run([Self.govex, "agent", "--validate", "--config", broken])
        #expect(refused.status == 2 && refused.output.contains("batchh"), "\(refused.output)")
    }

    @Test("a reload while the hub is away finishes within seconds, and WATCHDOG=1 never pauses (backoffs used to hold both up)")
    func reloadDuringOutage() async throws {
        try await ExchangeTests.withDepartments(subscribe: false) { departments, hub in
            let notifyPath = Subprocess.temporaryDirectory("gvx-r") + "/n"
            let notifications = try DatagramListener(path: notifyPath)
            let a = try Subprocess.start([Self.govex, "agent", "--config", departments.aConfig],
                                         environment: ["NOTIFY_SOCKET": notifyPath, "WATCHDOG_USEC": "3000000"])
            func log() -> String { (try? String(contentsOfFile: a.outputPath, encoding: .utf8)) ?? "" }
            #expect(try await AgentPushTests.eventually { log().contains("streaming") })
            hub.signal(SIGTERM)
            let hubOutput = await hub.finish().output
            // Node events are in the hub's log, not only in its audit trail.
            #expect(hubOutput.contains("<5>govex hub: node gongan enrolled from 127.0.0.1") && hubOutput.contains("<5>govex hub: node minzheng enrolled"),
                    "\(hubOutput)")
            #expect(Self.unprefixedLines(hubOutput).isEmpty, "\(Self.unprefixedLines(hubOutput))")
            // Batches wait for the hub; pushes and feedback polls fail and back off further each time.
            for id in 1...3 {
                try await departments.aSQL.query("INSERT INTO residents VALUES ($1, 'n', 's')", ["\(1000 + id)"])
                try await Task.sleep(for: .seconds(5))
            }
            #expect(await notifications.first(within: .seconds(10)) { $0.hasPrefix("STATUS=streaming, spool ") && $0.contains("hub unreachable for") } != nil,
                    "systemctl status shows the outage: \(notifications.messages.filter { $0.hasPrefix("STATUS=") })")
            let asked = ContinuousClock.now
            a.signal(SIGHUP)
            #expect(await notifications.arrives("RELOADING=1", within: .seconds(2)))
            var reloadedAt: ContinuousClock.Instant? = nil
            while reloadedAt == nil, ContinuousClock.now - asked < .seconds(20) {
                if log().contains("reloaded") { reloadedAt = .now }
                try await Task.sleep(for: .milliseconds(50))
            }
            let reloaded = try #require(reloadedAt, "no reload within 20 s: \(log())")
            #expect(reloaded - asked < .seconds(5), "the reload waited \(reloaded - asked) for a backoff")
            try await Task.sleep(for: .seconds(3))
            let pings = notifications.arrivals(of: "WATCHDOG=1").filter { $0 >= asked - .seconds(2) }
            let gaps = zip(pings, pings.dropFirst()).map { $1 - $0 }
            #expect(!pings.isEmpty && gaps.allSatisfy { $0 < .seconds(3) }, "watchdog gaps \(gaps): systemd kills after WatchdogSec (3 s here)")
            a.signal(SIGTERM)
            let stopped = await a.finish()
            #expect(stopped.status == 0, "\(stopped.output)")
            #expect(Self.unprefixedLines(stopped.output).isEmpty, "\(Self.unprefixedLines(stopped.output))")
        }
    }

    @Test("a long initial copy: READY=1 before it ends, STATUS= with its progress and EXTEND_TIMEOUT_USEC while it runs, STATUS=streaming after, status.json")
    func snapshotNotifies() async throws {
        try await HeavyTestGate.shared.run { try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            let (dataDir, slot, path) = try await AgentCommandTests.prepareAgent(database, sql, directoryPrefix: "govex-snap-sd")
            try await sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(1, 200000) g")
            try await sql.query("ANALYZE residents")
            let notifyPath = Subprocess.temporaryDirectory("gvx-s") + "/n"
            let notifications = try DatagramListener(path: notifyPath)
            let agent = try Subprocess.start([Self.govex, "agent", "--config", path], environment: ["NOTIFY_SOCKET": notifyPath])
            func log() -> String { (try? String(contentsOfFile: agent.outputPath, encoding: .utf8)) ?? "" }
            #expect(try await AgentPushTests.eventually { log().contains("streaming") }, "\(log())")
            let said = notifications.messages
            let ready = try #require(said.firstIndex(of: "READY=1"), "\(said)")
            let copying = try #require(said.firstIndex { $0.hasPrefix("STATUS=snapshot GA-RK-0001") }, "no snapshot STATUS=: \(said)")
            #expect(ready < copying, "READY=1 comes once the slot exists, not after the copy: \(said)")
            #expect(said.contains { $0.hasPrefix("EXTEND_TIMEOUT_USEC=") }, "\(said)")
            #expect(said[copying].contains("table 1 of 1"), "\(said[copying])")
            #expect(await notifications.first(within: .seconds(10)) { $0.hasPrefix("STATUS=streaming") } != nil, "\(notifications.messages)")
            let status = try AgentStatus.read(dataDirectory: dataDir)
            #expect(status.capture?.phase == .streaming && status.node == "gongan", "\(status)")
            agent.signal(SIGTERM)
            let stopped = await agent.finish()
            #expect(stopped.status == 0, "\(stopped.output)")
            try await sql.dropSlot(slot)
            await sql.close()
        } }
    }

    @Test("a subscriber stops within 3 s on SIGTERM while its long-poll (20 s) waits at the hub (5 s before: TLS close), and loses nothing")
    func subscriberStopsPromptly() async throws {
        try await ExchangeTests.withDepartments { departments, hub in
            let a = try Subprocess.start([Self.govex, "agent", "--config", departments.aConfig])
            let b = try Subprocess.start([Self.govex, "agent", "--config", departments.bConfig])
            func bLog() -> String { (try? String(contentsOfFile: b.outputPath, encoding: .utf8)) ?? "" }
            try await departments.aSQL.query("INSERT INTO residents VALUES (1, 'n', 's')")
            #expect(try await AgentPushTests.eventually {
                try await departments.bSQL.query("SELECT count(*) FROM shared.residents").rows[0][0] == "1"
            }, "\(bLog())")
            try await Task.sleep(for: .seconds(2))  // B is now waiting in a long-poll
            let asked = ContinuousClock.now
            b.signal(SIGTERM)
            let stopped = await b.finish()
            #expect(stopped.status == 0, "\(stopped.output)")
            #expect(ContinuousClock.now - asked < .seconds(3), "the stop waited \(ContinuousClock.now - asked) for the long-poll")
            // What came meanwhile is applied after a restart: the cursor was kept.
            try await departments.aSQL.query("INSERT INTO residents VALUES (2, 'm', 's')")
            let again = try Subprocess.start([Self.govex, "agent", "--config", departments.bConfig])
            #expect(try await AgentPushTests.eventually {
                try await departments.bSQL.query("SELECT count(*) FROM shared.residents").rows[0][0] == "2"
            })
            for process in [a, again] { process.signal(SIGTERM) }
            for process in [a, again] { #expect(await process.finish().status == 0) }
            hub.signal(SIGTERM)
            _ = await hub.finish()
        }
    }
}
