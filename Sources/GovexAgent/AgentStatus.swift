import Foundation
import GovexAPI
import GovexCapture
import GovexWire
import Synchronization

/// What the running agent is doing, as `govex status` and systemd's STATUS= show it. The
/// agent writes it to `data_dir/status.json` every few seconds; what a database or the
/// spool directory can tell (slot, WAL, dead letters, spool) `govex status` reads itself.
public struct AgentStatus: Codable, Sendable, Equatable {
    public var node: String
    public var pid: Int32
    /// Seconds since 1970 when the agent last wrote this; a stale one means it is not running.
    public var updatedAt: Int64
    public var capture: Capture?
    public var push: Push?
    public var subscriptions: [Subscription] = []

    public init(node: String, pid: Int32, updatedAt: Int64, capture: Capture? = nil, push: Push? = nil, subscriptions: [Subscription] = []) {
        self.node = node
        self.pid = pid
        self.updatedAt = updatedAt
        self.capture = capture
        self.push = push
        self.subscriptions = subscriptions
    }

    public struct Capture: Codable, Sendable, Equatable {
        public enum Phase: String, Codable, Sendable { case starting, snapshot, streaming, stopping }
        public var phase: Phase
        public var snapshot: Snapshot?

        public init(phase: Phase, snapshot: Snapshot? = nil) {
            self.phase = phase
            self.snapshot = snapshot
        }
    }

    public struct Snapshot: Codable, Sendable, Equatable {
        public var resource: String
        public var table: Int
        public var tables: Int
        public var rows: Int
        public var percent: Double?
    }

    public struct Push: Codable, Sendable, Equatable {
        public var lastSuccessAt: Int64?
        /// Since when pushing fails (the hub unreachable or refusing); nil while it works.
        public var failingSince: Int64?
        public var lastError: String?

        public init(lastSuccessAt: Int64? = nil, failingSince: Int64? = nil, lastError: String? = nil) {
            self.lastSuccessAt = lastSuccessAt
            self.failingSince = failingSince
            self.lastError = lastError
        }
    }

    public struct Subscription: Codable, Sendable, Equatable {
        public var resource: String
        public var id: Int64?
        public var state: String
        public var appliedThrough: UInt64?
        public var lastAppliedAt: Int64?
        /// Seconds from the provider sealing the last applied batch to its rows being applied.
        public var applyLagSeconds: Double?

        public init(resource: String, id: Int64? = nil, state: String, appliedThrough: UInt64? = nil, lastAppliedAt: Int64? = nil,
                    applyLagSeconds: Double? = nil) {
            self.resource = resource
            self.id = id
            self.state = state
            self.appliedThrough = appliedThrough
            self.lastAppliedAt = lastAppliedAt
            self.applyLagSeconds = applyLagSeconds
        }
    }

    public static let fileName = "status.json"

    public static func read(dataDirectory: String) throws -> AgentStatus {
        try JSONDecoder().decode(AgentStatus.self, from: Data(contentsOf: URL(fileURLWithPath: dataDirectory + "/" + fileName)))
    }

    /// One line for `systemctl status`: what a person looking at the unit wants first.
    public func line(spool: Outbox.SpoolFigures?, now: Int64) -> String {
        var parts: [String] = []
        if let capture {
            switch capture.phase {
            case .starting: parts.append("starting")
            case .stopping: parts.append("stopping")
            case .streaming: parts.append("streaming")
            case .snapshot:
                if let snapshot = capture.snapshot {
                    let percent = snapshot.percent.map { String(format: " %.0f%%", $0) } ?? ""
                    parts.append("snapshot \(snapshot.resource)\(percent) (table \(snapshot.table) of \(snapshot.tables), \(snapshot.rows) rows)")
                } else {
                    parts.append("snapshot starting")
                }
            }
        }
        if let spool { parts.append("spool \(spool.batches) batches" + (spool.full ? " (full)" : "")) }
        if let failing = push?.failingSince { parts.append("hub unreachable for \(HealthText.duration(now - failing))") }
        let active = subscriptions.filter { $0.state == "active" }.count
        if !subscriptions.isEmpty { parts.append("\(active)/\(subscriptions.count) subscriptions active") }
        return parts.isEmpty ? "running" : parts.joined(separator: ", ")
    }

}

/// Where the agent's services post what they are doing; the status service reads it.
public final class StatusBoard: Sendable {
    private let status: Mutex<AgentStatus>

    public init(node: String, captures: Bool, subscriptions: [String]) {
        status = Mutex(AgentStatus(node: node, pid: getpid(), updatedAt: 0,
                                   capture: captures ? .init(phase: .starting) : nil, push: nil,
                                   subscriptions: subscriptions.map { .init(resource: $0, state: "waiting") }))
    }

    public var current: AgentStatus { status.withLock { $0 } }

    func update(_ change: (inout AgentStatus) -> Void) { status.withLock { change(&$0) } }

    func capture(_ event: CaptureService.Event) {
        update { status in
            switch event {
            case .connected: status.capture = .init(phase: .starting)
            case .streaming: status.capture = .init(phase: .streaming)
            case .snapshot(let progress):
                status.capture = .init(phase: .snapshot, snapshot: .init(resource: progress.resource, table: progress.table, tables: progress.tables,
                                                                         rows: progress.rows, percent: progress.percent))
            }
        }
    }

    func pushed(at now: Int64) {
        update { $0.push = .init(lastSuccessAt: now, failingSince: nil, lastError: nil) }
    }

    func pushFailed(_ error: String, at now: Int64) {
        update { status in
            var push = status.push ?? .init()
            push.failingSince = push.failingSince ?? now
            push.lastError = error
            status.push = push
        }
    }

    func subscription(_ resource: String, id: Int64? = nil, state: String, appliedThrough: UInt64? = nil, appliedAt: Int64? = nil,
                      applyLag: Double? = nil) {
        update { status in
            guard let index = status.subscriptions.firstIndex(where: { $0.resource == resource }) else { return }
            var entry = status.subscriptions[index]
            entry.id = id ?? entry.id
            entry.state = state
            entry.appliedThrough = appliedThrough ?? entry.appliedThrough
            entry.lastAppliedAt = appliedAt ?? entry.lastAppliedAt
            entry.applyLagSeconds = applyLag ?? entry.applyLagSeconds
            status.subscriptions[index] = entry
        }
    }

    /// Writes `status.json` durably enough for a reader: a whole file or the previous one.
    func write(to dataDirectory: String, now: Int64) throws {
        var snapshot = current
        snapshot.updatedAt = now
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = try encoder.encode(snapshot)
        let path = dataDirectory + "/" + AgentStatus.fileName
        try Data(bytes).write(to: URL(fileURLWithPath: path + ".tmp"))
        guard rename(path + ".tmp", path) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }
}
