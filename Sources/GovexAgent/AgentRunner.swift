import GovexConfiguration
import GovexCapture
import GovexKeyStore
import GovexWire
import Metrics
import Prometheus
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Set from the signal handler; a C handler cannot capture, so this is global.
private let stopRequested = Atomic<Bool>(false)

/// `govex agent`: loads the configuration and the signing key, then runs the
/// capture loop until SIGTERM or SIGINT, when it seals, spools and confirms what
/// it holds before exiting.
public enum AgentRunner {
    public static func run(configurationPath: String, text: String, environment: [String: String]) async throws {
        let configuration = try AgentConfiguration.load(path: configurationPath, text: text)
        let key = try KeyStore.loadSigningKey(path: configuration.signingKeyPath)
        guard key.algorithm == configuration.signingAlgorithm else {
            throw ConfigurationError(file: configurationPath, line: nil, key: "[signing] algorithm",
                                     problem: "is \(configuration.signingAlgorithm) but \(configuration.signingKeyPath) holds an \(key.algorithm) key")
        }
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

        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        var metricsServer: MetricsServer? = nil
        if let listen = configuration.metricsListen {
            metricsServer = try MetricsServer(address: listen) { registry.emitToBuffer() }
            log(6, "metrics on http://\(listen.split(separator: ":")[0]):\(metricsServer!.port)/metrics")
        }
        defer { _ = metricsServer }

        signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
        let notifier = SystemdNotifier(environment: environment)
        let lastWatchdog = Mutex(ContinuousClock.now)
        let stopping = Atomic<Bool>(false)
        log(6, "agent \(configuration.nodeID) starting: slot \(configuration.slot), publication \(configuration.publication), \(capture.mappings.count) resources")
        try await CaptureService(configuration: capture).run(
            shouldStop: {
                guard stopRequested.load(ordering: .relaxed) else { return nil }
                if !stopping.exchange(true, ordering: .relaxed) {
                    notifier.notify("STOPPING=1")
                    log(6, "stopping: sealing, spooling and confirming what is open")
                }
                return .graceful
            },
            onStreaming: {
                notifier.notify("READY=1")
                log(6, "streaming")
            },
            onLoop: {
                guard let interval = notifier.watchdogInterval else { return }
                let due = lastWatchdog.withLock { last -> Bool in
                    guard ContinuousClock.now - last >= interval else { return false }
                    last = .now
                    return true
                }
                if due { notifier.notify("WATCHDOG=1") }
            })
        log(6, "stopped")
    }

    /// journald-friendly: `<priority>message` on stderr.
    static func log(_ priority: Int, _ message: String) {
        let line = "<\(priority)>govex agent: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}
