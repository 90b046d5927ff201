import GovexWire

/// Cuts the decoded change stream into batches and says, after each, how far
/// PostgreSQL may be told the changes are safe. Pure: events and the time in,
/// actions out; the capture service performs them (seal, spool, then confirm).
///
/// A batch closes at a record count, a byte size or an age. A transaction may
/// span batches: a batch's `completeThrough` is the commit position of the last
/// transaction it finishes, and the position to confirm once it is durable is
/// the end of that transaction's commit record, never more.
public struct BatchBuilder: Sendable {
    public struct Limits: Sendable, Equatable {
        public var maxRecords: Int
        public var maxBytes: Int
        public var maxAge: Duration

        public init(maxRecords: Int = 10_000, maxBytes: Int = 8 << 20, maxAge: Duration = .milliseconds(500)) {
            self.maxRecords = maxRecords
            self.maxBytes = maxBytes
            self.maxAge = maxAge
        }
    }

    /// A batch ready to seal; confirm `confirmable` once it is durable (0: nothing new to confirm).
    public struct ReadyBatch: Sendable {
        public let body: BatchBodyEncoder
        public let completeThrough: UInt64
        public let confirmable: UInt64
    }

    public enum Action: Sendable {
        case seal(ReadyBatch)
        /// Nothing is pending: this position can be confirmed as soon as earlier batches are durable.
        case confirm(UInt64)
    }

    public let limits: Limits
    private var body = BatchBodyEncoder(capacity: 1 << 20)
    private var openedAt: ContinuousClock.Instant? = nil
    private var inTransaction = false
    /// The last transaction finished since the open batch began (commit position, end of its commit record).
    private var lastFinished: (commit: UInt64, end: UInt64)? = nil
    /// What the last batch completed through; a batch that finishes no transaction repeats it.
    private var completeThrough: UInt64 = 0

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    public var pendingRecords: Int { body.recordCount }

    public mutating func add(_ event: CaptureEvent, now: ContinuousClock.Instant) throws(BatchError) -> [Action] {
        switch event {
        case .change(let record):
            inTransaction = true
            if openedAt == nil { openedAt = now }
            try body.append(record)
            if body.recordCount >= limits.maxRecords || body.byteCount >= limits.maxBytes {
                return [.seal(cut())]
            }
            return []
        case let .commit(commitLSN, endLSN):
            inTransaction = false
            if body.recordCount == 0 {
                // A transaction with nothing mapped (or one finished in an already sealed batch):
                // nothing to ship, so the slot may move past it.
                return [.confirm(endLSN)]
            }
            lastFinished = (commitLSN, endLSN)
            return []
        case let .message(_, _, lsn):
            // A heartbeat (pg_logical_emit_message outside a transaction) is a position the
            // slot may move to when we hold nothing, like a keepalive's.
            return body.recordCount == 0 && !inTransaction ? [.confirm(lsn)] : []
        }
    }

    /// Seals an open batch that has reached its age, and confirms a quiet server position.
    public mutating func tick(now: ContinuousClock.Instant, serverPosition: UInt64? = nil) -> [Action] {
        var actions: [Action] = []
        if let openedAt, body.recordCount > 0, now - openedAt >= limits.maxAge {
            actions.append(.seal(cut()))
        }
        // Keepalives report the server's WAL end; when we hold nothing, confirming it lets the slot advance
        // while unmapped tables take writes.
        if let serverPosition, body.recordCount == 0, !inTransaction {
            actions.append(.confirm(serverPosition))
        }
        return actions
    }

    /// On shutdown: whatever is open, sealed now.
    public mutating func flush() -> ReadyBatch? {
        body.recordCount > 0 ? cut() : nil
    }

    private mutating func cut() -> ReadyBatch {
        if let lastFinished { completeThrough = lastFinished.commit }
        let ready = ReadyBatch(body: body, completeThrough: completeThrough, confirmable: lastFinished?.end ?? 0)
        body.reset()
        openedAt = nil
        lastFinished = nil
        return ready
    }
}
