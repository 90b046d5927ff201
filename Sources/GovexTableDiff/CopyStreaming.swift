import Foundation
import GovexDiff
import Synchronization
import GovexPostgres
import GovexWire

/// One side's `COPY … TO STDOUT` rows, handed from the connection's thread to the diff's
/// thread in chunks through a bounded queue: the two sides stream in parallel, and memory
/// stays at a few chunks however big the tables are.
final class ChunkQueue: @unchecked Sendable, IteratorProtocol {
    // Guarded by `condition`.
    private var chunks: [CopyChunk] = []
    private var finished = false
    private var failure: (any Error)?
    private var cancelled = false
    private let condition = NSCondition()
    private let capacity = 8

    func push(_ chunk: CopyChunk) {
        condition.lock()
        defer { condition.unlock() }
        while chunks.count >= capacity && !cancelled { condition.wait() }
        if !cancelled { chunks.append(chunk) }
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

    func next() -> CopyChunk? {
        condition.lock()
        defer { condition.unlock() }
        while chunks.isEmpty && !finished { condition.wait() }
        guard !chunks.isEmpty else { return nil }
        condition.broadcast()
        return chunks.removeFirst()
    }
}

/// Gathers one side's `COPY` rows into chunks for its queue; it reads nothing in them, so
/// the connection's thread does little more than libpq's own work.
final class CopyChunker: @unchecked Sendable {
    let queue: ChunkQueue
    let counters: DiffCounters
    private static let chunkBytes = 256 << 10
    // Only the connection's thread touches these.
    private var pending = CopyChunk(capacity: chunkBytes + 4096)
    private var pendingBytes = 0
    /// Rows read (read after the stream finished).
    private(set) var rows = 0

    init(queue: ChunkQueue, counters: DiffCounters) {
        self.queue = queue
        self.counters = counters
    }

    func consume(_ row: UnsafeRawBufferPointer) {
        pending.append(row)
        pendingBytes += row.count
        if pending.bytes.count >= Self.chunkBytes { flush() }
    }

    func flush() {
        guard pending.count > 0 else { return }
        counters.add(fetched: pending.count, bytes: pendingBytes)
        rows += pending.count
        pendingBytes = 0
        queue.push(pending)
        pending = CopyChunk(capacity: Self.chunkBytes + 4096)
    }
}

/// A key read from its `COPY` text fields, as the left side's types (so equal text forms
/// give equal keys on both sides, whatever the right side's declared types).
struct CopyKeyParser: Sendable {
    let types: [ValueType]
    let keyCount: Int

    func key(_ fields: UnsafeBufferPointer<UInt8>) throws -> [Value] {
        try CopyText.fields(UnsafeRawBufferPointer(fields), expected: keyCount).enumerated().map { index, field in
            guard let field else { return .null }
            let text = String(decoding: field, as: UTF8.self)
            return (try? Value(postgresText: text, type: types[index])) ?? .other(typeName: "text", text: text)
        }
    }

    /// A row as the hash diff takes it: its key parsed, its compared columns' text kept.
    func diffRow(_ row: UnsafeBufferPointer<UInt8>) throws -> DiffRow {
        let keyEnd = try CopyRowLayout.keyEnd(row, keyCount: keyCount, fieldCount: types.count)
        return DiffRow(key: try key(UnsafeBufferPointer(rebasing: row[..<keyEnd])),
                       copyText: keyEnd < row.endIndex ? Array(row[(keyEnd + 1)...]) : [])
    }
}

/// The rows of a side's chunks as `DiffRow`s, for the hash diff; a row it cannot read ends
/// the sequence and is kept in `failure` (a class: the hash diff iterates a copy).
final class DiffRowsOfChunks: IteratorProtocol {
    let queue: ChunkQueue
    let parser: CopyKeyParser
    private var rows: [DiffRow] = []
    private var index = 0
    private(set) var failure: (any Error)?

    init(queue: ChunkQueue, parser: CopyKeyParser) {
        self.queue = queue
        self.parser = parser
    }

    func next() -> DiffRow? {
        while index >= rows.count {
            guard failure == nil, let chunk = queue.next() else { return nil }
            do {
                rows = try chunk.bytes.withUnsafeBufferPointer { bytes in
                    try (0..<chunk.count).map { try parser.diffRow(UnsafeBufferPointer(rebasing: bytes[chunk.row($0)])) }
                }
                index = 0
            } catch {
                failure = error
                return nil
            }
        }
        index += 1
        return rows[index - 1]
    }
}

/// What the progress display shows.
public final class DiffCounters: Sendable {
    private let counts = Mutex((rowsHashed: 0, rowsFetched: 0, bytesMoved: 0, segmentsCompared: 0, differences: 0))

    public init() {}

    func add(hashed: Int = 0, fetched: Int = 0, bytes: Int = 0, segments: Int = 0, differences: Int = 0) {
        counts.withLock { counts in
            counts.rowsHashed += hashed
            counts.rowsFetched += fetched
            counts.bytesMoved += bytes
            counts.segmentsCompared += segments
            counts.differences += differences
        }
    }

    public var snapshot: (rowsHashed: Int, rowsFetched: Int, bytesMoved: Int, segmentsCompared: Int, differences: Int) { counts.withLock { $0 } }
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
