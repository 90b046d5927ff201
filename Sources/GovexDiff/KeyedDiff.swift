import GovexWire

/// One row as the diff sees it: its key and the compared columns' values, with the hash of
/// those values.
public struct DiffRow: Sendable, Equatable {
    public var key: [Value]
    public var values: [Value]
    public var hash: Hash128

    public init(key: [Value], values: [Value]) {
        self.key = key
        self.values = values
        self.hash = RowHash.hash(values)
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
        return Difference(key: left.key, kind: .changed, columns: changedColumns(left.values, right.values))
    }
}

/// The merge walk: both sides in key order (`KeyOrder`), one pass, memory for one row of
/// each side. Keys must be unique on each side (a primary key or unique index).
public struct MergeDiff {
    public private(set) var rowsLeft = 0
    public private(set) var rowsRight = 0

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
                rowsLeft += 1
                try emit(Difference(key: row.key, kind: .onlyLeft))
                l = left.next()
            case let (nil, row?):
                rowsRight += 1
                try emit(Difference(key: row.key, kind: .onlyRight))
                r = right.next()
            case let (a?, b?):
                let order = KeyOrder.compare(a.key, b.key)
                if order < 0 {
                    rowsLeft += 1
                    try emit(Difference(key: a.key, kind: .onlyLeft))
                    l = left.next()
                } else if order > 0 {
                    rowsRight += 1
                    try emit(Difference(key: b.key, kind: .onlyRight))
                    r = right.next()
                } else {
                    rowsLeft += 1
                    rowsRight += 1
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
