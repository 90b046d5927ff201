import Foundation
import GovexDiff
import Synchronization
import GovexPostgres
import GovexWire

/// Rows of one side's `COPY … TO STDOUT`, handed from the connection's thread to the diff's
/// thread in chunks through a bounded queue: the two sides stream in parallel, and memory
/// stays at a few chunks however big the tables are.
final class RowStream: @unchecked Sendable, IteratorProtocol {
    // Guarded by `condition`.
    private var chunks: [[DiffRow]] = []
    private var finished = false
    private var failure: (any Error)?
    private var cancelled = false
    private let condition = NSCondition()
    private let capacity = 8

    // Only the consumer's thread touches these.
    private var current: [DiffRow] = []
    private var position = 0

    func push(_ chunk: [DiffRow]) {
        condition.lock()
        defer { condition.unlock() }
        while chunks.count >= capacity && !cancelled { condition.wait() }
        chunks.append(chunk)
        condition.broadcast()
    }

    func finish(_ error: (any Error)?) {
        condition.lock()
        defer { condition.unlock() }
        finished = true
        failure = failure ?? error
        condition.broadcast()
    }

    /// The consumer gave up: the producer's pushes return at once.
    func cancel() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        chunks = []
        condition.broadcast()
    }

    var error: (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }

    func next() -> DiffRow? {
        if position < current.count {
            position += 1
            return current[position - 1]
        }
        condition.lock()
        while chunks.isEmpty && !finished { condition.wait() }
        guard !chunks.isEmpty else {
            condition.unlock()
            return nil
        }
        current = chunks.removeFirst()
        condition.broadcast()
        condition.unlock()
        position = 1
        return current.first
    }
}

/// Turns COPY text rows into diff rows. Keys are parsed as the left side's types (so equal
/// text forms give equal keys on both sides, whatever the right side's declared types).
final class CopyRowParser: @unchecked Sendable {
    let types: [ValueType]
    let keyCount: Int
    let stream: RowStream
    let counters: DiffCounters
    // Only the connection's thread touches these.
    private var pending: [DiffRow] = []
    private var pendingBytes = 0
    /// Rows read (read after the stream finished).
    private(set) var rows = 0

    init(types: [ValueType], keyCount: Int, stream: RowStream, counters: DiffCounters) {
        self.types = types
        self.keyCount = keyCount
        self.stream = stream
        self.counters = counters
        pending.reserveCapacity(1024)
    }

    /// One `COPY` text row: the key fields parsed into values (the merge walk orders by
    /// them, the report shows them), the compared fields kept as their text.
    func consume(_ line: UnsafeRawBufferPointer) throws {
        var bytes = line.bindMemory(to: UInt8.self)
        if bytes.last == 0x0A { bytes = UnsafeBufferPointer(rebasing: bytes.dropLast()) }
        var keyEnd = bytes.startIndex, tabs = 0
        while keyEnd < bytes.endIndex {
            if bytes[keyEnd] == 0x09 {
                tabs += 1
                if tabs == keyCount { break }
            }
            keyEnd += 1
        }
        guard tabs == keyCount || (keyCount == types.count && keyEnd == bytes.endIndex) else {
            throw CopyText.Failure.badEscape(row: String(decoding: bytes, as: UTF8.self))
        }
        let fields = try CopyText.fields(UnsafeRawBufferPointer(rebasing: line[..<keyEnd]), expected: keyCount)
        var key: [Value] = []
        key.reserveCapacity(keyCount)
        for (field, type) in zip(fields, types) {
            guard let field else {
                key.append(.null)
                continue
            }
            let text = String(decoding: field, as: UTF8.self)
            key.append((try? Value(postgresText: text, type: type)) ?? .other(typeName: "text", text: text))
        }
        let text = keyEnd < bytes.endIndex ? Array(UnsafeBufferPointer(rebasing: bytes[(keyEnd + 1)...])) : []
        pending.append(DiffRow(key: key, copyText: text))
        pendingBytes += line.count
        if pending.count >= 1024 { flush() }
    }

    func flush() {
        guard !pending.isEmpty else { return }
        counters.add(rows: pending.count, bytes: pendingBytes)
        rows += pending.count
        pendingBytes = 0
        stream.push(pending)
        pending = []
        pending.reserveCapacity(1024)
    }
}

/// What the progress display shows.
public final class DiffCounters: Sendable {
    private let counts = Mutex((rowsScanned: 0, bytesMoved: 0, segmentsCompared: 0, differences: 0))

    public init() {}

    func add(rows: Int = 0, bytes: Int = 0, segments: Int = 0, differences: Int = 0) {
        counts.withLock { counts in
            counts.rowsScanned += rows
            counts.bytesMoved += bytes
            counts.segmentsCompared += segments
            counts.differences += differences
        }
    }

    public var snapshot: (rowsScanned: Int, bytesMoved: Int, segmentsCompared: Int, differences: Int) { counts.withLock { $0 } }
}

/// Runs blocking work on a thread of its own, off Swift's cooperative pool (which has as
/// many threads as cores: a blocked one there could stall the COPY it waits for).
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
