#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GovexWire

/// Rows of `COPY … TO STDOUT` text, one after another in one buffer: how a side's rows
/// travel from its connection to the diff. One allocation per chunk, not per row (per-row
/// arrays cost more than the comparison itself).
public struct CopyChunk: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// Where each row begins, and after the last one where it ends.
    private var starts: [Int] = [0]

    public init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    public var count: Int { starts.count - 1 }

    /// Appends one row (without its line feed).
    public mutating func append(_ row: UnsafeRawBufferPointer) {
        var row = row
        if row.last == 0x0A { row = UnsafeRawBufferPointer(rebasing: row.dropLast()) }
        bytes.append(contentsOf: row)
        starts.append(bytes.count)
    }

    public func row(_ index: Int) -> Range<Int> { starts[index]..<starts[index + 1] }
}

/// Where a row's key fields end: after the `keyCount`th field (the tab that ends it is not
/// part of the key). Throws when the row has fewer fields.
public enum CopyRowLayout {
    public static func keyEnd(_ row: UnsafeBufferPointer<UInt8>, keyCount: Int, fieldCount: Int) throws(CopyRowError) -> Int {
        var index = row.startIndex, tabs = 0
        while index < row.endIndex {
            if row[index] == 0x09 {
                tabs += 1
                if tabs == keyCount { return index }
            }
            index += 1
        }
        guard keyCount == fieldCount, tabs == keyCount - 1 else { throw CopyRowError(row: String(decoding: row, as: UTF8.self)) }
        return index
    }

    /// The indexes of the tab-separated fields that differ between two rows' compared parts.
    public static func changedFields<A: Collection<UInt8>, B: Collection<UInt8>>(_ left: A, _ right: B) -> [Int] {
        let l = left.split(separator: 0x09, omittingEmptySubsequences: false)
        let r = right.split(separator: 0x09, omittingEmptySubsequences: false)
        return (0..<max(l.count, r.count)).filter { $0 >= l.count || $0 >= r.count || !l[$0].elementsEqual(r[$0]) }
    }
}

public struct CopyRowError: Error, CustomStringConvertible {
    public let row: String
    public var description: String { "a COPY row has fewer fields than the columns asked for: \(row.prefix(200))" }
}

/// The merge walk over `COPY` text, both sides in key order: rows whose bytes are equal are
/// equal (same key text, same compared text) and cost one `memcmp`; only rows that differ
/// have their keys parsed (by `parseKey`, from the key fields' text) to decide which side
/// is behind. With few differences that is a few rows in a hundred, which is what makes
/// streaming two tables cost about what copying them does.
public struct CopyMergeDiff {
    public typealias KeyParser = (UnsafeBufferPointer<UInt8>) throws -> [Value]

    let keyCount: Int
    let fieldCount: Int
    let parseKey: KeyParser

    public init(keyCount: Int, fieldCount: Int, parseKey: @escaping KeyParser) {
        self.keyCount = keyCount
        self.fieldCount = fieldCount
        self.parseKey = parseKey
    }

    public func run<L: IteratorProtocol<CopyChunk>, R: IteratorProtocol<CopyChunk>>(
        left: L, right: R, emit: (Difference) throws -> Void
    ) throws {
        var l = CopySide(left, walk: self), r = CopySide(right, walk: self)
        try MergeDiff().run(left: &l, right: &r, emit: emit)
    }

    /// One side's position: its chunk, its row, and that row's key once parsed.
    struct CopySide: MergeSide {
        var source: any IteratorProtocol<CopyChunk>
        let walk: CopyMergeDiff
        var chunk = CopyChunk()
        var index = 0
        var parsedKey: [Value]?

        init(_ source: any IteratorProtocol<CopyChunk>, walk: CopyMergeDiff) {
            self.source = source
            self.walk = walk
            moveToRow()
        }

        var atEnd: Bool { index >= chunk.count }

        mutating func advance() {
            parsedKey = nil
            index += 1
            moveToRow()
        }

        /// On to the next chunk with a row, if the current one has none left.
        private mutating func moveToRow() {
            while index >= chunk.count {
                guard let next = source.next() else { return }
                chunk = next
                index = 0
            }
        }

        func withRow<T>(_ body: (UnsafeBufferPointer<UInt8>) throws -> T) rethrows -> T {
            let range = chunk.row(index)
            return try chunk.bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[range])) }
        }

        func keyEnd(_ row: UnsafeBufferPointer<UInt8>) throws -> Int {
            try CopyRowLayout.keyEnd(row, keyCount: walk.keyCount, fieldCount: walk.fieldCount)
        }

        mutating func key() throws -> [Value] {
            if let parsedKey { return parsedKey }
            let parsed = try withRow { row in try walk.parseKey(UnsafeBufferPointer(rebasing: row[..<keyEnd(row)])) }
            parsedKey = parsed
            return parsed
        }

        func sameRow(as other: CopySide) -> Bool {
            withRow { a in other.withRow { b in a.count == b.count && memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 } }
        }

        /// Equal keys in different text (the right side's type prints them otherwise) with
        /// equal values give none.
        func changedColumns(from other: CopySide) throws -> [Int] {
            try withRow { a in
                try other.withRow { b in
                    let (aEnd, bEnd) = (try keyEnd(a), try keyEnd(b))
                    return CopyRowLayout.changedFields(a[min(aEnd + 1, a.endIndex)...], b[min(bEnd + 1, b.endIndex)...])
                }
            }
        }
    }
}
