import GovexConfiguration
import GovexIdentity
import GovexKeyStore
import TOMLKit

/// `hub.toml`, validated:
///
///     [hub]
///     data_dir = "/var/lib/govex-hub"           # ca/, keys/, tls/
///     listen = "127.0.0.1:8443"
///     database = "host=/run/postgresql dbname=govex_hub user=govex_hub"
///     hostnames = ["hub.example.gov.cn"]        # names agents dial (in the server certificate)
///     addresses = ["127.0.0.1"]                 # addresses agents dial
///     max_batch_bytes = "64MiB"
///     batch_retention_days = 365
///
///     [metrics]
///     listen = "127.0.0.1:9188"                 # Prometheus; absent or "" = off
///
///     [limits]                                  # what one client can hold of the hub
///     handshake_timeout = "10s"                 # a TLS handshake not done by then is closed
///     idle_timeout = "2m"                       # a connection with no request for this long is closed
///     max_connections = 4096                    # open at once (capped below the file limit)
///     uploads = 16                              # batches being received at once: memory ≤ uploads × max_batch_bytes
///     uploads_per_node = 8                      # of them from one node (an agent sends 4 at a time)
public struct HubConfiguration: Sendable {
    /// `[limits]`: what one client, or all of them, can hold of the hub.
    public struct Limits: Sendable, Equatable {
        public var handshakeTimeout: Duration = .seconds(10)
        public var idleTimeout: Duration = .seconds(120)
        public var maxConnections = 4096
        public var uploads = 16
        public var uploadsPerNode = 8
        public init() {}
    }

    public var dataDirectory: String
    public var host: String
    public var port: Int
    public var database: String
    public var hostnames: [String]
    public var addresses: [String]
    public var maxBatchBytes: Int
    /// Days a stored batch is kept (whole months are dropped once past it).
    public var batchRetentionDays: Int
    /// `host:port` of the Prometheus endpoint; nil when off.
    public var metricsListen: String? = nil
    public var limits = Limits()

    public var caDirectory: String { dataDirectory + "/ca" }
    public var keysDirectory: String { dataDirectory + "/keys" }
    public var serverCertificatePath: String { dataDirectory + "/tls/server.pem" }
    public var serverKeyPath: String { dataDirectory + "/tls/server.key" }
    /// The endorsements of rotated hub signing keys, oldest first.
    public var endorsementsPath: String { keysDirectory + "/endorsements.json" }

    /// Every section of hub.toml and the keys it may hold; anything else is refused.
    public static let knownKeys: [String: [String]] = [
        "hub": ["data_dir", "listen", "database", "hostnames", "addresses", "max_batch_bytes", "batch_retention_days"],
        "metrics": ["listen"],
        "limits": ["handshake_timeout", "idle_timeout", "max_connections", "uploads", "uploads_per_node"],
    ]

    public static func load(path: String, text: String) throws(ConfigurationError) -> HubConfiguration {
        let (root, reader) = try ConfigurationReader.parse(path: path, text: text)
        try reader.rejectUnknownKeys(root, section: nil, allowed: ["hub", "metrics", "limits"])
        let hub = try reader.table(root, "hub")
        try reader.rejectUnknownKeys(hub, section: "hub", allowed: Self.knownKeys["hub"]!)
        let dataDirectory = try reader.string(hub, "data_dir", section: "hub")
        let listen = try reader.string(hub, "listen", section: "hub", default: "127.0.0.1:8443")
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw reader.error("listen", section: "hub", "'\(listen)' must be host:port, e.g. \"0.0.0.0:8443\"")
        }
        let host = String(listen[..<colon])
        let database = try reader.string(hub, "database", section: "hub")
        let hostnames = try reader.strings(hub, "hostnames", section: "hub", optional: true)
        let addresses = try reader.strings(hub, "addresses", section: "hub", optional: true)
        for address in addresses where !CertificateAuthority.isIPAddress(address) {
            throw reader.error("addresses", section: "hub", "'\(address)' is not an IPv4 or IPv6 address")
        }
        guard !hostnames.isEmpty || !addresses.isEmpty else {
            throw reader.error("hostnames", section: "hub", "give the names or addresses agents use to reach the hub (hostnames, addresses)")
        }
        let maxBatchBytes = try reader.size(hub, "max_batch_bytes", section: "hub", default: 64 << 20, range: (64 << 10)...(1 << 30))
        let retention = try reader.integer(hub, "batch_retention_days", section: "hub", default: 365, range: 1...36_500)
        var metricsListen: String? = nil
        if let metrics = try reader.table(root, "metrics", optional: true) {
            try reader.rejectUnknownKeys(metrics, section: "metrics", allowed: Self.knownKeys["metrics"]!)
            let listen = try reader.string(metrics, "listen", section: "metrics", default: "")
            if !listen.isEmpty {
                let parts = listen.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 2, UInt16(parts[1]) != nil else {
                    throw reader.error("listen", section: "metrics", "'\(listen)' must be host:port, e.g. \"127.0.0.1:9188\", or \"\" for none")
                }
                metricsListen = listen
            }
        }
        var limits = Limits()
        if let table = try reader.table(root, "limits", optional: true) {
            try reader.rejectUnknownKeys(table, section: "limits", allowed: Self.knownKeys["limits"]!)
            limits.handshakeTimeout = try reader.duration(table, "handshake_timeout", section: "limits", default: limits.handshakeTimeout)
            limits.idleTimeout = try reader.duration(table, "idle_timeout", section: "limits", default: limits.idleTimeout)
            limits.maxConnections = try reader.integer(table, "max_connections", section: "limits", default: limits.maxConnections, range: 16...1_000_000)
            limits.uploads = try reader.integer(table, "uploads", section: "limits", default: limits.uploads, range: 1...1024)
            limits.uploadsPerNode = try reader.integer(table, "uploads_per_node", section: "limits", default: limits.uploadsPerNode, range: 1...1024)
        }
        return HubConfiguration(dataDirectory: dataDirectory, host: host, port: port, database: database, hostnames: hostnames,
                                addresses: addresses, maxBatchBytes: maxBatchBytes, batchRetentionDays: retention, metricsListen: metricsListen,
                                limits: limits)
    }
}
