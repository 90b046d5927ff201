import Foundation
import GovexCapture
import GovexConfiguration
import GovexPolicy
import GovexPostgres
import GovexWire
import TOMLKit

/// `agent.toml`, validated.
public struct AgentConfiguration: Sendable {
    /// A `[[subscribe]]`: the local table a subscribed resource is applied into.
    public struct Subscribe: Sendable, Equatable {
        public var resource: String
        public var schema: String
        public var table: String
        public var purpose: String
        /// Empty: every column the catalog lists.
        public var columns: [String]

        public var qualifiedTable: String { schema + "." + table }
    }

    public struct Publish: Sendable, Equatable {
        public var mapping: TableMapping
        public var share: String

        public init(mapping: TableMapping, share: String) {
            self.mapping = mapping
            self.share = share
        }
    }

    /// `[apply]`: how a subscriber retries a delivery its database refuses before keeping it
    /// as a dead letter.
    public struct ApplyRetry: Sendable, Equatable {
        public var attempts: Int
        public var firstDelay: Duration

        public init(attempts: Int = 5, firstDelay: Duration = .seconds(2)) {
            self.attempts = attempts
            self.firstDelay = firstDelay
        }

        /// Doubling from `firstDelay`, at most five minutes.
        public func delay(afterFailures failures: Int) -> Duration {
            min(firstDelay * (1 << min(failures - 1, 20)), .seconds(300))
        }
    }

    public var nodeID: String
    public var dataDirectory: String
    public var signingAlgorithm: SignatureAlgorithm
    public var signingKeyPath: String
    public var conninfo: String
    public var slot: String
    public var publication: String
    public var batch: BatchBuilder.Limits
    public var spool: Spool.Limits
    public var publish: [Publish]
    public var subscribe: [Subscribe]
    /// `host:port` of the Prometheus endpoint; nil when disabled.
    public var metricsListen: String?
    public var retainedWALAlarm: Int
    /// `[hub] url`: where batches are pushed; nil = spool only.
    public var hubURL: String?
    /// `[source] heartbeat`: how often to write a `pg_logical_emit_message` heartbeat; nil = never.
    public var heartbeat: Duration?
    public var applyRetry: ApplyRetry
    /// `[hub] feedback_interval`: how often a publishing node asks the hub for discrepancy feedback.
    public var feedbackInterval: Duration

    /// The mappings that may be captured: share class `none` (the negative list) never leaves the department.
    public var capturedMappings: [TableMapping] { publish.filter { $0.share != "none" }.map(\.mapping) }

    /// Every section and key agent.toml may hold: anything else is refused, so that a typo
    /// (`exlude`, `fitler`) stops the agent instead of silently sharing more.
    enum Sections {
        static let keys: [(String, [String])] = [
            ("node", ["id", "data_dir"]),
            ("hub", ["url", "feedback_interval"]),
            ("signing", ["algorithm", "key"]),
            ("source", ["conninfo", "capture", "slot", "publication", "heartbeat"]),
            ("batch", ["max_records", "max_bytes", "max_age"]),
            ("spool", ["max_batches", "max_bytes"]),
            ("metrics", ["listen"]),
            ("alarms", ["retained_wal"]),
            ("apply", ["attempts", "retry_delay"]),
        ]
        static let publish = ["resource", "share", "table", "key", "columns", "exclude", "rename", "filter"]
        static let subscribe = ["resource", "table", "purpose", "columns"]
        static let all = keys.map(\.0) + ["publish", "subscribe"]
    }

    /// Every section of agent.toml and the keys it may hold; anything else is refused.
    public static let knownKeys: [String: [String]] = Dictionary(uniqueKeysWithValues: Sections.keys)
        .merging(["publish": Sections.publish, "subscribe": Sections.subscribe]) { $1 }

    static func splitTable(_ qualified: String, reader: ConfigurationReader, section: String) throws(ConfigurationError) -> (String, String) {
        let parts = qualified.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let (schema, name) = parts.count == 2 ? (parts[0], parts[1]) : ("public", qualified)
        guard !schema.isEmpty, !name.isEmpty else { throw reader.error("table", section: section, "'\(qualified)' must be schema.table or table") }
        return (schema, name)
    }

    public static func load(path: String, text: String) throws(ConfigurationError) -> AgentConfiguration {
        let (root, reader) = try ConfigurationReader.parse(path: path, text: text)
        if root["tls"] != nil {
            throw reader.error("tls", section: nil, "unknown section: the TLS files live in data_dir/tls, written by `govex enroll`; remove [tls]")
        }
        try reader.rejectUnknownKeys(root, section: nil, allowed: Sections.all)
        for (section, allowed) in Sections.keys {
            if let table = root[section]?.table { try reader.rejectUnknownKeys(table, section: section, allowed: allowed) }
        }

        let node = try reader.table(root, "node")
        let nodeID = try reader.string(node, "id", section: "node")
        guard Identifier.isValid(nodeID) else { throw reader.error("id", section: "node", "'\(nodeID)' must be \(Identifier.rule), as enrolled at the hub") }
        let dataDirectory = try reader.string(node, "data_dir", section: "node")

        let signing = try reader.table(root, "signing")
        let algorithmName = try reader.string(signing, "algorithm", section: "signing", default: "ed25519")
        guard let algorithm = SignatureAlgorithm(name: algorithmName) else {
            throw reader.error("algorithm", section: "signing", "'\(algorithmName)' is not ed25519 or sm2")
        }
        let keyPath = try reader.string(signing, "key", section: "signing", default: dataDirectory + "/keys/signing.key")

        let hubTable = try reader.table(root, "hub", optional: true)
        let hubURL = hubTable == nil ? nil : try reader.string(hubTable, "url", section: "hub")
        let feedbackInterval = try reader.duration(hubTable, "feedback_interval", section: "hub", default: .seconds(5))
        if let hubURL, !hubURL.hasPrefix("https://") {
            throw reader.error("url", section: "hub", "'\(hubURL)' must be an https:// URL, e.g. \"https://hub.example.gov.cn:8443\"")
        }

        let source = try reader.table(root, "source")
        let conninfo = try reader.string(source, "conninfo", section: "source")
        let capture = try reader.string(source, "capture", section: "source", default: "logical")
        guard capture == "logical" else {
            throw reader.error("capture", section: "source", "'\(capture)': only \"logical\" capture is available in this release (trigger capture comes later)")
        }
        let slot = try reader.string(source, "slot", section: "source", default: "govex")
        guard ReplicationConnection.isValidSlotName(slot) else { throw reader.error("slot", section: "source", "'\(slot)' must be 1 to 63 characters from a-z, 0-9 and _") }
        let publication = try reader.string(source, "publication", section: "source", default: "govex")
        let heartbeat = source["heartbeat"] == nil ? nil : try reader.duration(source, "heartbeat", section: "source", default: .seconds(60))

        let batchTable = try reader.table(root, "batch", optional: true)
        let batch = BatchBuilder.Limits(
            maxRecords: try reader.integer(batchTable, "max_records", section: "batch", default: 10_000, range: 1...1_000_000),
            maxBytes: try reader.size(batchTable, "max_bytes", section: "batch", default: 8 << 20, range: 1024...(256 << 20)),
            maxAge: try reader.duration(batchTable, "max_age", section: "batch", default: .milliseconds(500)))
        let spoolTable = try reader.table(root, "spool", optional: true)
        let spool = Spool.Limits(
            maxBatches: try reader.integer(spoolTable, "max_batches", section: "spool", default: 100_000, range: 1...10_000_000),
            maxBytes: try reader.size(spoolTable, "max_bytes", section: "spool", default: 10 << 30, range: (1 << 20)...(1 << 50)))

        let metricsTable = try reader.table(root, "metrics", optional: true)
        let listen = try reader.string(metricsTable, "listen", section: "metrics", default: "")
        if !listen.isEmpty {
            let parts = listen.split(separator: ":")
            guard parts.count == 2, UInt16(parts[1]) != nil else { throw reader.error("listen", section: "metrics", "'\(listen)' must be host:port, e.g. \"127.0.0.1:9741\", or \"\" (the default) for none") }
        }
        let alarmsTable = try reader.table(root, "alarms", optional: true)
        let retainedWAL = try reader.size(alarmsTable, "retained_wal", section: "alarms", default: 1 << 30, range: (1 << 20)...(1 << 50))

        let applyTable = try reader.table(root, "apply", optional: true)
        let applyRetry = ApplyRetry(
            attempts: try reader.integer(applyTable, "attempts", section: "apply", default: 5, range: 1...1000),
            firstDelay: try reader.duration(applyTable, "retry_delay", section: "apply", default: .seconds(2)))

        var publish: [Publish] = []
        var resources = Set<String>()
        for (index, entry) in (root["publish"]?.array ?? TOMLArray()).enumerated() {
            guard let table = entry.table else { throw reader.error("publish", section: nil, "must be [[publish]] tables") }
            let section = "publish#\(index)"
            try reader.rejectUnknownKeys(table, section: section, allowed: Sections.publish)
            let resource = try reader.string(table, "resource", section: section)
            guard Identifier.isValid(resource) else { throw reader.error("resource", section: section, "'\(resource)' must be \(Identifier.rule)") }
            guard resources.insert(resource).inserted else { throw reader.error("resource", section: section, "\(resource) is published twice") }
            let share = try reader.string(table, "share", section: section)
            guard ["unconditional", "conditional", "none"].contains(share) else {
                throw reader.error("share", section: section, "'\(share)' must be unconditional, conditional or none")
            }
            let qualified = try reader.string(table, "table", section: section)
            let (schema, name) = try splitTable(qualified, reader: reader, section: section)
            let key = try reader.strings(table, "key", section: section)
            guard !key.isEmpty else { throw reader.error("key", section: section, "name the key columns, e.g. key = [\"id_number\"]") }
            let columns = try reader.strings(table, "columns", section: section, optional: true)
            let exclude = try reader.strings(table, "exclude", section: section, optional: true)
            guard columns.isEmpty || exclude.isEmpty else { throw reader.error("exclude", section: section, "give columns or exclude, not both") }
            for column in key where exclude.contains(column) { throw reader.error("exclude", section: section, "key column \(column) cannot be excluded") }
            var rename: [String: String] = [:]
            if let entry = table["rename"], entry.table == nil {
                throw reader.error("rename", section: section, "expected a table like rename = { address = \"domicile\" }, found \(entry.type)")
            }
            if let renames = table["rename"]?.table {
                for source in renames.keys {
                    guard let target = renames[source]?.string, !target.isEmpty else { throw reader.error("rename", section: section, "\(source) must map to a non-empty name") }
                    rename[source] = target
                }
            }
            var filter: RowFilter? = nil
            if table["filter"] != nil {
                let text = try reader.string(table, "filter", section: section)
                do {
                    filter = try RowFilter.parse(text)
                } catch {
                    throw reader.error("filter", section: section, error.description)
                }
            }
            let mapping = TableMapping(resource: resource, schema: schema, table: name, key: key,
                                       columns: !columns.isEmpty ? .only(columns) : (!exclude.isEmpty ? .excluding(exclude) : .all), rename: rename,
                                       filter: filter)
            publish.append(Publish(mapping: mapping, share: share))
        }
        var subscribe: [Subscribe] = []
        for (index, entry) in (root["subscribe"]?.array ?? TOMLArray()).enumerated() {
            guard let table = entry.table else { throw reader.error("subscribe", section: nil, "must be [[subscribe]] tables") }
            let section = "subscribe#\(index)"
            try reader.rejectUnknownKeys(table, section: section, allowed: Sections.subscribe)
            let resource = try reader.string(table, "resource", section: section)
            guard Identifier.isValid(resource) else { throw reader.error("resource", section: section, "'\(resource)' must be \(Identifier.rule)") }
            guard !subscribe.contains(where: { $0.resource == resource }) else { throw reader.error("resource", section: section, "\(resource) is subscribed twice") }
            guard !resources.contains(resource) else { throw reader.error("resource", section: section, "\(resource) is published by this node itself") }
            let qualified = try reader.string(table, "table", section: section)
            let (schema, name) = try splitTable(qualified, reader: reader, section: section)
            let purpose = try reader.string(table, "purpose", section: section)
            guard !purpose.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw reader.error("purpose", section: section, "say why this node needs the data; it is recorded with the subscription")
            }
            let columns = try reader.strings(table, "columns", section: section, optional: true)
            subscribe.append(Subscribe(resource: resource, schema: schema, table: name, purpose: purpose, columns: columns))
        }
        guard !publish.isEmpty || !subscribe.isEmpty else {
            throw reader.error("publish", section: nil, "no [[publish]] or [[subscribe]] table: this node would neither share nor receive anything")
        }

        return AgentConfiguration(nodeID: nodeID, dataDirectory: dataDirectory, signingAlgorithm: algorithm, signingKeyPath: keyPath,
                                  conninfo: conninfo, slot: slot, publication: publication, batch: batch, spool: spool, publish: publish, subscribe: subscribe,
                                  metricsListen: listen.isEmpty ? nil : listen, retainedWALAlarm: retainedWAL,
                                  hubURL: hubURL, heartbeat: heartbeat, applyRetry: applyRetry,
                                  feedbackInterval: feedbackInterval)
    }
}
