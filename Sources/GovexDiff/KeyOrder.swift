import GovexWire

/// The order PostgreSQL returns keys in for `ORDER BY k1, k2 …` with text keys under
/// `COLLATE "C"`: what the merge walk relies on. Only types whose order the client can
/// reproduce exactly take part; for the others (numeric, floats, json, other types) the
/// diff hashes instead of walking (`KeyOrder.supports`).
public enum KeyOrder {
    public static func supports(_ type: ValueType) -> Bool {
        switch type {
        case .bool, .int2, .int4, .int8, .text, .bytea, .date, .time, .timestamp, .timestamptz, .uuid: true
        case .float4, .float8, .numeric, .json, .jsonb, .other: false
        }
    }

    /// Compares two keys column by column; NULL sorts last, as PostgreSQL's default ascending order does.
    public static func compare(_ left: [Value], _ right: [Value]) -> Int {
        for index in 0..<min(left.count, right.count) {
            let order = compare(left[index], right[index])
            if order != 0 { return order }
        }
        return left.count - right.count
    }

    public static func compare(_ left: Value, _ right: Value) -> Int {
        switch (left, right) {
        case (.null, .null): return 0
        case (.null, _): return 1
        case (_, .null): return -1
        case let (.bool(a), .bool(b)): return a == b ? 0 : (a ? 1 : -1)
        case let (.int2(a), .int2(b)): return sign(a, b)
        case let (.int4(a), .int4(b)): return sign(a, b)
        case let (.int8(a), .int8(b)): return sign(a, b)
        case let (.date(a), .date(b)): return sign(a, b)
        case let (.time(a), .time(b)), let (.timestamp(a), .timestamp(b)), let (.timestamptz(a), .timestamptz(b)): return sign(a, b)
        case let (.uuid(a), .uuid(b)): return a.high != b.high ? sign(a.high, b.high) : sign(a.low, b.low)
        case let (.text(a), .text(b)): return bytes(a.utf8, b.utf8)
        case let (.bytea(a), .bytea(b)): return bytes(a, b)
        default:
            // Mixed or unordered types: the canonical encodings at least give a total order.
            return bytes(Value.canonicalEncoding([left]), Value.canonicalEncoding([right]))
        }
    }

    @inline(__always) static func sign<T: Comparable>(_ a: T, _ b: T) -> Int { a < b ? -1 : (a == b ? 0 : 1) }

    /// Byte-wise, shorter first on a common prefix: `COLLATE "C"` for UTF-8 text, and bytea's order.
    static func bytes<A: Sequence<UInt8>, B: Sequence<UInt8>>(_ a: A, _ b: B) -> Int {
        var left = a.makeIterator(), right = b.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil): return 0
            case (nil, _): return -1
            case (_, nil): return 1
            case let (x?, y?): if x != y { return x < y ? -1 : 1 }
            }
        }
    }
}
