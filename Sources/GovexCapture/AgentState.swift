import GovexWire
#if canImport(Glibc)
import Glibc
#endif

/// What the agent must remember across restarts, apart from the spool: its
/// epoch, the last batch sequence it used, and the last change position it
/// spooled (so changes PostgreSQL re-sends after a restart are not shipped twice).
/// Kept in `data_dir/state` as `key=value` lines, replaced atomically and durably.
public struct AgentState: Sendable, Equatable {
    public var epoch: UInt64
    public var lastSequence: UInt64
    public var lastPosition: SourcePosition?
    /// The initial snapshot finished; until then a restart drops the slot and copies again.
    public var snapshotComplete: Bool

    public static let fileName = "state"

    public init(epoch: UInt64, lastSequence: UInt64 = 0, lastPosition: SourcePosition? = nil, snapshotComplete: Bool = false) {
        self.epoch = epoch
        self.lastSequence = lastSequence
        self.lastPosition = lastPosition
        self.snapshotComplete = snapshotComplete
    }

    /// Reads the state in `directory`, or starts a new epoch when there is none.
    public static func load(from directory: String) throws(FileError) -> AgentState {
        let path = directory + "/" + fileName
        guard access(path, F_OK) == 0 else { return AgentState(epoch: newEpoch()) }
        let text = String(decoding: try DurableFile.read(path, limit: 64 * 1024), as: UTF8.self)
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        guard let epoch = fields["epoch"].flatMap({ UInt64($0) }), epoch != 0,
              let sequence = fields["last_sequence"].flatMap({ UInt64($0) }) else {
            throw FileError(path: path, operation: "read agent state", reason: "epoch or last_sequence is missing or malformed; restore it from a backup, or remove it to start a new epoch (the hub must then accept the new epoch)")
        }
        var position: SourcePosition? = nil
        if let commit = fields["last_commit"].flatMap({ UInt64($0) }), let ordinal = fields["last_ordinal"].flatMap({ UInt32($0) }) {
            position = SourcePosition(commit: commit, ordinal: ordinal)
        }
        return AgentState(epoch: epoch, lastSequence: sequence, lastPosition: position, snapshotComplete: fields["snapshot_complete"] == "1")
    }

    /// A new epoch: the microseconds since 1970 when the state began, so a later reset has a
    /// larger epoch (readable as a time in the hub's messages); the hub tells epochs apart by
    /// identity, so a clock set back does no harm.
    public static func newEpoch(now: timespec = currentTime()) -> UInt64 {
        max(1, UInt64(max(0, now.tv_sec)) * 1_000_000 + UInt64(max(0, now.tv_nsec)) / 1_000)
    }

    public static func currentTime() -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return now
    }

    public func save(to directory: String) throws(FileError) {
        var text = "epoch=\(epoch)\nlast_sequence=\(lastSequence)\nsnapshot_complete=\(snapshotComplete ? 1 : 0)\n"
        if let lastPosition { text += "last_commit=\(lastPosition.commit)\nlast_ordinal=\(lastPosition.ordinal)\n" }
        try DurableFile.write(Array(text.utf8), to: Self.fileName, in: directory, crashPrefix: "state")
    }
}
