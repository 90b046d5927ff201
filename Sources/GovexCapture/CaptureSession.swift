import GovexWire

/// The replication session's decisions, apart from its IO, as BatchBuilder is for batches:
/// what to do with a decoded change (drop what a restart re-sent, batch the rest), a
/// keepalive (tick the builder, reply when asked), a durable seal (confirm its position),
/// a full spool (pause, alarm once, keep the connection alive), and when to measure the
/// slot's WAL or write a heartbeat. Events in, actions out; the capture loop does the IO.
public struct CaptureSession: Sendable {
    public enum Action: Sendable {
        /// Seal this batch into the spool; report back with `sealed(_:)` once it is durable.
        case seal(BatchBuilder.ReadyBatch)
        /// Tell the server this position is written, flushed and applied (a standby status update).
        case sendStatus(UInt64)
        /// Raise the spool-full alarm (once per pause).
        case alarmSpoolFull
        /// Wait a moment before reading on (the spool is full).
        case waitForSpool
        /// Capture reads the slot again.
        case resumed
        case checkRetainedWAL
        case emitHeartbeat
    }

    public var builder: BatchBuilder
    /// The last position the server was told is durable.
    public private(set) var confirmed: UInt64 = 0
    public private(set) var paused = false
    /// Seals handed out and not yet reported durable; a position the builder may confirm
    /// meanwhile waits for them (it lies after what they hold).
    var sealsInFlight = 0
    var deferredConfirm: UInt64 = 0
    /// Changes at or before this position are already in the spool (a restart re-sends them).
    let lastSpooled: SourcePosition?
    /// Per resource, the position its table was copied at: the table's changes that committed
    /// before it are in the copy (as PostgreSQL's table synchronisation skips them).
    let copiedAt: [String: UInt64]
    let walCheckInterval: Duration
    let heartbeatInterval: Duration?
    var lastWALCheck: ContinuousClock.Instant
    var lastHeartbeat: ContinuousClock.Instant

    public init(limits: BatchBuilder.Limits, lastSpooled: SourcePosition?, copiedAt: [String: UInt64] = [:],
                walCheckInterval: Duration, heartbeatInterval: Duration?, now: ContinuousClock.Instant) {
        builder = BatchBuilder(limits: limits)
        self.lastSpooled = lastSpooled
        self.copiedAt = copiedAt
        self.walCheckInterval = walCheckInterval
        self.heartbeatInterval = heartbeatInterval
        lastWALCheck = now - walCheckInterval
        lastHeartbeat = now
    }

    /// Before each read: a full spool pauses reading (never dropping), with a status update
    /// so the server keeps the connection (wal_sender_timeout).
    public mutating func beforeRead(spoolFull: Bool) -> [Action] {
        if spoolFull {
            defer { paused = true }
            return (paused ? [] : [.alarmSpoolFull]) + [.sendStatus(confirmed), .waitForSpool]
        }
        guard paused else { return [] }
        paused = false
        return [.resumed]
    }

    /// After a read: the periodic work due at `now`, and the builder's age check when nothing came.
    public mutating func afterRead(receivedNothing: Bool, now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        if now - lastWALCheck >= walCheckInterval {
            lastWALCheck = now
            actions.append(.checkRetainedWAL)
        }
        if let heartbeatInterval, now - lastHeartbeat >= heartbeatInterval {
            lastHeartbeat = now
            actions.append(.emitHeartbeat)
        }
        if receivedNothing { actions += translate(builder.tick(now: now)) }
        return actions
    }

    /// A decoded change or transaction boundary.
    public mutating func received(_ event: CaptureEvent, now: ContinuousClock.Instant) throws(BatchError) -> [Action] {
        if case .change(let record) = event {
            if let lastSpooled, record.position <= lastSpooled { return [] }
            if let copied = copiedAt[record.resource], record.position.commit < copied { return [] }
        }
        return translate(try builder.add(event, now: now))
    }

    /// A keepalive: batches may be due, and the server may ask for a reply.
    public mutating func keepalive(serverPosition: UInt64, replyRequested: Bool, now: ContinuousClock.Instant) -> [Action] {
        translate(builder.tick(now: now, serverPosition: serverPosition)) + (replyRequested ? [.sendStatus(confirmed)] : [])
    }

    /// A batch is durable in the spool: its position, and one that waited for it, may be confirmed.
    public mutating func sealed(_ batch: BatchBuilder.ReadyBatch) -> [Action] {
        sealsInFlight = max(0, sealsInFlight - 1)
        var position = batch.confirmable
        if sealsInFlight == 0 {
            position = max(position, deferredConfirm)
            deferredConfirm = 0
        }
        guard position > confirmed else { return [] }
        confirmed = position
        return [.sendStatus(confirmed)]
    }

    /// A stop: a graceful one seals what is open.
    public mutating func stop(graceful: Bool) -> [Action] {
        guard graceful, let ready = builder.flush() else { return [] }
        sealsInFlight += 1
        return [.seal(ready)]
    }

    /// The builder's own actions. A position it may confirm is confirmed at once when no
    /// seal is in flight, else when the last of them is durable.
    private mutating func translate(_ actions: [BatchBuilder.Action]) -> [Action] {
        actions.flatMap { action -> [Action] in
            switch action {
            case .seal(let ready):
                sealsInFlight += 1
                return [.seal(ready)]
            case .confirm(let position):
                guard sealsInFlight == 0 else {
                    deferredConfirm = max(deferredConfirm, position)
                    return []
                }
                guard position > confirmed else { return [] }
                confirmed = position
                return [.sendStatus(position)]
            }
        }
    }
}
