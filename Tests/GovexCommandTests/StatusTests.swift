import Foundation
import GovexAgent
import GovexAPI
import GovexHub
import GovexCapture
import GovexPostgres
import GovexTestSupport
import Testing

/// `govex status`: the assessment (pure) and the command against a running agent.
@Suite("govex status")
struct StatusTests {
    static let now: Int64 = 1_800_000_000

    static func facts(_ change: (inout StatusReport.Facts) -> Void = { _ in }) -> StatusReport.Facts {
        var status = AgentStatus(node: "gongan", pid: 42, updatedAt: now - 3, capture: .init(phase: .streaming),
                                 push: .init(lastSuccessAt: now - 10), subscriptions: [.init(resource: "MZ-DB-0001", id: 7, state: "active", appliedThrough: 12)])
        status.subscriptions[0].lastAppliedAt = now - 60
        status.subscriptions[0].applyLagSeconds = 1.25
        var facts = StatusReport.Facts(node: "gongan", now: now, status: status, processAlive: true, publishes: true, hubConfigured: true,
                                       spool: .init(batches: 1, bytes: 900, oldestAgeSeconds: 2, full: false),
                                       slot: .init(name: "govex_gongan", exists: true, active: true, retainedWALBytes: 4 << 20, lagBytes: 4096),
                                       databaseError: nil, retainedWALAlarm: 1 << 30, subscriptionsConfigured: ["MZ-DB-0001"])
        change(&facts)
        return facts
    }

    @Test("healthy: ok, exit 0, every part said")
    func healthy() {
        let report = StatusReport.assess(Self.facts())
        #expect(report.level == .ok && report.level.exitCode == 0, "\(report.findings)")
        #expect(Set(report.findings.map(\.subject)) == ["agent", "capture", "slot govex_gongan", "spool", "hub", "subscription MZ-DB-0001"])
        #expect(report.text(colour: false).contains("subscription MZ-DB-0001: active, applied through delivery 12, last applied 60 s ago, 1.2 s after the provider sealed it"))
    }

    @Test("degraded: the hub unreachable, a subscription pending, the spool aging → warning, exit 1", arguments: [
        ("hub", { @Sendable (facts: inout StatusReport.Facts) in facts.status!.push = .init(lastSuccessAt: now - 400, failingSince: now - 300, lastError: "connection refused") }),
        ("subscription MZ-DB-0001", { @Sendable (facts: inout StatusReport.Facts) in facts.status!.subscriptions[0].state = "pending" }),
        ("spool", { @Sendable (facts: inout StatusReport.Facts) in facts.spool.oldestAgeSeconds = 900 }),
    ] as [(String, @Sendable (inout StatusReport.Facts) -> Void)])
    func degraded(subject: String, change: @Sendable (inout StatusReport.Facts) -> Void) {
        let report = StatusReport.assess(Self.facts(change))
        #expect(report.level == .warning && report.level.exitCode == 1)
        #expect(report.findings.filter { $0.level == .warning }.map(\.subject) == [subject], "\(report.findings)")
    }

    @Test("critical: not running, a dead letter, slot WAL over the limit, the spool full, the database away → exit 2", arguments: [
        ("agent", { @Sendable (facts: inout StatusReport.Facts) in facts.processAlive = false }),
        ("agent", { @Sendable (facts: inout StatusReport.Facts) in facts.status!.updatedAt = now - 120 }),
        ("subscription 7 (MZ-DB-0001)", { @Sendable (facts: inout StatusReport.Facts) in facts.deadLetters = [.init(id: 3, subscription: 7, resource: "MZ-DB-0001")] }),
        ("slot govex_gongan", { @Sendable (facts: inout StatusReport.Facts) in facts.slot!.retainedWALBytes = 2 << 30 }),
        ("spool", { @Sendable (facts: inout StatusReport.Facts) in facts.spool.full = true }),
        ("database", { @Sendable (facts: inout StatusReport.Facts) in facts.databaseError = "connection refused" }),
    ] as [(String, @Sendable (inout StatusReport.Facts) -> Void)])
    func critical(subject: String, change: @Sendable (inout StatusReport.Facts) -> Void) {
        let report = StatusReport.assess(Self.facts(change))
        #expect(report.level == .critical && report.level.exitCode == 2)
        #expect(report.findings.contains { $0.level == .critical && $0.subject == subject }, "\(report.findings)")
    }

    @Test("against a real agent: critical before its first run, ok while the hub takes batches, warning once the hub is down, critical once it stopped")
    func command() async throws {
        try await AgentPushTests.withExchange("govex-status") { exchange, _ in
            let govex = AgentCommandTests.govex
            let notRunYet = try await Subprocess.run([govex, "status", "--config", exchange.agentConfig])
            #expect(notRunYet.status == 2 && notRunYet.output.contains("has not run here yet"), "\(notRunYet.output)")

            let agent = try Subprocess.start([govex, "agent", "--config", exchange.agentConfig])
            try await exchange.sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(1, 20) g")
            #expect(try await AgentPushTests.eventually {
                let status = try await Subprocess.run([govex, "status", "--config", exchange.agentConfig])
                return status.status == 0 && status.output.contains("capture: streaming") && status.output.contains("hub: last push")
            })
            let json = try await Subprocess.run([govex, "status", "--json", "--config", exchange.agentConfig])
            let report = try JSONDecoder().decode(StatusReport.self, from: Data(json.output.utf8))
            #expect(report.level == .ok && report.slot?.exists == true && report.status?.capture?.phase == .streaming, "\(json.output)")

            exchange.hub.signal(SIGTERM)
            _ = await exchange.hub.finish()
            try await exchange.sql.query("INSERT INTO residents VALUES (500, 'after', 's')")
            #expect(try await AgentPushTests.eventually {
                let status = try await Subprocess.run([govex, "status", "--config", exchange.agentConfig])
                return status.status == 1 && status.output.contains("hub: unreachable or refusing for")
            })

            agent.signal(SIGTERM)
            _ = await agent.finish()
            let stopped = try await Subprocess.run([govex, "status", "--config", exchange.agentConfig])
            #expect(stopped.status == 2 && stopped.output.contains("agent: not running"), "\(stopped.output)")
        }
    }

    static func hubFacts(_ change: (inout HubStatus.Facts) -> Void = { _ in }) -> HubStatus.Facts {
        var facts = HubStatus.Facts(listening: true, listen: "0.0.0.0:8443", schemaVersion: HubSchema.latestVersion,
                                    nodes: [.init(id: "gongan", revoked: false, epoch: "7", pendingEpoch: nil, nextSequence: "42",
                                                  lastPushAgeSeconds: 30, rejectedLastHour: 0, keysWaiting: 0)],
                                    mergeQueueBatches: 2, mergeQueueRecords: 900, mergeQueueOldestSeconds: 3, subscriptionsPending: 0,
                                    refusalsLastHour: [:])
        change(&facts)
        return facts
    }

    @Test("the hub's assessment: healthy; a new epoch, a waiting key, a silent node, a lagging merge, a node's spool full or aging → warning; not listening, merging stuck → critical",
          arguments: [
              (HubStatus.Level.ok, { @Sendable (facts: inout HubStatus.Facts) in facts.refusalsLastHour = ["node_revoked": 3] }),
              (.warning, { @Sendable (facts: inout HubStatus.Facts) in facts.nodes[0].pendingEpoch = "1800000000000000" }),
              (.warning, { @Sendable (facts: inout HubStatus.Facts) in facts.nodes[0].keysWaiting = 1 }),
              (.warning, { @Sendable (facts: inout HubStatus.Facts) in facts.nodes[0].lastPushAgeSeconds = 7200 }),
              (.warning, { @Sendable (facts: inout HubStatus.Facts) in facts.mergeQueueOldestSeconds = 600 }),
              (.ok, { @Sendable (facts: inout HubStatus.Facts) in facts.nodes[0].spool = .init(batches: 3, bytes: 9000, oldestAgeSeconds: 20, full: false) }),
              (.warning, { @Sendable (facts: inout HubStatus.Facts) in facts.nodes[0].spool = .init(batches: 90, bytes: 1 << 26, oldestAgeSeconds: 900, full: false) }),
              (.warning, { @Sendable (facts: inout HubStatus.Facts) in facts.nodes[0].spool = .init(batches: 9000, bytes: 1 << 30, oldestAgeSeconds: 60, full: true) }),
              (.critical, { @Sendable (facts: inout HubStatus.Facts) in facts.listening = false }),
              (.critical, { @Sendable (facts: inout HubStatus.Facts) in facts.mergeQueueOldestSeconds = 3600 }),
          ] as [(HubStatus.Level, @Sendable (inout HubStatus.Facts) -> Void)])
    func hubAssessment(level: HubStatus.Level, change: @Sendable (inout HubStatus.Facts) -> Void) {
        let status = HubStatus.assess(Self.hubFacts(change))
        #expect(status.level == level, "\(status.findings)")
        #expect(status.level.exitCode == level.exitCode)
    }

    @Test("govex hub status against a real hub: its node's last push, then critical once the hub stopped; --json decodes")
    func hubCommand() async throws {
        try await AgentPushTests.withExchange("govex-hub-status") { exchange, _ in
            let govex = AgentCommandTests.govex
            let agent = try Subprocess.start([govex, "agent", "--config", exchange.agentConfig])
            try await exchange.sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(1, 5) g")
            #expect(try await AgentPushTests.eventually {
                let status = try await Subprocess.run([govex, "hub", "status", "--config", exchange.hubConfig])
                return status.status == 0 && status.output.contains("node gongan: last push")
            })
            let json = try await Subprocess.run([govex, "hub", "status", "--json", "--config", exchange.hubConfig])
            let status = try JSONDecoder().decode(HubStatus.self, from: Data(json.output.utf8))
            #expect(status.facts.nodes.map(\.id) == ["gongan"] && status.facts.schemaVersion == HubSchema.latestVersion, "\(json.output)")
            // The backlog behind its pushes, as the agent reported it (drained by now, or nearly).
            let reported = try #require(status.facts.nodes.first?.spool, "\(json.output)")
            #expect(reported.batches == 0 && !reported.full && (status.facts.nodes.first?.spoolReportAgeSeconds ?? 99) < 60,
                    "nothing waits behind its last push: \(reported)")
            #expect(status.findings.contains { $0.message.contains("\(reported.batches) batches (0 KiB) waiting behind its last push") }, "\(status.findings)")
            agent.signal(SIGTERM)
            _ = await agent.finish()
            exchange.hub.signal(SIGTERM)
            _ = await exchange.hub.finish()
            let down = try await Subprocess.run([govex, "hub", "status", "--config", exchange.hubConfig])
            #expect(down.status == 2 && down.output.contains("nothing listens on"), "\(down.output)")
        }
    }

    @Test("the spool report an agent sends: round trip; too long, malformed or out of range is ignored")
    func spoolReport() {
        let report = SpoolReport(batches: 3, bytes: 4096, oldestAgeSeconds: 12, full: false)
        #expect(SpoolReport(headerValue: report.headerValue) == report)
        for bad in [nil, "", "not json", #"{"batches":-1,"bytes":0,"oldest_age_seconds":0,"full":false}"#,
                    #"{"batches":1,"bytes":0,"oldest_age_seconds":-5,"full":false}"#, String(repeating: " ", count: 300) + report.headerValue] {
            #expect(SpoolReport(headerValue: bad) == nil, "\(bad ?? "nil")")
        }
    }
}
