#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GovexWire

/// The agent's outbox: sealed batches on disk, durable before their changes are
/// confirmed to PostgreSQL, deleted only once the hub has acknowledged them.
///
/// Files are `spool/<20-digit sequence>.gvxb`, written with `DurableFile`; a
/// `.tmp-` file left by a crash is an incomplete write of a batch whose changes
/// were never confirmed, and is removed at open.
public final class Spool {
    public struct Limits: Sendable, Equatable {
        public var maxBatches: Int
        public var maxBytes: Int

        public init(maxBatches: Int = 100_000, maxBytes: Int = 10 << 30) {
            self.maxBatches = maxBatches
            self.maxBytes = maxBytes
        }
    }

    public struct Entry: Sendable, Equatable {
        public let sequence: UInt64
        public let bytes: Int
        /// When the batch was written (seconds since 1970), for the spool-age gauge.
        public let writtenAt: Int
    }

    /// What waits in a spool, as the gauges and `govex status` show it: from a spool's
    /// entries, or from a directory listing by another process (the agent holds the lock).
    public struct Figures: Sendable, Codable, Equatable {
        public var batches: Int
        public var bytes: Int
        public var oldestAgeSeconds: Int
        /// Full: the agent must stop reading the slot (never drop a batch) until the hub catches up.
        public var full: Bool

        public init(entries: [Entry], limits: Limits, now: Int = time(nil)) {
            batches = entries.count
            bytes = entries.reduce(0) { $0 + $1.bytes }
            oldestAgeSeconds = entries.first.map { max(0, now - $0.writtenAt) } ?? 0
            full = batches >= limits.maxBatches || bytes >= limits.maxBytes
        }

        public init(batches: Int, bytes: Int, oldestAgeSeconds: Int, full: Bool) {
            self.batches = batches
            self.bytes = bytes
            self.oldestAgeSeconds = oldestAgeSeconds
            self.full = full
        }
    }

    public var figures: Figures { Figures(entries: entries, limits: limits) }

    /// Seconds since the oldest batch still waiting was written; 0 when empty.
    public var oldestAge: Int { figures.oldestAgeSeconds }

    public let directory: String
    public let limits: Limits
    public private(set) var entries: [Entry] = []

    public var totalBytes: Int { figures.bytes }

    public var isFull: Bool { figures.full }

    public var lastSequence: UInt64? { entries.last?.sequence }

    private let lockDescriptor: Int32

    /// Opens the spool for writing. One process at a time: a second agent on the same
    /// data directory is refused instead of racing the first. The lock is waited for up to
    /// `lockWait` first: a child process being spawned holds a copy of the lock's descriptor
    /// until its `exec` closes it, and an agent being replaced may still be exiting.
    public init(directory: String, limits: Limits = Limits(), lockWait: Duration = .seconds(2)) throws(FileError) {
        self.directory = directory
        self.limits = limits
        try DurableFile.makeDirectory(directory)
        let lockPath = directory + "/.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .current("open", lockPath) }
        let deadline = ContinuousClock.now + lockWait
        var locked = flock(fd, LOCK_EX | LOCK_NB) == 0
        while !locked && ContinuousClock.now < deadline {
            usleep(20_000)
            locked = flock(fd, LOCK_EX | LOCK_NB) == 0
        }
        guard locked else {
            close(fd)
            throw FileError(path: directory, operation: "lock the spool", reason: "another govex agent is using it; run one agent per data_dir")
        }
        lockDescriptor = fd
        do {
            try recover()
        } catch {
            close(fd)
            throw error
        }
    }

    deinit {
        close(lockDescriptor)
    }

    /// The batches a spool holds, read without locking or changing anything (for inspection while an agent runs).
    public static func entries(in directory: String) throws(FileError) -> [Entry] {
        try scan(directory).entries
    }

    public static func fileName(_ sequence: UInt64) -> String {
        let digits = String(sequence)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".gvxb"
    }

    public func path(of sequence: UInt64) -> String { directory + "/" + Self.fileName(sequence) }

    /// Durably stores a sealed batch. Sequences must increase by one with no gap.
    public func append(_ file: [UInt8], sequence: UInt64) throws(FileError) {
        if let last = lastSequence, sequence != last + 1 {
            throw FileError(path: path(of: sequence), operation: "spool", reason: "sequence \(sequence) does not follow \(last)")
        }
        try DurableFile.write(file, to: Self.fileName(sequence), in: directory, crashPrefix: "spool")
        entries.append(Entry(sequence: sequence, bytes: file.count, writtenAt: time(nil)))
    }

    public func read(_ sequence: UInt64) throws(FileError) -> [UInt8] {
        try DurableFile.read(path(of: sequence), limit: Int.max)
    }

    /// Removes batches the hub acknowledged, up to and including `sequence`.
    public func acknowledge(through sequence: UInt64) throws(FileError) {
        let done = entries.prefix { $0.sequence <= sequence }
        for entry in done where unlink(path(of: entry.sequence)) != 0 && errno != ENOENT {
            throw .current("remove acknowledged batch", path(of: entry.sequence))
        }
        entries.removeFirst(done.count)
        try DurableFile.syncDirectory(directory)
    }

    private static func scan(_ directory: String) throws(FileError) -> (entries: [Entry], temporary: [String]) {
        guard let handle = opendir(directory) else { throw .current("list", directory) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            names.append(name)
        }
        closedir(handle)
        var found: [Entry] = []
        var temporary: [String] = []
        for name in names {
            if name.hasPrefix(".tmp-") {
                temporary.append(name)
            } else if name.hasSuffix(".gvxb"), let sequence = UInt64(name.dropLast(5)), fileName(sequence) == name {
                var info = stat()
                guard stat(directory + "/" + name, &info) == 0 else { throw .current("stat", directory + "/" + name) }
                found.append(Entry(sequence: sequence, bytes: Int(info.st_size), writtenAt: Int(info.st_mtim.tv_sec)))
            }
        }
        return (found.sorted { $0.sequence < $1.sequence }, temporary)
    }

    private func recover() throws(FileError) {
        let (found, temporary) = try Self.scan(directory)
        // A temporary file is a write that never completed: its changes were never confirmed.
        for name in temporary { unlink(directory + "/" + name) }
        if !temporary.isEmpty { try DurableFile.syncDirectory(directory) }
        entries = found
        for (previous, next) in zip(entries, entries.dropFirst()) where next.sequence != previous.sequence + 1 {
            throw FileError(path: directory, operation: "open spool", reason: "batches \(previous.sequence) and \(next.sequence) leave a gap; a batch file was removed by hand")
        }
    }
}
