import GovexAPI
import Foundation
import GovexConfiguration
import GovexCapture
import GovexIdentity
import GovexKeyStore
import GovexLog
import Logging
import GovexMetrics
import GovexPostgres
import GovexWire
import Metrics
import ServiceLifecycle
import UnixSignals
import GovexSystemd
import GovexApply
import X509
#if canImport(Glibc)
import Glibc
#endif

/// `govex agent`: loads the configuration and the signing key, then runs capture,
/// pushing and pulling until SIGTERM or SIGINT, when it seals, spools and confirms what
/// it holds before exiting. SIGHUP reloads: the same graceful wind-down, then
/// `agent.toml` and the hub's catalog are read again and everything restarts (a
/// configuration that does not load is reported and the running one kept).
///
/// The process is a service group: the systemd watchdog (first in, last out), the runs
/// (`AgentRuns`, one inner group of capture, pusher, subscriptions, feedback and status per
/// configuration) and the stop announcer. A stop reaches the services in reverse order:
/// capture seals and confirms first, the pusher still sends what it sealed, then the rest.
public enum AgentRunner {
    public static func run(configurationPath: String, text: String, environment: [String: String]) async throws {
        let (configuration, key) = try load(configurationPath: configurationPath, text: text)

        // Metrics are bootstrapped once per process; the endpoint keeps its first address.
        var metricsServer: MetricsServer? = nil
        if let listen = configuration.metricsListen {
            metricsServer = try PrometheusExport.serve(on: listen)
            log(6, "metrics on http://\(listen.split(separator: ":")[0]):\(metricsServer!.port)/metrics")
        }
        defer { _ = metricsServer }
        let notifier = SystemdNotifier(environment: environment)
        let runs = AgentRuns(configurationPath: configurationPath, configuration: configuration, key: key, notifier: notifier)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: SystemdWatchdog(notifier: notifier)), .init(service: runs),
                       .init(service: StopAnnouncer(notifier: notifier) { log(6, "stopping: sealing, spooling and confirming what is open") })],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: journal.logger(label: "govex-agent")))
        try await group.run()
        log(6, "stopped")
    }

    /// What `govex agent --validate` checks: the file loads, and the signing key with it.
    public static func validate(configurationPath: String, text: String) throws {
        _ = try load(configurationPath: configurationPath, text: text)
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

    /// govex's own tables a configuration needs in the department's database.
    public static func ownTables(_ configuration: AgentConfiguration) -> [OwnTables.Table] {
        guard configuration.hubURL != nil else { return [] }
        return (configuration.subscribe.isEmpty ? [] : OwnTables.forSubscriptions) + (configuration.publish.isEmpty ? [] : OwnTables.forFeedback)
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
        let (publish, alarms, mismatches) = try await compareWithCatalog(configuration, catalog: catalog)
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

    /// `[[publish]]` against the hub's catalog: what may be captured, what the catalog does
    /// not allow (alarms), and publications whose columns (read from the department's
    /// tables) differ from the catalog's.
    public static func compareWithCatalog(_ configuration: AgentConfiguration, catalog: [CatalogReconciliation.Entry]) async throws
        -> (publish: [AgentConfiguration.Publish], alarms: [String], mismatches: [String]) {
        let (publish, alarms) = CatalogReconciliation.reconcile(configuration.publish, with: catalog)
        var mismatches: [String] = []
        let captured = publish.filter { $0.share != "none" }
        guard !captured.isEmpty else { return (publish, alarms, []) }
        try await PostgresConnection.with(configuration.conninfo, name: "govex-catalog-check") { source in
            for entry in captured {
                guard let listed = catalog.first(where: { $0.code == entry.mapping.resource }) else { continue }
                let columns = try await source.query("""
                    SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = pg_catalog.to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum
                    """, [SQLQuoting.qualified(schema: entry.mapping.schema, name: entry.mapping.table)]).rows.compactMap { $0[0] }
                let published = CatalogReconciliation.publishedColumns(entry.mapping, tableColumns: columns)
                if let mismatch = CatalogReconciliation.columnMismatch(resource: entry.mapping.resource, published: published, catalog: listed) {
                    mismatches.append(mismatch)
                }
            }
        }
        return (publish, alarms, mismatches)
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
    static func log(_ priority: Int, _ message: String) { journal.write(priority, message) }

    public static let journal = Journal("govex agent")
}
