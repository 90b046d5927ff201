import Metrics
import GovexWire
import Synchronization

/// Seals bodies into the spool and keeps the agent state in step; used from the capture
/// loop and from the snapshot's copying thread, one at a time.
public final class Outbox: Sendable {
    struct Guarded {
        let spool: Spool
        var state: AgentState
    }

    private let guarded: Mutex<Guarded>
    private let configuration: CaptureConfiguration
    let metrics = CaptureMetrics()
    /// Rung when a batch is sealed into the spool: the pusher waits on it instead of polling.
    public let sealed = Doorbell()

    /// Opens the spool and the agent state; a sequence found in the spool beyond the state's wins.
    public init(configuration: CaptureConfiguration) throws {
        let spool = try Spool(directory: configuration.dataDirectory + "/spool", limits: configuration.spoolLimits)
        var state = try AgentState.load(from: configuration.dataDirectory)
        if let last = spool.lastSequence, last > state.lastSequence {
            // A crash came between spooling a batch and recording it in the state: the batch is the truth.
            // Its changes were never confirmed, so the slot re-sends them; its last position keeps them out.
            let header = try BatchFile(bytes: try spool.read(last)).header
            state.lastSequence = last
            // A copy's rows do not move the stream's position (a table copied later is copied at a later position).
            if header.kind == .change, header.recordCount > 0, state.lastPosition.map({ header.lastPosition > $0 }) ?? true {
                state.lastPosition = header.lastPosition
            }
        }
        try state.save(to: configuration.dataDirectory)
        guarded = Mutex(Guarded(spool: spool, state: state))
        self.configuration = configuration
    }

    public var state: AgentState { guarded.withLock { $0.state } }
    var lastPosition: SourcePosition? { guarded.withLock { $0.state.lastPosition } }
    public var isFull: Bool { guarded.withLock { $0.spool.isFull } }
    var spoolSummary: String { guarded.withLock { "\($0.spool.entries.count) batches, \($0.spool.totalBytes) bytes" } }

    /// Seals `body` into the spool. `copied` marks a table's copy complete, at the position of
    /// its snapshot, in the same durable state write as the batch holding its last rows.
    func seal(_ body: BatchBodyEncoder, kind: BatchKind, completeThrough: UInt64, copied: (resource: String, at: UInt64)? = nil) throws {
        try guarded.withLock { guarded in
            let sequence = guarded.state.lastSequence + 1
            let metadata = BatchMetadata(nodeID: configuration.nodeID, nodeEpoch: guarded.state.epoch, sequence: sequence, kind: kind,
                                         positionType: .postgresLSN, completeThrough: completeThrough, createdAt: CaptureService.nowMicroseconds())
            if body.recordCount > 0 {
                try guarded.spool.append(try BatchSealer.seal(body, metadata: metadata, key: configuration.signingKey), sequence: sequence)
                if kind == .change { CrashPoint.here("capture.spooled-before-state") }
                guarded.state.lastSequence = sequence
                if kind == .change { guarded.state.lastPosition = body.lastPosition ?? guarded.state.lastPosition }
                metrics.batchesSpooled.increment()
                metrics.recordsSpooled.increment(by: body.recordCount)
                if kind == .snapshot { CrashPoint.here("capture.snapshot-batch-spooled") }
            }
            recordGauges(guarded.spool)
            if let copied { guarded.state.tables[copied.resource]?.phase = .copied(at: copied.at) }
            try guarded.state.save(to: configuration.dataDirectory)
        }
        if body.recordCount > 0 { sealed.ring() }
    }

    /// Records which tables this run copies (and forgets resources no longer captured) before any is copied.
    func planSnapshot(_ plan: SnapshotPlan) throws {
        try guarded.withLock { guarded in
            guarded.state.tables = plan.tables
            guarded.state.legacySnapshotComplete = false
            try guarded.state.save(to: configuration.dataDirectory)
        }
    }

    /// A table's copy begins: recorded durably before any of its rows is spooled, so that a
    /// crash from here on makes the next copy of it start with a truncate.
    func beginCopy(of resource: String) throws {
        try guarded.withLock { guarded in
            guard guarded.state.tables[resource]?.phase == .pending else { return }
            guarded.state.tables[resource]?.phase = .copying
            try guarded.state.save(to: configuration.dataDirectory)
        }
    }

    /// The spool's gauges as they are now: called on a timer, since the oldest batch ages
    /// (and the spool fills) while nothing is written.
    public func refreshGauges() { guarded.withLock { recordGauges($0.spool) } }

    public typealias SpoolFigures = Spool.Figures

    public var spoolFigures: SpoolFigures {
        guarded.withLock { $0.spool.figures }
    }

    private func recordGauges(_ spool: Spool) {
        let figures = spool.figures
        metrics.spoolBatches.record(figures.batches)
        metrics.spoolBytes.record(figures.bytes)
        metrics.spoolOldestAge.record(figures.oldestAgeSeconds)
    }

    /// The spooled batches, oldest first: what the hub has not acknowledged yet.
    public var pending: [Spool.Entry] { guarded.withLock { $0.spool.entries } }

    public func read(_ sequence: UInt64) throws -> [UInt8] {
        try guarded.withLock { try $0.spool.read(sequence) }
    }

    /// The hub stored everything through `sequence`: those batches leave the spool.
    public func acknowledge(through sequence: UInt64) throws {
        try guarded.withLock { guarded in
            try guarded.spool.acknowledge(through: sequence)
            recordGauges(guarded.spool)
        }
    }

    /// A batch the hub stored as rejected: kept in `data_dir/quarantine` with the reason,
    /// then acknowledged, so that one bad batch does not block the stream.
    public func quarantine(_ sequence: UInt64, reason: String) throws {
        let directory = configuration.dataDirectory + "/quarantine"
        try DurableFile.makeDirectory(directory)
        let bytes = try read(sequence)
        try DurableFile.write(bytes, to: Spool.fileName(sequence), in: directory, crashPrefix: "quarantine")
        try DurableFile.write(Array((reason + "\n").utf8), to: Spool.fileName(sequence) + ".reason", in: directory, crashPrefix: "quarantine")
        try acknowledge(through: sequence)
    }
}
