import Foundation
import GovexWire

/// The diff of two row sequences in any order: the left side is held in a hash table by
/// key; right rows probe it. Beyond `budget` bytes the left side no longer fits: both sides
/// are then split by key hash into partition files under `directory` (a Grace hash join),
/// and each partition pair is diffed the same way — again split, with another seed, if it
/// is still too big. Memory stays near the budget whatever the table sizes.
public struct HashDiff {
    public var budget: Int
    public var directory: String
    public var partitions: Int
    /// Bytes written to partition files (0 when everything fit).
    public private(set) var spilledBytes = 0

    public init(budget: Int = 256 << 20, directory: String = NSTemporaryDirectory(), partitions: Int = 16) {
        self.budget = max(budget, 1024)
        self.directory = directory
        self.partitions = max(partitions, 2)
    }

    /// Approximate bytes a held row takes: its values' encoded sizes and the table's overhead.
    static func footprint(_ row: DiffRow) -> Int {
        Value.canonicalEncoding(row.key).count + Value.canonicalEncoding(row.values).count + row.text.count + 160
    }

    public mutating func run<L: Sequence<DiffRow>, R: Sequence<DiffRow>>(left: L, right: R, emit: (Difference) throws -> Void) throws {
        try run(left: left, right: right, level: 0, emit: emit)
    }

    private mutating func run<L: Sequence<DiffRow>, R: Sequence<DiffRow>>(left: L, right: R, level: Int,
                                                                        emit: (Difference) throws -> Void) throws {
        var held: [[Value]: DiffRow] = [:]
        var used = 0
        var leftRows = left.makeIterator()
        var overflow: DiffRow?
        while let row = leftRows.next() {
            used += Self.footprint(row)
            if used > budget && level < 6 {
                overflow = row
                break
            }
            held[row.key] = row
        }
        guard let overflow else {
            for row in right {
                if let match = held.removeValue(forKey: row.key) {
                    if let difference = Difference.compare(match, row) { try emit(difference) }
                } else {
                    try emit(Difference(key: row.key, kind: .onlyRight))
                }
            }
            for key in held.keys.sorted(by: { KeyOrder.compare($0, $1) < 0 }) { try emit(Difference(key: key, kind: .onlyLeft)) }
            return
        }
        // Too big: everything goes to partition files, then each pair is diffed on its own.
        let runDirectory = directory + "/govex-diff-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: runDirectory) }
        var leftFiles = try SpillFiles(directory: runDirectory, side: "left", count: partitions, seed: UInt64(level + 1))
        var rightFiles = try SpillFiles(directory: runDirectory, side: "right", count: partitions, seed: UInt64(level + 1))
        for row in held.values { try leftFiles.write(row) }
        held = [:]
        try leftFiles.write(overflow)
        while let row = leftRows.next() { try leftFiles.write(row) }
        for row in right { try rightFiles.write(row) }
        try leftFiles.close()
        try rightFiles.close()
        spilledBytes += leftFiles.bytes + rightFiles.bytes
        for partition in 0..<partitions {
            try run(left: try SpillFiles.rows(leftFiles.paths[partition]), right: try SpillFiles.rows(rightFiles.paths[partition]),
                    level: level + 1, emit: emit)
        }
    }
}

/// One side's partition files: rows as `u32 length, u32 key count, u32 value count (or
/// 0xFFFFFFFF for `COPY` text), canonical key, canonical values or the text`.
struct SpillFiles {
    let paths: [String]
    private var handles: [FileHandle]
    private var buffers: [[UInt8]]
    let seed: UInt64
    private(set) var bytes = 0

    init(directory: String, side: String, count: Int, seed: UInt64) throws {
        paths = (0..<count).map { "\(directory)/\(side)-\($0)" }
        for path in paths {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw BatchError.invalidInput("cannot create the diff's spill file \(path): is \(directory) writable, with free space?")
            }
        }
        handles = try paths.map { try FileHandle(forWritingTo: URL(fileURLWithPath: $0)) }
        buffers = Array(repeating: [], count: count)
        self.seed = seed
    }

    mutating func write(_ row: DiffRow) throws {
        let key = Value.canonicalEncoding(row.key), values = row.text.isEmpty ? Value.canonicalEncoding(row.values) : row.text
        let partition = Int(key.withUnsafeBytes { RowHash.hash($0, seed: seed) }.low % UInt64(paths.count))
        var record: [UInt8] = []
        record.reserveCapacity(12 + key.count + values.count)
        for field in [UInt32(8 + key.count + values.count), UInt32(row.key.count), row.text.isEmpty ? UInt32(row.values.count) : UInt32.max] {
            withUnsafeBytes(of: field.bigEndian) { record.append(contentsOf: $0) }
        }
        record += key
        record += values
        buffers[partition] += record
        bytes += record.count
        if buffers[partition].count >= 1 << 20 { try flush(partition) }
    }

    private mutating func flush(_ partition: Int) throws {
        try handles[partition].write(contentsOf: buffers[partition])
        buffers[partition].removeAll(keepingCapacity: true)
    }

    mutating func close() throws {
        for partition in paths.indices {
            try flush(partition)
            try handles[partition].close()
        }
    }

    /// The rows of one partition file (read whole: a partition is about budget / count).
    static func rows(_ path: String) throws -> [DiffRow] {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        try? FileManager.default.removeItem(atPath: path)
        return try data.withUnsafeBytes { buffer in
            var reader = ByteReader(buffer)
            var rows: [DiffRow] = []
            while !reader.isAtEnd {
                let length = Int(try reader.read(UInt32.self))
                let keyCount = Int(try reader.read(UInt32.self)), valueCount = Int(try reader.read(UInt32.self))
                let start = reader.offset
                let key = try reader.readCanonicalValues(count: keyCount)
                if valueCount == Int(UInt32.max) {
                    let textLength = length - 8 - (reader.offset - start)
                    guard textLength >= 0 else {
                        throw BatchError.corruptBody("diff spill file \(path): a row's length does not match")
                    }
                    rows.append(DiffRow(key: key, copyText: try reader.readArray(textLength)))
                    continue
                }
                let values = try reader.readCanonicalValues(count: valueCount)
                guard reader.offset - start == length - 8 else { throw BatchError.corruptBody("diff spill file \(path): a row's length does not match") }
                rows.append(DiffRow(key: key, values: values))
            }
            return rows
        }
    }
}
