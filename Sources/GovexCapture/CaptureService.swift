import GovexPostgres
import GovexWire
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

    /// Runs until `shouldStop` returns a stop, checked between messages.
    public func run(shouldStop: @escaping @Sendable () -> Stop?) async throws {
        let config = configuration
        try DurableFile.makeDirectory(config.dataDirectory)
        let spool = try Spool(directory: config.dataDirectory + "/spool", limits: config.spoolLimits)
        var state = try AgentState.load(from: config.dataDirectory)
        if let last = spool.lastSequence, last > state.lastSequence { state.lastSequence = last }
        try state.save(to: config.dataDirectory)

        let stream = try await ReplicationConnection.connect(config.conninfo)
        defer { Task { await stream.close() } }
        if try await !slotExists(config) {
            _ = try await stream.createSlot(config.slot, exportSnapshot: false)
        }
        try await stream.startReplication(slot: config.slot, from: 0, publications: config.publications)

        var decoder = ChangeDecoder(mappings: config.mappings, skippedOrigins: config.skippedOrigins)
        var builder = BatchBuilder(limits: config.batchLimits)
        var confirmed: UInt64 = 0
        var alarmed = false

        func perform(_ actions: [BatchBuilder.Action]) async throws {
            for action in actions {
                switch action {
                case .seal(let ready):
                    try seal(ready, state: &state, spool: spool)
                    if ready.confirmable > confirmed { confirmed = ready.confirmable }
                    try await stream.sendStatus(written: confirmed, flushed: confirmed, applied: confirmed)
                case .confirm(let position):
                    if position > confirmed {
                        confirmed = position
                        try await stream.sendStatus(written: confirmed, flushed: confirmed, applied: confirmed)
                    }
                }
            }
        }

        while true {
            if let stop = shouldStop() {
                if stop == .graceful, let ready = builder.flush() { try await perform([.seal(ready)]) }
                return
            }
            if spool.isFull {
                // Backpressure, never loss: stop reading the slot until the hub acknowledges batches.
                // Status updates keep the connection alive meanwhile (wal_sender_timeout).
                if !alarmed {
                    Self.alarm("spool full (\(spool.entries.count) batches, \(spool.totalBytes) bytes): capture paused until the hub acknowledges batches")
                    alarmed = true
                }
                try await stream.sendStatus(written: confirmed, flushed: confirmed, applied: confirmed)
                try await Task.sleep(for: .seconds(1))
                continue
            }
            alarmed = false
            let message = try await stream.next(timeout: .milliseconds(100))
            let now = ContinuousClock.now
            switch message {
            case .xlogData(_, _, _, let data)?:
                for event in try decoder.consume(try PgOutputParser.parse(data)) {
                    // Re-sent after a restart and already spooled: drop.
                    if case .change(let record) = event, let last = state.lastPosition, record.position <= last { continue }
                    try await perform(try builder.add(event, now: now))
                }
            case let .keepalive(walEnd, _, replyRequested)?:
                try await perform(builder.tick(now: now, serverPosition: walEnd))
                if replyRequested { try await stream.sendStatus(written: confirmed, flushed: confirmed, applied: confirmed) }
            case nil:
                try await perform(builder.tick(now: now))
            }
        }
    }

    private func seal(_ ready: BatchBuilder.ReadyBatch, state: inout AgentState, spool: Spool) throws {
        let config = configuration
        let sequence = state.lastSequence + 1
        let metadata = BatchMetadata(nodeID: config.nodeID, nodeEpoch: state.epoch, sequence: sequence, kind: .change,
                                     positionType: .postgresLSN, completeThrough: ready.completeThrough, createdAt: Self.nowMicroseconds())
        let file = try BatchSealer.seal(ready.body, metadata: metadata, key: config.signingKey)
        try spool.append(file, sequence: sequence)
        state.lastSequence = sequence
        state.lastPosition = ready.body.lastPosition ?? state.lastPosition
        try state.save(to: config.dataDirectory)
        CrashPoint.here("capture.before-confirm")
    }

    private func slotExists(_ config: CaptureConfiguration) async throws -> Bool {
        let sql = try await PostgresConnection.connect(config.conninfo)
        defer { Task { await sql.close() } }
        let result = try await sql.query("SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", [config.slot])
        return !result.rows.isEmpty
    }

    /// Alarms are error-level lines on stderr (journald keeps them); metrics come with the agent.
    static func alarm(_ message: String) {
        let line = "<3>govex capture: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    static func nowMicroseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }
}
