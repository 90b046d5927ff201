import Foundation
import GovexAPI
import GovexPostgres

/// `govex hub status`: the nodes, the merge queue, what waits for an administrator, the
/// refusals of the last hour, and whether the hub answers. The assessment is pure; the
/// figures come from the hub's database (read only) and a TCP connect to its listener.
public struct HubStatus: Codable, Sendable, Equatable {
    public typealias Level = HealthLevel
    public typealias Finding = HealthFinding

    public struct Node: Codable, Sendable, Equatable {
        public var id: String
        public var revoked: Bool
        public var epoch: String
        /// An epoch waiting for `govex hub node accept-epoch`.
        public var pendingEpoch: String?
        public var nextSequence: String
        /// Seconds since its last accepted batch; nil when it never pushed.
        public var lastPushAgeSeconds: Int64?
        public var rejectedLastHour: Int
        public var keysWaiting: Int
        /// The backlog the agent reported with its last push, and how long ago.
        public var spool: SpoolReport?
        public var spoolReportAgeSeconds: Int64?

        public init(id: String, revoked: Bool, epoch: String, pendingEpoch: String?, nextSequence: String, lastPushAgeSeconds: Int64?,
                    rejectedLastHour: Int, keysWaiting: Int, spool: SpoolReport? = nil, spoolReportAgeSeconds: Int64? = nil) {
            self.id = id
            self.revoked = revoked
            self.epoch = epoch
            self.pendingEpoch = pendingEpoch
            self.nextSequence = nextSequence
            self.lastPushAgeSeconds = lastPushAgeSeconds
            self.rejectedLastHour = rejectedLastHour
            self.keysWaiting = keysWaiting
            self.spool = spool
            self.spoolReportAgeSeconds = spoolReportAgeSeconds
        }
    }

    public struct Facts: Codable, Sendable, Equatable {
        public var listening: Bool
        public var listen: String
        public var schemaVersion: Int
        public var nodes: [Node]
        public var mergeQueueBatches: Int
        public var mergeQueueRecords: Int
        public var mergeQueueOldestSeconds: Int64
        public var subscriptionsPending: Int
        public var refusalsLastHour: [String: Int]

        public init(listening: Bool, listen: String, schemaVersion: Int, nodes: [Node], mergeQueueBatches: Int, mergeQueueRecords: Int,
                    mergeQueueOldestSeconds: Int64, subscriptionsPending: Int, refusalsLastHour: [String: Int]) {
            self.listening = listening
            self.listen = listen
            self.schemaVersion = schemaVersion
            self.nodes = nodes
            self.mergeQueueBatches = mergeQueueBatches
            self.mergeQueueRecords = mergeQueueRecords
            self.mergeQueueOldestSeconds = mergeQueueOldestSeconds
            self.subscriptionsPending = subscriptionsPending
            self.refusalsLastHour = refusalsLastHour
        }
    }

    public let level: Level
    public let findings: [Finding]
    public let facts: Facts

    /// A node silent for longer than this is worth a look (its agent down, or its tables quiet).
    public static let silentAfter: Int64 = 3600

    public static func assess(_ facts: Facts) -> HubStatus {
        var findings: [Finding] = []
        func add(_ level: Level, _ subject: String, _ message: String) { findings.append(Finding(level: level, subject: subject, message: message)) }
        add(facts.listening ? .ok : .critical, "hub", facts.listening
            ? "listening on \(facts.listen), schema version \(facts.schemaVersion)"
            : "nothing listens on \(facts.listen): systemctl status govex-hub, journalctl -u govex-hub")
        for node in facts.nodes {
            let subject = "node \(node.id)"
            if node.revoked { add(.ok, subject, "revoked"); continue }
            if let pending = node.pendingEpoch {
                add(.warning, subject, "a new epoch \(pending) waits: check why the agent was reset, then govex hub node accept-epoch \(node.id)")
            }
            if node.keysWaiting > 0 {
                add(.warning, subject, "\(node.keysWaiting) signing key(s) wait for govex hub node accept-key (govex hub node keys \(node.id))")
            }
            if node.rejectedLastHour > 0 {
                add(.warning, subject, "\(node.rejectedLastHour) batch(es) rejected in the last hour: govex hub audit shows why")
            }
            let backlog = node.spool.map { spool in
                ", \(spool.batches) batches (\(HealthText.bytes(spool.bytes))) waiting behind its last push"
                    + (spool.batches > 0 ? ", the oldest for \(HealthText.duration(Int64(spool.oldestAgeSeconds)))" : "")
            } ?? ""
            switch node.lastPushAgeSeconds {
            case nil: add(.ok, subject, "enrolled, has not pushed yet")
            case let age? where age > silentAfter: add(.warning, subject, "silent for \(HealthText.duration(age)) (epoch \(node.epoch), next sequence \(node.nextSequence))" + backlog)
            case let age?: add(.ok, subject, "last push \(HealthText.duration(age)) ago (epoch \(node.epoch), next sequence \(node.nextSequence))" + backlog)
            }
            if let spool = node.spool, spool.full {
                add(.warning, subject, "its spool is full and its capture paused (as it reported): its batches reach the hub slower than it captures")
            } else if let spool = node.spool, spool.oldestAgeSeconds > 600 {
                add(.warning, subject, "a batch has waited \(HealthText.duration(Int64(spool.oldestAgeSeconds))) in its spool (as it reported): pushes lag")
            }
        }
        let queue = "\(facts.mergeQueueBatches) batches, \(facts.mergeQueueRecords) records"
        switch facts.mergeQueueOldestSeconds {
        case ..<300: add(.ok, "merge queue", queue + (facts.mergeQueueBatches > 0 ? ", oldest \(HealthText.duration(facts.mergeQueueOldestSeconds))" : ""))
        case ..<1800: add(.warning, "merge queue", "\(queue), oldest \(HealthText.duration(facts.mergeQueueOldestSeconds)): merging lags (journalctl -u govex-hub -p err)")
        default: add(.critical, "merge queue", "\(queue), oldest \(HealthText.duration(facts.mergeQueueOldestSeconds)): merging is stuck (journalctl -u govex-hub -p err)")
        }
        if facts.subscriptionsPending > 0 {
            add(.ok, "subscriptions", "\(facts.subscriptionsPending) wait for their provider's decision (govex hub subscriptions --status pending)")
        }
        let refused = facts.refusalsLastHour.values.reduce(0, +)
        if refused > 0 {
            let reasons = facts.refusalsLastHour.sorted { $0.value > $1.value }.prefix(5).map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            add(refused > 100 ? .warning : .ok, "refusals", "\(refused) in the last hour: \(reasons)")
        }
        return HubStatus(level: findings.map(\.level).max() ?? .ok, findings: findings, facts: facts)
    }

    /// Reads the figures from the hub's database.
    public static func gather(_ configuration: HubConfiguration, on sql: PostgresConnection) async throws -> Facts {
        let nodes = try await sql.query("""
            SELECT n.node_id, n.revoked_at IS NOT NULL, n.epoch::text, n.pending_epoch::text, n.next_sequence::text,
                   (SELECT extract(epoch FROM now() - max(b.received_at))::int8 FROM govex.batch_index b WHERE b.node_id = n.node_id AND b.accepted),
                   (SELECT count(*) FROM govex.batch_index b WHERE b.node_id = n.node_id AND NOT b.accepted AND b.received_at > now() - interval '1 hour'),
                   (SELECT count(*) FROM govex.node_keys k WHERE k.node_id = n.node_id AND k.accepted_at IS NULL AND k.retired_at IS NULL),
                   n.spool_batches, n.spool_bytes, n.spool_oldest_age_seconds, n.spool_full,
                   extract(epoch FROM now() - n.spool_reported_at)::int8
            FROM govex.nodes n ORDER BY n.node_id
            """).rows.map { row in
            let spool = row[8].flatMap { Int($0) }.map { batches in
                SpoolReport(batches: batches, bytes: Int(row[9] ?? "0") ?? 0, oldestAgeSeconds: Int(row[10] ?? "0") ?? 0, full: row[11] == "t")
            }
            return Node(id: row[0] ?? "", revoked: row[1] == "t", epoch: row[2] ?? "0", pendingEpoch: row[3], nextSequence: row[4] ?? "1",
                        lastPushAgeSeconds: row[5].flatMap { Int64($0) }, rejectedLastHour: Int(row[6] ?? "0") ?? 0, keysWaiting: Int(row[7] ?? "0") ?? 0,
                        spool: spool, spoolReportAgeSeconds: row[12].flatMap { Int64($0) })
        }
        let queue = try await sql.query("""
            SELECT count(*), coalesce(sum(record_count), 0), coalesce(extract(epoch FROM now() - min(queued_at))::int8, 0) FROM govex.golden_queue
            """).rows[0]
        let pending = try await sql.query("SELECT count(*) FROM govex.subscriptions WHERE status = 'pending'").rows[0][0]
        let refusals = try await sql.query("""
            SELECT coalesce(details::jsonb ->> 'reason', '?'), count(*) FROM govex.audit_log
            WHERE action = 'request_refused' AND at > now() - interval '1 hour' GROUP BY 1
            """).rows
        let version = try await sql.query("SELECT coalesce(max(version), 0) FROM govex.schema_migrations").rows[0][0]
        return Facts(listening: listening(host: configuration.host, port: configuration.port), listen: "\(configuration.host):\(configuration.port)",
                     schemaVersion: Int(version ?? "0") ?? 0, nodes: nodes,
                     mergeQueueBatches: Int(queue[0] ?? "0") ?? 0, mergeQueueRecords: Int(queue[1] ?? "0") ?? 0,
                     mergeQueueOldestSeconds: Int64(queue[2] ?? "0") ?? 0, subscriptionsPending: Int(pending ?? "0") ?? 0,
                     refusalsLastHour: Dictionary(refusals.map { ($0[0] ?? "?", Int($0[1] ?? "0") ?? 0) }, uniquingKeysWith: +))
    }

    /// Whether something accepts TCP connections on the hub's address (0.0.0.0 means this machine).
    public static func listening(host: String, port: Int) -> Bool {
        let target = host == "0.0.0.0" || host == "::" || host.isEmpty ? "127.0.0.1" : host
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        guard inet_pton(AF_INET, target, &address.sin_addr) == 1 else { return false }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// For a terminal: one line per finding, the level in colour when `colour`.
    public func text(colour: Bool) -> String { HealthText.render(title: "govex hub", level: level, findings: findings, colour: colour) }
}
