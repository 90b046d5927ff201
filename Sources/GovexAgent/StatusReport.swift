import Foundation
import GovexAPI
import GovexCapture

/// `govex status`: what the agent is doing and whether that is fine, from its status file,
/// its spool directory and the department's database. The assessment is pure: facts in,
/// a level and the reasons out (monitoring calls it: 0 ok, 1 warning, 2 critical).
public struct StatusReport: Codable, Sendable, Equatable {
    public typealias Level = HealthLevel
    public typealias Finding = HealthFinding

    /// What `govex status` gathered.
    public struct Facts: Sendable, Equatable {
        public var node: String
        public var now: Int64
        /// The agent's status file, nil when there is none.
        public var status: AgentStatus?
        /// Whether the process that wrote it still runs.
        public var processAlive: Bool
        public var publishes: Bool
        public var hubConfigured: Bool
        public var spool: Outbox.SpoolFigures
        public var slot: Slot?
        /// Why the department's database could not be asked, if it could not.
        public var databaseError: String?
        public var retainedWALAlarm: Int64
        public var deadLetters: [DeadLetterFact] = []
        public var subscriptionsConfigured: [String] = []

        public init(node: String, now: Int64, status: AgentStatus?, processAlive: Bool, publishes: Bool, hubConfigured: Bool,
                    spool: Outbox.SpoolFigures, slot: Slot?, databaseError: String?, retainedWALAlarm: Int64,
                    deadLetters: [DeadLetterFact] = [], subscriptionsConfigured: [String] = []) {
            self.node = node
            self.now = now
            self.status = status
            self.processAlive = processAlive
            self.publishes = publishes
            self.hubConfigured = hubConfigured
            self.spool = spool
            self.slot = slot
            self.databaseError = databaseError
            self.retainedWALAlarm = retainedWALAlarm
            self.deadLetters = deadLetters
            self.subscriptionsConfigured = subscriptionsConfigured
        }
    }

    public struct Slot: Codable, Sendable, Equatable {
        public var name: String
        public var exists: Bool
        public var active: Bool
        public var retainedWALBytes: Int64
        /// WAL not yet confirmed by the agent: how far capture is behind, in bytes.
        public var lagBytes: Int64

        public init(name: String, exists: Bool, active: Bool, retainedWALBytes: Int64, lagBytes: Int64) {
            self.name = name
            self.exists = exists
            self.active = active
            self.retainedWALBytes = retainedWALBytes
            self.lagBytes = lagBytes
        }
    }

    public struct DeadLetterFact: Codable, Sendable, Equatable {
        public var id: Int64
        public var subscription: Int64
        public var resource: String

        public init(id: Int64, subscription: Int64, resource: String) {
            self.id = id
            self.subscription = subscription
            self.resource = resource
        }
    }

    public let node: String
    public let level: Level
    public let findings: [Finding]
    public let spool: Outbox.SpoolFigures
    public let slot: Slot?
    public let status: AgentStatus?

    /// A status file older than this, or from a process that is gone, means the agent is not running.
    public static let staleAfter: Int64 = 30

    public static func assess(_ facts: Facts) -> StatusReport {
        var findings: [Finding] = []
        func add(_ level: Level, _ subject: String, _ message: String) { findings.append(Finding(level: level, subject: subject, message: message)) }

        let running = facts.status.map { facts.processAlive && facts.now - $0.updatedAt <= staleAfter } ?? false
        if let status = facts.status, !running {
            add(.critical, "agent", "not running (its status is \(HealthText.duration(facts.now - status.updatedAt)) old): `systemctl status govex-agent`, `journalctl -u govex-agent`")
        } else if facts.status == nil {
            add(.critical, "agent", "has not run here yet (no status file): `systemctl start govex-agent`")
        } else {
            add(.ok, "agent", "running (pid \(facts.status!.pid))")
        }

        if let error = facts.databaseError { add(.critical, "database", "cannot be asked: \(error)") }

        if facts.publishes, let status = facts.status, running, let capture = status.capture {
            switch capture.phase {
            case .streaming: add(.ok, "capture", "streaming")
            case .starting: add(.ok, "capture", "starting: connected, its slot exists")
            case .stopping: add(.warning, "capture", "stopping")
            case .snapshot:
                let progress = capture.snapshot.map { snapshot in
                    "\(snapshot.resource)" + (snapshot.percent.map { String(format: " %.0f%%", $0) } ?? "") + ", table \(snapshot.table) of \(snapshot.tables)"
                } ?? "starting"
                add(.ok, "capture", "initial snapshot: \(progress)")
            }
        }
        if facts.publishes, let slot = facts.slot {
            if !slot.exists {
                add(running ? .warning : .ok, "slot \(slot.name)", "does not exist yet (the agent creates it at its first start)")
            } else if slot.retainedWALBytes > facts.retainedWALAlarm {
                add(.critical, "slot \(slot.name)", "retains \(HealthText.bytes(slot.retainedWALBytes)) of WAL (alarm at \(HealthText.bytes(facts.retainedWALAlarm))): "
                    + "capture is behind or stopped, and the department's disk fills")
            } else {
                add(.ok, "slot \(slot.name)", "retains \(HealthText.bytes(slot.retainedWALBytes)) of WAL, \(HealthText.bytes(slot.lagBytes)) not yet confirmed")
            }
        }

        if facts.publishes {
            let spool = facts.spool
            let oldest = spool.batches > 0 ? ", oldest \(HealthText.duration(Int64(spool.oldestAgeSeconds)))" : ""
            let summary = "\(spool.batches) batches, \(spool.bytes) bytes\(oldest)"
            if spool.full {
                add(.critical, "spool", "full (\(summary)): capture is paused until the hub acknowledges batches")
            } else if !facts.hubConfigured {
                add(spool.batches > 0 ? .warning : .ok, "spool", "\(summary); no [hub] url, so batches stay here")
            } else if spool.oldestAgeSeconds > 300 {
                add(.warning, "spool", "\(summary): the hub has not taken them for a while")
            } else {
                add(.ok, "spool", summary)
            }
        }

        if facts.hubConfigured, let status = facts.status, running, let push = status.push {
            if let since = push.failingSince {
                add(.warning, "hub", "unreachable or refusing for \(HealthText.duration(facts.now - since)): \(push.lastError ?? "?")")
            } else if let last = push.lastSuccessAt {
                add(.ok, "hub", "last push \(HealthText.duration(facts.now - last)) ago")
            }
        }

        for letter in facts.deadLetters {
            add(.critical, "subscription \(letter.subscription) (\(letter.resource))",
                "waits on dead letter \(letter.id): `govex deadletter show \(letter.id)`, then replay or skip it")
        }
        let subscriptions = facts.status.map(\.subscriptions) ?? []
        for resource in facts.subscriptionsConfigured {
            guard let entry = subscriptions.first(where: { $0.resource == resource }), running else { continue }
            if entry.state == "active" {
                let applied = (entry.lastAppliedAt.map { ", last applied \(HealthText.duration(facts.now - $0)) ago" } ?? "")
                    + (entry.applyLagSeconds.map { String(format: ", %.1f s after the provider sealed it", $0) } ?? "")
                add(.ok, "subscription \(resource)", "active, applied through delivery \(entry.appliedThrough ?? 0)\(applied)")
            } else if !entry.state.hasPrefix("dead letter") {
                add(.warning, "subscription \(resource)", "\(entry.state): nothing is applied until it is active")
            }
        }

        let level = findings.map(\.level).max() ?? .ok
        return StatusReport(node: facts.node, level: level, findings: findings, spool: facts.spool, slot: facts.slot, status: facts.status)
    }

    /// For a terminal: one line per finding, the level in colour when `colour`.
    public func text(colour: Bool) -> String { HealthText.render(title: "govex agent \(node)", level: level, findings: findings, colour: colour) }
}
