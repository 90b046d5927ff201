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

/// The merge walk: both sides in key order (`KeyOrder`), one pass, memory for one row of
/// each side. Keys must be unique on each side (a primary key or unique index).
public struct MergeDiff {
    public init() {}

    public mutating func run<L: IteratorProtocol<DiffRow>, R: IteratorProtocol<DiffRow>>(
        left: inout L, right: inout R, emit: (Difference) throws -> Void
    ) throws {
        var l = left.next(), r = right.next()
        while true {
            switch (l, r) {
            case (nil, nil):
                return
            case let (row?, nil):
                try emit(Difference(key: row.key, kind: .onlyLeft))
                l = left.next()
            case let (nil, row?):
                try emit(Difference(key: row.key, kind: .onlyRight))
                r = right.next()
            case let (a?, b?):
                let order = KeyOrder.compare(a.key, b.key)
                if order < 0 {
                    try emit(Difference(key: a.key, kind: .onlyLeft))
                    l = left.next()
                } else if order > 0 {
                    try emit(Difference(key: b.key, kind: .onlyRight))
                    r = right.next()
                } else {
                    if let difference = Difference.compare(a, b) { try emit(difference) }
                    l = left.next()
                    r = right.next()
                }
            }
        }
    }

    /// Both sides held in arrays (already in key order).
    public static func differences(left: [DiffRow], right: [DiffRow]) -> [Difference] {
        var found: [Difference] = []
        var walk = MergeDiff()
        var l = left.makeIterator(), r = right.makeIterator()
        try? walk.run(left: &l, right: &r) { found.append($0) }
        return found
    }
}
