import CoreMetrics
import Foundation
import GovexLog
import GovexPostgres
import GovexWire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct CaptureConfiguration: Sendable {
    public var nodeID: String
    public var conninfo: String
    public var slot: String
    public var publications: [String]
    public var mappings: [TableMapping]
    public var batchLimits: BatchBuilder.Limits
    public var spoolLimits: Spool.Limits
    public var dataDirectory: String
    public var signingKey: SigningKey
    /// Replication origins whose transactions are our own applies (never captured back out).
    public var skippedOrigins: Set<String>
    /// How often the slot's retained WAL is measured, and the size that raises an alarm.
    public var walCheckInterval: Duration = .seconds(10)
    public var retainedWALAlarm: Int64 = 1 << 30
    /// When set, a `pg_logical_emit_message` heartbeat is written this often, so the slot
    /// advances even when the server sends no keepalive position past our last change.
    public var heartbeatInterval: Duration? = nil
    public static let heartbeatPrefix = "govex-heartbeat"

    public init(nodeID: String, conninfo: String, slot: String, publications: [String], mappings: [TableMapping],
                batchLimits: BatchBuilder.Limits = .init(), spoolLimits: Spool.Limits = .init(), dataDirectory: String,
                signingKey: SigningKey, skippedOrigins: Set<String> = ["govex_apply"]) {
        self.nodeID = nodeID
        self.conninfo = conninfo
        self.slot = slot
        self.publications = publications
        self.mappings = mappings
        self.batchLimits = batchLimits
        self.spoolLimits = spoolLimits
        self.dataDirectory = dataDirectory
        self.signingKey = signingKey
        self.skippedOrigins = skippedOrigins
    }
}

/// Slot → decoder → batch builder → spool → confirm: the agent's capture loop.
///
/// PostgreSQL is told a position is flushed only after the batch holding the
/// transactions up to it is durable in the spool and the agent state records
/// it. After a crash the slot re-sends from its confirmed position; changes at
/// or before the last spooled position are dropped, so nothing is shipped twice.
public final class CaptureService: Sendable {
    public let configuration: CaptureConfiguration

    public init(configuration: CaptureConfiguration) {
        self.configuration = configuration
    }

    public enum Stop: Sendable {
        /// Seal what is open, spool it and confirm it (SIGTERM).
        case graceful
        /// Stop where we are, as a crash would (tests).
        case abandon
    }

    /// What capture is doing, as it changes: for systemd's STATUS= and `govex status`.
    public enum Event: Sendable, Equatable {
        /// Connected to the source, and the slot exists: what is committed from now on is captured.
        case connected
        /// The initial copy, about once a second while it runs.
        case snapshot(SnapshotProgress)
        /// The slot streams changes.
        case streaming
    }

    /// Runs until `shouldStop` returns a stop, checked between messages. `onEvent` hears
    /// what it is doing. `outbox` is the spool shared with the pusher; without one, the
    /// service opens its own.
    public func run(outbox shared: Outbox? = nil, shouldStop: @escaping @Sendable () -> Stop?,
                    onEvent: @escaping @Sendable (Event) -> Void = { _ in }) async throws {
        let config = configuration
        try DurableFile.makeDirectory(config.dataDirectory)
        let outbox = try shared ?? Outbox(configuration: config)
        let loaded = outbox.state

        let stream = try await ReplicationConnection.connect(config.conninfo)
        let side = SideConnection(conninfo: config.conninfo)
        // The walsender must be gone when run() returns, so that the slot is free for whoever comes next.
        do {
            try await capture(stream, side: side, outbox: outbox, loaded: loaded, shouldStop: shouldStop, onEvent: onEvent)
        } catch {
            await stream.close()
            await side.close()
            throw error
        }
        await stream.close()
        await side.close()
    }

    /// One ordinary connection for the periodic WAL check and heartbeat, opened on first use.
    actor SideConnection {
        let conninfo: String
        private var connection: PostgresConnection?

        init(conninfo: String) { self.conninfo = conninfo }

        func get() async throws -> PostgresConnection {
            if let connection { return connection }
            let opened = try await PostgresConnection.connect(conninfo, name: "govex-wal-check")
            connection = opened
            return opened
        }

        func close() async {
            await connection?.close()
            connection = nil
        }
    }

    private func capture(_ stream: ReplicationConnection, side: SideConnection, outbox: Outbox, loaded: AgentState, shouldStop: @escaping @Sendable () -> Stop?,
                        onEvent: @escaping @Sendable (Event) -> Void) async throws {
        let config = configuration
        // What the start checks and decides, on one connection.
        let (slotExists, plan) = try await PostgresConnection.with(config.conninfo) { sql in
            try await requireIdentifyingKeys(on: sql)
            let slotExists = try await self.slotExists(on: sql)
            let plan = SnapshotPlan(mappings: config.mappings, tables: loaded.tables, slotExists: slotExists,
                                    legacySnapshotComplete: loaded.legacySnapshotComplete)
            if !plan.copy.isEmpty { try await requirePublished(plan.copy, on: sql) }
            return (slotExists, plan)
        }
        try outbox.planSnapshot(plan)
        if !slotExists {
            let slot = try await createSlot(on: stream, config)
            onEvent(.connected)
            // The replication connection stays idle while other connections read under its snapshot.
            try await copyTables(plan, snapshot: slot, outbox: outbox, completesStream: true, onEvent: onEvent)
        } else {
            onEvent(.connected)
            if !plan.copy.isEmpty {
                // The slot streams from where it stopped; these tables are copied under a snapshot of
                // their own, and the stream's changes to them that commit before it are dropped.
                let resumed = plan.copy.map(\.resource).filter(plan.truncateFirst.contains)
                Self.log("copying \(plan.copy.count) of \(config.mappings.count) tables (" + plan.copy.map(\.resource).joined(separator: ", ") + ")"
                         + (resumed.isEmpty ? "" : "; copying again, after a truncate: " + resumed.joined(separator: ", ")))
                let helper = try await ReplicationConnection.connect(config.conninfo)
                do {
                    let snapshot = try await helper.createSlot(Self.copySlotName(config.slot), temporary: true, exportSnapshot: true)
                    try await copyTables(plan, snapshot: snapshot, outbox: outbox, completesStream: false, onEvent: onEvent)
                } catch {
                    await helper.close()
                    throw error
                }
                await helper.close()
            }
        }
        try await startReplication(on: stream, config)
        onEvent(.streaming)

        var decoder = ChangeDecoder(mappings: config.mappings, skippedOrigins: config.skippedOrigins)
        // Sealing compresses, signs and fsyncs: on a thread of its own, so that the cooperative
        // pool (two threads here) keeps serving keepalives, the pusher and the watchdog meanwhile.
        let spoolThread = DedicatedThread(name: "govex-spool")
        defer { spoolThread.stop() }
        var session = CaptureSession(limits: config.batchLimits, lastSpooled: outbox.lastPosition, copiedAt: outbox.state.copiedAt,
                                     walCheckInterval: config.walCheckInterval, heartbeatInterval: config.heartbeatInterval, now: .now)

        // The session's actions, in order: a failure ends the run (the slot re-sends what was not confirmed).
        func perform(_ actions: [CaptureSession.Action]) async throws {
            for action in actions {
                switch action {
                case .seal(let ready):
                    let body = ready.body, completeThrough = ready.completeThrough
                    try await spoolThread.run { try outbox.seal(body, kind: .change, completeThrough: completeThrough) }
                    CrashPoint.here("capture.before-confirm")
                    try await perform(session.sealed(ready))
                case .sendStatus(let position):
                    try await stream.sendStatus(written: position, flushed: position, applied: position)
                case .alarmSpoolFull:
                    Self.alarm("spool full (\(outbox.spoolSummary)): capture paused until the hub acknowledges batches")
                    outbox.metrics.alarms.increment()
                    outbox.metrics.paused.record(1)
                case .waitForSpool:
                    try await Task.sleep(for: .seconds(1))
                case .resumed:
                    outbox.metrics.paused.record(0)
                case .checkRetainedWAL:
                    try await checkRetainedWAL(outbox.metrics, using: try await side.get())
                case .emitHeartbeat:
                    try await side.get().query("SELECT pg_catalog.pg_logical_emit_message(false, $1, '')", [CaptureConfiguration.heartbeatPrefix])
                }
            }
        }

        while true {
            if let stop = shouldStop() {
                try await perform(session.stop(graceful: stop == .graceful))
                return
            }
            let waiting = session.beforeRead(spoolFull: outbox.isFull)
            try await perform(waiting)
            if session.paused { continue }
            let messages = try await stream.nextMessages(timeout: .milliseconds(100))
            let now = ContinuousClock.now
            try await perform(session.afterRead(receivedNothing: messages.isEmpty, now: now))
            for message in messages {
                switch message {
                case .xlogData(_, let walEnd, _, let data):
                    let parsed = try PgOutputParser.parse(data)
                    if case let .commit(_, _, endLSN, commitTime) = parsed {
                        outbox.metrics.lagBytes.record(Int64(walEnd > endLSN ? walEnd - endLSN : 0))
                        outbox.metrics.lagSeconds.record(Double(ReplicationConnection.postgresClockNow() - commitTime) / 1e6)
                    }
                    for event in try decoder.consume(parsed) {
                        try await perform(try session.received(event, now: now))
                    }
                case let .keepalive(walEnd, _, replyRequested):
                    if session.builder.pendingRecords == 0 {
                        outbox.metrics.lagBytes.record(Int64(walEnd > session.confirmed ? walEnd - session.confirmed : 0))
                    }
                    try await perform(session.keepalive(serverPosition: walEnd, replyRequested: replyRequested, now: now))
                }
            }
        }
    }

    /// Copies the plan's tables under `snapshot`, each marked copied once its last rows are
    /// durable. A copy under the stream's own slot completes the stream up to its start.
    private func copyTables(_ plan: SnapshotPlan, snapshot: CreatedSlot, outbox: Outbox, completesStream: Bool,
                            onEvent: @escaping @Sendable (Event) -> Void) async throws {
        let point = snapshot.consistentPoint, last = plan.copy.last?.resource
        try await InitialSnapshot.copy(
            conninfo: configuration.conninfo, snapshotName: snapshot.snapshotName ?? "", consistentPoint: point,
            mappings: plan.copy, truncateFirst: plan.truncateFirst, limits: configuration.batchLimits,
            beginTable: { mapping in try outbox.beginCopy(of: mapping.resource) },
            emit: { body, finished in
                guard body.recordCount > 0 || finished != nil else { return }
                let completeThrough = completesStream && finished != nil && finished?.resource == last ? point : 0
                try outbox.seal(body, kind: .snapshot, completeThrough: completeThrough, copied: finished.map { ($0.resource, point) })
            },
            progress: { report in
                let percent = report.percent.map { String(format: "%.1f%%", $0) } ?? "?"
                Self.log("snapshot \(report.resource) (table \(report.table) of \(report.tables)): \(report.rows) rows (\(percent)), \(Int(report.rowsPerSecond)) rows/s")
                onEvent(.snapshot(report))
            })
    }

    /// Two source rows with one key would become one everywhere downstream, silently.
    private func requireIdentifyingKeys(on sql: PostgresConnection) async throws {
        for mapping in configuration.mappings {
            let problems = try await KeyIdentity.problems(mapping, on: sql)
            guard problems.isEmpty else {
                throw CaptureError.mappingMismatch(resource: mapping.resource,
                                                   reason: problems.map { "\($0.message); \($0.fix)" }.joined(separator: "; "))
            }
        }
    }

    /// A table copied but not in the publication would miss every change after its copy.
    private func requirePublished(_ mappings: [TableMapping], on sql: PostgresConnection) async throws {
        let config = configuration
        for mapping in mappings {
            var published = false
            for publication in config.publications where !published {
                published = !(try await sql.query(
                    "SELECT 1 FROM pg_catalog.pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                    [publication, mapping.schema, mapping.table]).rows.isEmpty)
            }
            guard published else {
                throw CaptureError.mappingMismatch(
                    resource: mapping.resource,
                    reason: "table \(mapping.schema).\(mapping.table) is not in publication \(config.publications.joined(separator: ", ")), so its changes would not be captured; ALTER PUBLICATION \(SQLQuoting.identifier(config.publications.first ?? "govex")) ADD TABLE \(SQLQuoting.qualified(schema: mapping.schema, name: mapping.table))")
            }
        }
    }

    /// The temporary slot a later copy takes its snapshot from: unique per process, so that a
    /// crashed run's walsender, still holding its own, is no obstacle.
    static func copySlotName(_ slot: String) -> String {
        String(slot.prefix(40)) + "_copy_\(getpid())"
    }

    /// The WAL the slot keeps on the server, as a gauge, with an alarm past the configured threshold.
    private func checkRetainedWAL(_ metrics: CaptureMetrics, using sql: PostgresConnection) async throws {
        let config = configuration
        let result = try await sql.query(
            "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::int8 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            [config.slot])
        guard let retained = result.rows.first?[0].flatMap({ Int64($0) }) else { return }
        metrics.retainedWAL.record(retained)
        if retained > config.retainedWALAlarm {
            Self.alarm("slot \(config.slot) retains \(retained / (1 << 20)) MiB of WAL (alarm at \(config.retainedWALAlarm / (1 << 20)) MiB): capture is behind or paused")
            metrics.alarms.increment()
        }
    }

    /// After a crash the previous run's walsender holds the slot until it notices its client
    /// is gone (at the latest at wal_sender_timeout): wait for it rather than fail.
    private func startReplication(on stream: ReplicationConnection, _ config: CaptureConfiguration) async throws {
        let deadline = ContinuousClock.now + .seconds(90)
        var reported = false
        while true {
            do {
                try await stream.startReplication(slot: config.slot, from: 0, publications: config.publications)
                return
            } catch let error as PostgresError where error.sqlState == "55006" && ContinuousClock.now < deadline {
                if !reported {
                    Self.log("slot \(config.slot) is still held by a previous walsender (\(error.message)); waiting for it to let go")
                    reported = true
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// A crashed agent's walsender may still be creating the slot when this one starts
    /// (it notices its client is gone only later): that half-made slot is dropped and the
    /// creation retried.
    private func createSlot(on stream: ReplicationConnection, _ config: CaptureConfiguration) async throws -> CreatedSlot {
        var attempt = 1
        while true {
            do {
                return try await stream.createSlot(config.slot, exportSnapshot: true)
            } catch let error as PostgresError where error.sqlState == "42710" && attempt < 5 {
                Self.alarm("slot \(config.slot) appeared while no snapshot was complete (a crashed run was creating it); dropping it and creating it again")
                try await dropSlot(config)
                attempt += 1
            }
        }
    }

    private func dropSlot(_ config: CaptureConfiguration) async throws {
        try await PostgresConnection.with(config.conninfo) { sql in
            // A walsender of the crashed process may still hold the slot for a moment; a slot
            // that process was still creating vanishes with it.
            for attempt in 0..<100 {
                do {
                    try await sql.query("SELECT pg_catalog.pg_drop_replication_slot($1)", [config.slot])
                    return
                } catch let error as PostgresError where error.sqlState == "42704" {
                    return
                } catch let error as PostgresError where error.sqlState == "55006" && attempt < 99 {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
        }
    }

    private func slotExists(on sql: PostgresConnection) async throws -> Bool {
        !(try await sql.query("SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", [configuration.slot]).rows.isEmpty)
    }

    /// Alarms are error-level lines on stderr (journald keeps them); metrics come with the agent.
    static func alarm(_ message: String) { journal.write(.error, message) }

    static func log(_ message: String) { journal.write(.info, message) }

    static let journal = Journal("govex capture")

    static func nowMicroseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }
}
