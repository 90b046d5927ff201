import GovexWire
#if canImport(Glibc)
import Glibc
#endif

/// What the agent must remember across restarts, apart from the spool: its
/// epoch, the last batch sequence it used, the last change position it spooled
/// (so changes PostgreSQL re-sends after a restart are not shipped twice), and
/// where each published table's initial copy stands (so an interrupted copy goes
/// on with the tables not yet copied, and a table published later is copied alone).
/// Kept in `data_dir/state` as `key=value` lines, replaced atomically and durably.
public struct AgentState: Sendable, Equatable {
    public var epoch: UInt64
    public var lastSequence: UInt64
    public var lastPosition: SourcePosition?
    /// Each captured resource's initial copy, by resource code.
    public var tables: [String: TableCopy]
    /// A state written before per-table copies were recorded, whose snapshot was complete.
    public var legacySnapshotComplete: Bool

    public static let fileName = "state"

    public init(epoch: UInt64, lastSequence: UInt64 = 0, lastPosition: SourcePosition? = nil,
                tables: [String: TableCopy] = [:], legacySnapshotComplete: Bool = false) {
        self.epoch = epoch
        self.lastSequence = lastSequence
        self.lastPosition = lastPosition
        self.tables = tables
        self.legacySnapshotComplete = legacySnapshotComplete
    }

    /// Every captured table has been copied: from here on, only the stream moves data.
    public var snapshotComplete: Bool {
        tables.isEmpty ? legacySnapshotComplete : tables.values.allSatisfy(\.isCopied)
    }

    /// The position each copied table was copied at: its changes committed before it are in the copy.
    public var copiedAt: [String: UInt64] {
        tables.compactMapValues { if case .copied(let position) = $0.phase { position } else { nil } }
    }

    /// Reads the state in `directory`, or starts a new epoch when there is none.
    public static func load(from directory: String) throws(FileError) -> AgentState {
        let path = directory + "/" + fileName
        guard access(path, F_OK) == 0 else { return AgentState(epoch: newEpoch()) }
        let text = String(decoding: try DurableFile.read(path, limit: 1 << 20), as: UTF8.self)
        var fields: [String: String] = [:]
        var tables: [String: TableCopy] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            if parts[0].hasPrefix(TableCopy.keyPrefix) {
                let resource = String(parts[0].dropFirst(TableCopy.keyPrefix.count))
                guard let copy = TableCopy(stateText: parts[1]) else {
                    throw FileError(path: path, operation: "read agent state", reason: "line \(parts[0]) is malformed; remove the line to copy that table again")
                }
                tables[resource] = copy
            } else {
                fields[parts[0]] = parts[1]
            }
        }
        guard let epoch = fields["epoch"].flatMap({ UInt64($0) }), epoch != 0,
              let sequence = fields["last_sequence"].flatMap({ UInt64($0) }) else {
            throw FileError(path: path, operation: "read agent state", reason: "epoch or last_sequence is missing or malformed; restore it from a backup, or remove it to start a new epoch (the hub must then accept the new epoch)")
        }
        var position: SourcePosition? = nil
        if let commit = fields["last_commit"].flatMap({ UInt64($0) }), let ordinal = fields["last_ordinal"].flatMap({ UInt32($0) }) {
            position = SourcePosition(commit: commit, ordinal: ordinal)
        }
        return AgentState(epoch: epoch, lastSequence: sequence, lastPosition: position, tables: tables,
                          legacySnapshotComplete: tables.isEmpty && fields["snapshot_complete"] == "1")
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
        // snapshot_complete stays for readers of older versions.
        var text = "epoch=\(epoch)\nlast_sequence=\(lastSequence)\nsnapshot_complete=\(snapshotComplete ? 1 : 0)\n"
        if let lastPosition { text += "last_commit=\(lastPosition.commit)\nlast_ordinal=\(lastPosition.ordinal)\n" }
        for resource in tables.keys.sorted() { text += TableCopy.keyPrefix + resource + "=" + tables[resource]!.stateText + "\n" }
        try DurableFile.write(Array(text.utf8), to: Self.fileName, in: directory, crashPrefix: "state")
    }
}
