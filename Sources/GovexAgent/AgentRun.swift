import Foundation
import GovexAPI
import GovexApply
import GovexCapture
import GovexLog
import Logging
import GovexPostgres
import GovexSystemd
import GovexWire
import Metrics
import ServiceLifecycle

/// One run of the agent with one configuration: connects to the hub, checks the catalog,
/// creates govex's own tables once, then runs its services as a group until a stop or a
/// reload. The group's order is the stop's order reversed: capture first (it seals, spools
/// and confirms what is open), then feedback, subscriptions, the pusher (which still sends
/// what capture sealed) and the status keeper.
struct AgentRun {
    let configuration: AgentConfiguration
    let key: SigningKey
    let notifier: SystemdNotifier

    /// Runs until the group ends; true when it ended for a reload.
    func run(control: RunControl) async throws -> Bool {
        for entry in configuration.publish where entry.share == "none" {
            log(6, "resource \(entry.mapping.resource) is on the negative list (share = none): it is never captured")
        }
        var capture = CaptureConfiguration(
            nodeID: configuration.nodeID, conninfo: configuration.conninfo, slot: configuration.slot,
            publications: [configuration.publication], mappings: configuration.capturedMappings,
            batchLimits: configuration.batch, spoolLimits: configuration.spool,
            dataDirectory: configuration.dataDirectory, signingKey: key)
        capture.retainedWALAlarm = Int64(configuration.retainedWALAlarm)
        capture.heartbeatInterval = configuration.heartbeat
        let captures = !configuration.publish.isEmpty
        log(6, "agent \(configuration.nodeID) starting: " + [
            captures ? "capturing \(capture.mappings.count) resources through slot \(configuration.slot), publication \(configuration.publication)" : nil,
            configuration.subscribe.isEmpty ? nil : "receiving \(configuration.subscribe.count) subscriptions",
        ].compactMap { $0 }.joined(separator: "; "))

        let outbox = try Outbox(configuration: capture)
        outbox.refreshGauges()
        let link = try configuration.hubURL.map { url in try AgentRunner.connectToHub(url: url, configuration: configuration) }
        // The client is shut down however the run ends: one left running aborts a debug build.
        do {
            if let link, captures {
                let publish = try await AgentRunner.checkAgainstCatalog(configuration, client: link.client)
                capture.mappings = publish.filter { $0.share != "none" }.map(\.mapping)
            } else if link == nil {
                log(4, "no [hub] url: batches stay in the spool" + (configuration.subscribe.isEmpty ? "" : " and [[subscribe]] receives nothing"))
            }
            guard try await prepareOwnTables() else {
                await link?.client.shutdown()
                return false
            }
            let group = ServiceGroup(configuration: .init(
                services: services(capture: capture, outbox: outbox, link: link).map { .init(service: $0.service, serviceName: $0.name) },
                logger: AgentRunner.journal.logger(label: "govex-agent", level: .warning)))
            guard await control.begin(group) else {
                await link?.client.shutdown()
                return false
            }
            if !captures { announceReady() }
            try await group.run()
        } catch {
            await link?.client.shutdown()
            throw error
        }
        await link?.client.shutdown()
        return await control.end()
    }

    /// The run's services, in start order.
    private func services(capture: CaptureConfiguration, outbox: Outbox, link: (client: HubClient, hubKeys: HubKeyring)?) -> [(name: String, service: any Service)] {
        let captures = !configuration.publish.isEmpty
        let streaming = Latch()
        let board = StatusBoard(node: configuration.nodeID, captures: captures, subscriptions: configuration.subscribe.map(\.resource))
        var services: [(name: String, service: any Service)] = [
            ("status", RunStatus(board: board, outbox: captures ? outbox : nil, notifier: notifier, dataDirectory: configuration.dataDirectory)),
        ]
        if let link, captures {
            let pusher = BatchPusher(outbox: outbox, client: link.client, hubKeys: link.hubKeys, nodeID: configuration.nodeID,
                                     anchorsDirectory: configuration.dataDirectory + "/anchors", board: board, log: { log($0, $1) })
            services.append(("pusher", ClosureService { await pusher.run() }))
        }
        if let link, !configuration.subscribe.isEmpty {
            let follower = SubscriptionFollower(client: link.client, hubKeys: link.hubKeys, configuration: configuration,
                                                recheck: .seconds(15), board: board, log: { log($0, $1) })
            // Into a table this agent also publishes, nothing is applied before the capture's
            // slot exists: rows applied earlier would be in its initial snapshot and go back
            // to the hub as the department's own (later ones carry the apply's origin).
            let waitsForCapture = captures && configuration.subscribe.contains { entry in
                configuration.publish.contains { $0.mapping.schema == entry.schema && $0.mapping.table == entry.table }
            }
            services.append(("subscriptions", ClosureService {
                if waitsForCapture { _ = try? await cancelWhenGracefulShutdown { await streaming.wait() } }
                // A stop cancels the long-polls in flight (up to 20 s each) instead of waiting them
                // out; a delivery being applied commits or rolls back whole, and one applied but not
                // yet acknowledged is found applied when the hub sends it again.
                _ = try? await cancelWhenGracefulShutdown { await follower.run() }
            }))
        }
        if let link, captures {
            let feedback = FeedbackFollower(client: link.client, conninfo: configuration.conninfo, nodeID: configuration.nodeID,
                                            interval: configuration.feedbackInterval, log: { log($0, $1) })
            services.append(("feedback", ClosureService { await feedback.run() }))
        }
        if captures {
            services.append(("capture", ClosureService {
                try await CaptureService(configuration: capture).run(
                    outbox: outbox,
                    shouldStop: { Task.isShuttingDownGracefully ? .graceful : nil },
                    onEvent: { event in
                        board.capture(event)
                        switch event {
                        case .connected:
                            // Ready once what commits from now on will be captured; the copy that
                            // may follow takes as long as the tables are big, so it is not start-up.
                            announceReady()
                        case .snapshot:
                            // Should a time limit apply meanwhile (RuntimeMaxSec, a stop), a copy in progress asks for more.
                            notifier.notify("EXTEND_TIMEOUT_USEC=\(RunStatus.snapshotExtension.components.seconds * 1_000_000)")
                            notifier.notify("STATUS=" + board.current.line(spool: outbox.spoolFigures, now: Int64(time(nil))))
                        case .streaming:
                            streaming.open()
                            log(6, "streaming")
                        }
                    })
            }))
        }
        return services
    }

    private func announceReady() { notifier.notify("READY=1") }

    /// Creates govex's own tables the configuration needs, once, before any service could
    /// race for them. An unreachable database is waited for; a role without the right to
    /// create them stops the start with the DDL to run. False when a stop came meanwhile.
    private func prepareOwnTables() async throws -> Bool {
        let tables = AgentRunner.ownTables(configuration)
        guard !tables.isEmpty else { return true }
        var failures = 0
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await PostgresConnection.with(configuration.conninfo, name: "govex-own-tables") { sql in
                    try await OwnTables.prepare(tables, in: sql)
                }
                return true
            } catch let error as ApplyError {
                throw error
            } catch {
                failures += 1
                if failures == 1 { log(4, "cannot reach the department's database to prepare govex's tables: \(ApplyError.loggable(error)); retrying with backoff") }
                await idle(for: BatchPusher.backoff(failures: failures))
            }
        }
        return false
    }

    private func log(_ priority: Int, _ message: String) { AgentRunner.log(priority, message) }
}

/// Keeps the run's figures current while it lasts: the spool's gauges move with time (the
/// oldest batch ages while the hub is away), `status.json` for `govex status`, and a
/// STATUS= line for `systemctl status` whenever it changes.
struct RunStatus: Service {
    let board: StatusBoard
    let outbox: Outbox?
    let notifier: SystemdNotifier
    let dataDirectory: String
    var interval: Duration = .seconds(5)
    /// How much longer a snapshot in progress asks systemd for, each time it reports.
    static let snapshotExtension: Duration = .seconds(90)

    func run() async throws {
        var said = ""
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            outbox?.refreshGauges()
            let now = Int64(time(nil))
            do {
                try board.write(to: dataDirectory, now: now)
            } catch {
                AgentRunner.log(4, "cannot write \(dataDirectory)/\(AgentStatus.fileName): \(error)")
            }
            let line = board.current.line(spool: outbox?.spoolFigures, now: now)
            if line != said {
                notifier.notify("STATUS=" + line)
                said = line
            }
            await idle(for: interval)
        }
    }
}
