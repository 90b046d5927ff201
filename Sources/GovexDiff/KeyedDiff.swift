import GovexWire

/// One row as the diff sees it: its key and the compared columns, with the hash of those
/// columns. The columns are either values (hashed over their canonical encoding) or, for
/// rows read from PostgreSQL, their `COPY` text form (tab-separated, escaped), hashed as is:
/// under the pinned session settings that text is canonical too, and it spares parsing
/// every value of every row just to hash it.
public struct DiffRow: Sendable, Equatable {
    public var key: [Value]
    public var values: [Value]
    /// The compared columns' `COPY` text, when the row came from `COPY` (else empty).
    public var text: [UInt8]
    public var hash: Hash128

    public init(key: [Value], values: [Value]) {
        self.key = key
        self.values = values
        self.text = []
        self.hash = RowHash.hash(values)
    }

    /// A row read from `COPY … TO STDOUT` text: `text` holds its compared columns.
    public init(key: [Value], copyText text: [UInt8]) {
        self.key = key
        self.values = []
        self.text = text
        self.hash = text.withUnsafeBytes { RowHash.hash($0, seed: 0x636f_7079) }
    }
}

/// One difference between the two sides.
public struct Difference: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case onlyLeft = "only_left"
        case onlyRight = "only_right"
        case changed
    }

    public var key: [Value]
    public var kind: Kind
    /// For `changed`: the indexes of the compared columns that differ.
    public var columns: [Int]

    public init(key: [Value], kind: Kind, columns: [Int] = []) {
        self.key = key
        self.kind = kind
        self.columns = columns
    }

    /// The compared columns whose values differ (by canonical encoding: type and value).
    static func changedColumns(_ left: [Value], _ right: [Value]) -> [Int] {
        (0..<max(left.count, right.count)).filter { index in
            index >= left.count || index >= right.count || !sameValue(left[index], right[index])
        }
    }

    static func sameValue(_ left: Value, _ right: Value) -> Bool {
        left == right || Value.canonicalEncoding([left]) == Value.canonicalEncoding([right])
    }

    static func compare(_ left: DiffRow, _ right: DiffRow) -> Difference? {
        guard left.hash != right.hash else { return nil }
        if !left.text.isEmpty || !right.text.isEmpty {
            return Difference(key: left.key, kind: .changed, columns: CopyRowLayout.changedFields(left.text, right.text))
        }
        return Difference(key: left.key, kind: .changed, columns: changedColumns(left.values, right.values))
    }
}

/// One side of a merge walk: its rows in key order, one current row at a time.
public protocol MergeSide {
    /// No row is left.
    var atEnd: Bool { get }
    /// The current row's key (a side may parse it only when asked).
    mutating func key() throws -> [Value]
    mutating func advance()
    /// Whether the two current rows are the same without looking at their keys: a shortcut,
    /// false when a side cannot tell.
    func sameRow(as other: Self) -> Bool
    /// The compared columns that differ between the two current rows (of equal keys).
    func changedColumns(from other: Self) throws -> [Int]
}

/// The merge walk: both sides in key order (`KeyOrder`), one pass, memory for one row of
/// each side. Keys must be unique on each side (a primary key or unique index).
public struct MergeDiff {
    public init() {}

    public func run<Side: MergeSide>(left: inout Side, right: inout Side, emit: (Difference) throws -> Void) throws {
        while true {
            switch (left.atEnd, right.atEnd) {
            case (true, true):
                return
            case (false, true):
                try emit(Difference(key: left.key(), kind: .onlyLeft))
                left.advance()
            case (true, false):
                try emit(Difference(key: right.key(), kind: .onlyRight))
                right.advance()
            case (false, false):
                if left.sameRow(as: right) {
                    left.advance()
                    right.advance()
                    continue
                }
                let order = KeyOrder.compare(try left.key(), try right.key())
                if order < 0 {
                    try emit(Difference(key: left.key(), kind: .onlyLeft))
                    left.advance()
                } else if order > 0 {
                    try emit(Difference(key: right.key(), kind: .onlyRight))
                    right.advance()
                } else {
                    let columns = try left.changedColumns(from: right)
                    if !columns.isEmpty { try emit(Difference(key: left.key(), kind: .changed, columns: columns)) }
                    left.advance()
                    right.advance()
                }
            }
        }
    }

    /// Both sides held in arrays (already in key order).
    public static func differences(left: [DiffRow], right: [DiffRow]) -> [Difference] {
        var found: [Difference] = []
        var l = DiffRowSide(left.makeIterator()), r = DiffRowSide(right.makeIterator())
        try? MergeDiff().run(left: &l, right: &r) { found.append($0) }
        return found
    }
}

/// Rows already read into `DiffRow`s: compared by their hashes.
struct DiffRowSide: MergeSide {
    var rows: any IteratorProtocol<DiffRow>
    var current: DiffRow?

    init(_ rows: any IteratorProtocol<DiffRow>) {
        self.rows = rows
        current = self.rows.next()
    }

    var atEnd: Bool { current == nil }
    func key() -> [Value] { current?.key ?? [] }
    mutating func advance() { current = rows.next() }
    func sameRow(as other: DiffRowSide) -> Bool { false }

    func changedColumns(from other: DiffRowSide) -> [Int] {
        guard let row = current, let otherRow = other.current else { return [] }
        return Difference.compare(row, otherRow)?.columns ?? []
    }
}
