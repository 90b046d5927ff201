import GovexAPI
import Foundation
import GovexConfiguration
import GovexCapture
import GovexIdentity
import GovexKeyStore
import GovexMetrics
import GovexPostgres
import GovexWire
import Metrics
import Synchronization
import X509
#if canImport(Glibc)
import Glibc
#endif

/// Set from the signal handlers; a C handler cannot capture, so these are global.
private let stopRequested = Atomic<Bool>(false)
private let reloadRequested = Atomic<Bool>(false)

/// A stop or a reload: either way the running tasks wind down gracefully.
private func interrupted() -> Bool {
    stopRequested.load(ordering: .relaxed) || reloadRequested.load(ordering: .relaxed)
}

/// What the capture and push tasks share while the agent runs.
private final class RunFlags: Sendable {
    let stopping = Atomic<Bool>(false)
    let captureDone = Atomic<Bool>(false)
    /// The capture's slot exists (made, snapshot copied, streaming).
    let streaming = Atomic<Bool>(false)
    let lastWatchdog = Mutex(ContinuousClock.now)
}

/// `govex agent`: loads the configuration and the signing key, then runs capture,
/// pushing and pulling until SIGTERM or SIGINT, when it seals, spools and confirms what
/// it holds before exiting. SIGHUP reloads: the same graceful wind-down, then
/// `agent.toml` and the hub's catalog are read again and everything restarts (a
/// configuration that does not load is reported and the running one kept).
public enum AgentRunner {
    public static func run(configurationPath: String, text: String, environment: [String: String]) async throws {
        // First of all, so that a stop during start-up is a graceful one too.
        signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGHUP) { _ in reloadRequested.store(true, ordering: .relaxed) }
        var (configuration, key) = try load(configurationPath: configurationPath, text: text)

        // Metrics are bootstrapped once per process; the endpoint keeps its first address.
        var metricsServer: MetricsServer? = nil
        if let listen = configuration.metricsListen {
            metricsServer = try PrometheusExport.serve(on: listen)
            log(6, "metrics on http://\(listen.split(separator: ":")[0]):\(metricsServer!.port)/metrics")
        }
        defer { _ = metricsServer }
        let notifier = SystemdNotifier(environment: environment)
        while true {
            try await runOnce(configuration, key: key, notifier: notifier)
            guard !stopRequested.load(ordering: .relaxed), reloadRequested.exchange(false, ordering: .relaxed) else { break }
            do {
                (configuration, key) = try load(configurationPath: configurationPath,
                                                text: try String(contentsOfFile: configurationPath, encoding: .utf8))
                log(6, "reloaded \(configurationPath)")
            } catch {
                log(3, "cannot reload \(configurationPath): \(error); going on with the configuration already running")
            }
        }
        log(6, "stopped")
    }

    static func load(configurationPath: String, text: String) throws -> (AgentConfiguration, SigningKey) {
        let configuration = try AgentConfiguration.load(path: configurationPath, text: text)
        let key = try KeyStore.loadSigningKey(path: configuration.signingKeyPath)
        guard key.algorithm == configuration.signingAlgorithm else {
            throw ConfigurationError(file: configurationPath, line: nil, key: "[signing] algorithm",
                                     problem: "is \(configuration.signingAlgorithm) but \(configuration.signingKeyPath) holds an \(key.algorithm) key")
        }
        return (configuration, key)
    }

    /// One run, from start to a stop or a reload.
    static func runOnce(_ configuration: AgentConfiguration, key: SigningKey, notifier: SystemdNotifier) async throws {
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

        let flags = RunFlags()
        log(6, "agent \(configuration.nodeID) starting: slot \(configuration.slot), publication \(configuration.publication), \(capture.mappings.count) resources")
        let outbox = try Outbox(configuration: capture)
        let link = try configuration.hubURL.map { url in try connectToHub(url: url, configuration: configuration) }
        // The client is shut down however the run ends: one left running aborts a debug build.
        do {
            let captures = !configuration.publish.isEmpty
            let pusher = captures ? link.map {
                BatchPusher(outbox: outbox, client: $0.client, hubKeys: $0.hubKeys, nodeID: configuration.nodeID,
                            anchorsDirectory: configuration.dataDirectory + "/anchors", log: { log($0, $1) })
            } : nil
            if let link, captures {
                let publish = try await checkAgainstCatalog(configuration, client: link.client)
                capture.mappings = publish.filter { $0.share != "none" }.map(\.mapping)
            } else if link == nil {
                log(4, "no [hub] url: batches stay in the spool" + (configuration.subscribe.isEmpty ? "" : " and [[subscribe]] receives nothing"))
            }
            let captureConfiguration = capture
            try await withThrowingTaskGroup(of: Void.self) { group in
                if let pusher {
                    // Pushes until capture has stopped, so that what SIGTERM sealed still gets a chance to leave.
                    group.addTask { await pusher.run { flags.captureDone.load(ordering: .relaxed) } }
                }
                if let link, !configuration.subscribe.isEmpty {
                    let follower = SubscriptionFollower(client: link.client, hubKeys: link.hubKeys, configuration: configuration,
                                                        recheck: .seconds(15), log: { log($0, $1) })
                    // Into a table this agent also publishes, nothing is applied before the capture's
                    // slot exists: rows applied earlier would be in its initial snapshot and go back
                    // to the hub as the department's own (later ones carry the apply's origin).
                    let waitsForCapture = captures && configuration.subscribe.contains { entry in
                        configuration.publish.contains { $0.mapping.schema == entry.schema && $0.mapping.table == entry.table }
                    }
                    group.addTask {
                        while waitsForCapture, !flags.streaming.load(ordering: .relaxed), !flags.captureDone.load(ordering: .relaxed), !interrupted() {
                            try? await Task.sleep(for: .milliseconds(100))
                        }
                        await follower.run { interrupted() }
                    }
                }
                if let link, captures {
                    let feedback = FeedbackFollower(client: link.client, conninfo: configuration.conninfo, nodeID: configuration.nodeID,
                                                    interval: configuration.feedbackInterval, log: { log($0, $1) })
                    group.addTask { await feedback.run { interrupted() } }
                }
                if !captures {
                    notifier.notify("READY=1")
                    group.addTask {
                        // No capture loop to say WATCHDOG=1: this one does, or systemd would kill a subscribe-only agent.
                        while !interrupted() {
                            pingWatchdog(notifier, flags)
                            try await Task.sleep(for: .milliseconds(200))
                        }
                        notifier.notify(stopRequested.load(ordering: .relaxed) ? "STOPPING=1" : "RELOADING=1")
                        log(6, stopRequested.load(ordering: .relaxed) ? "stopping" : "reloading")
                    }
                    try await group.waitForAll()
                    return
                }
                group.addTask {
                    defer { flags.captureDone.store(true, ordering: .relaxed) }
                    try await CaptureService(configuration: captureConfiguration).run(
                        outbox: outbox,
                        shouldStop: {
                            guard interrupted() else { return nil }
                            if !flags.stopping.exchange(true, ordering: .relaxed) {
                                let reloading = !stopRequested.load(ordering: .relaxed)
                                notifier.notify(reloading ? "RELOADING=1" : "STOPPING=1")
                                log(6, (reloading ? "reloading" : "stopping") + ": sealing, spooling and confirming what is open")
                            }
                            return .graceful
                        },
                        onStreaming: {
                            flags.streaming.store(true, ordering: .relaxed)
                            notifier.notify("READY=1")
                            log(6, "streaming")
                        },
                        onLoop: { pingWatchdog(notifier, flags) })
                }
                try await group.waitForAll()
            }
        } catch {
            await link?.client.shutdown()
            throw error
        }
        await link?.client.shutdown()
    }

    /// WATCHDOG=1 when half the watchdog interval has passed since the last one.
    private static func pingWatchdog(_ notifier: SystemdNotifier, _ flags: RunFlags) {
        guard let interval = notifier.watchdogInterval else { return }
        let due = flags.lastWatchdog.withLock { last -> Bool in
            guard ContinuousClock.now - last >= interval else { return false }
            last = .now
            return true
        }
        if due { notifier.notify("WATCHDOG=1") }
    }

    /// The publications the hub's catalog allows: fetched at start (and cached for starts
    /// while the hub is unreachable); each disagreement is an alarm here and at the hub.
    /// A publication whose columns differ from the catalog's stops the start: the hub would
    /// reject every batch of it.
    static func checkAgainstCatalog(_ configuration: AgentConfiguration, client: HubClient) async throws -> [AgentConfiguration.Publish] {
        let cache = CatalogReconciliation.cachePath(dataDirectory: configuration.dataDirectory)
        var catalog: [CatalogReconciliation.Entry]? = nil
        if let response = try? await client.get(HubRoute.catalogMine), response.status == 200,
           let fetched = try? JSONDecoder().decode([CatalogReconciliation.Entry].self, from: Data(response.body)) {
            catalog = fetched
            try? DurableFile.write(response.body, to: "catalog.json", in: configuration.dataDirectory, crashPrefix: "catalog")
        } else if let cached = try? Data(contentsOf: URL(fileURLWithPath: cache)),
                  let entries = try? JSONDecoder().decode([CatalogReconciliation.Entry].self, from: cached) {
            log(4, "the hub's catalog cannot be fetched now: checking [[publish]] against the copy from the last start")
            catalog = entries
        }
        guard let catalog else {
            log(4, "the hub's catalog cannot be fetched and none is cached: capturing as configured; the hub rejects what it does not allow")
            return configuration.publish
        }
        let (publish, alarms) = CatalogReconciliation.reconcile(configuration.publish, with: catalog)
        var mismatches: [String] = []
        if !publish.isEmpty {
            let source = try await PostgresConnection.connect(configuration.conninfo, name: "govex-catalog-check")
            do {
                for entry in publish where entry.share != "none" {
                    guard let listed = catalog.first(where: { $0.code == entry.mapping.resource }) else { continue }
                    let columns = try await source.query("""
                        SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = pg_catalog.to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum
                        """, [SQLQuoting.qualified(schema: entry.mapping.schema, name: entry.mapping.table)]).rows.compactMap { $0[0] }
                    let published = CatalogReconciliation.publishedColumns(entry.mapping, tableColumns: columns)
                    if let mismatch = CatalogReconciliation.columnMismatch(resource: entry.mapping.resource, published: published, catalog: listed) {
                        mismatches.append(mismatch)
                    }
                }
            } catch {
                await source.close()
                throw error
            }
            await source.close()
        }
        for alarm in alarms + mismatches {
            log(3, alarm)
            _ = try? await client.post(HubRoute.alarms, body: Array(alarm.utf8), contentType: "text/plain")
        }
        if !mismatches.isEmpty {
            throw ConfigurationError(file: "agent.toml", line: nil, key: "[[publish]] columns",
                                     problem: mismatches.joined(separator: "; ") + ". Nothing was captured: fix the mapping (or the catalog) and start again")
        }
        return publish
    }

    /// An enrolled agent's client for the hub: its certificate, the hub's CA and signing
    /// key (receipts, deliveries) come from `data_dir/tls` (written by `govex enroll`).
    public static func connectToHub(url: String, configuration: AgentConfiguration) throws -> (client: HubClient, hubKeys: HubKeyring) {
        let files = AgentEnrollment.Files(dataDirectory: configuration.dataDirectory)
        guard FileManager.default.fileExists(atPath: files.certificate) else {
            throw ConfigurationError(file: "[hub] url", line: nil, key: url,
                                     problem: "this agent is not enrolled (no \(files.certificate)); run govex enroll first, or remove [hub] to only spool")
        }
        let identity = HubClient.Identity(certificatePEM: try KeyStore.readPublic(path: files.certificate),
                                          keyPEM: try KeyStore.readSecret(path: files.key))
        if let certificate = try? NodeIdentity.loadCertificate(path: files.certificate),
           let warning = AgentRotation.expiryWarning(notAfter: certificate.notValidAfter) {
            log(4, warning)
        }
        let client = try HubClient(baseURL: url, caPEM: try KeyStore.readPublic(path: files.hubCA), identity: identity)
        return (client, try HubKeyring(files: files))
    }

    /// journald-friendly: `<priority>message` on stderr.
    static func log(_ priority: Int, _ message: String) {
        let line = "<\(priority)>govex agent: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}
