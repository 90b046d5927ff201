/// One column value as it travels in a batch.
///
/// The model keeps every PostgreSQL value exactly: numeric keeps its text form
/// (and so its scale), floats keep their bit pattern (NaN and -0 included),
/// date/time values keep PostgreSQL's own epoch and infinities, and any type
/// govex does not model is carried as its text form with its type name.
public enum Value: Sendable {
    case null
    /// PostgreSQL did not resend this column (an unchanged TOASTed value).
    /// It means "keep what you have", never NULL.
    case unchanged
    case bool(Bool)
    case int2(Int16)
    case int4(Int32)
    case int8(Int64)
    case float4(Float)
    case float8(Double)
    case numeric(Numeric)
    case text(String)
    case bytea([UInt8])
    /// Days since 2000-01-01; `Int32.max` / `Int32.min` are ±infinity, as in PostgreSQL.
    case date(Int32)
    /// Microseconds since midnight, 0 ... 86_400_000_000 (24:00:00 is valid).
    case time(Int64)
    /// Microseconds since 2000-01-01 00:00:00 (no zone); `Int64.max` / `Int64.min` are ±infinity.
    case timestamp(Int64)
    /// Microseconds since 2000-01-01 00:00:00 UTC; `Int64.max` / `Int64.min` are ±infinity.
    case timestamptz(Int64)
    case uuid(UUIDBytes)
    case json(String)
    case jsonb(String)
    /// The text form of a type govex does not model, with that type's name (`format_type` output).
    case other(typeName: String, text: String)
}

extension Value {
    public static let dateInfinity = Int32.max
    public static let dateMinusInfinity = Int32.min
    public static let timestampInfinity = Int64.max
    public static let timestampMinusInfinity = Int64.min

    /// The type's name as written in batch JSON and in the spec's value table.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .unchanged: return "unchanged"
        case .bool: return "bool"
        case .int2: return "int2"
        case .int4: return "int4"
        case .int8: return "int8"
        case .float4: return "float4"
        case .float8: return "float8"
        case .numeric: return "numeric"
        case .text: return "text"
        case .bytea: return "bytea"
        case .date: return "date"
        case .time: return "time"
        case .timestamp: return "timestamp"
        case .timestamptz: return "timestamptz"
        case .uuid: return "uuid"
        case .json: return "json"
        case .jsonb: return "jsonb"
        case .other: return "other"
        }
    }
}

/// Equality is exact: floats compare by bit pattern so that NaN equals NaN and
/// -0 differs from 0, numerics compare by text so that 1.0 differs from 1.00.
extension Value: Hashable {
    public static func == (lhs: Value, rhs: Value) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null), (.unchanged, .unchanged): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.int2(a), .int2(b)): return a == b
        case let (.int4(a), .int4(b)): return a == b
        case let (.int8(a), .int8(b)): return a == b
        case let (.float4(a), .float4(b)): return a.bitPattern == b.bitPattern
        case let (.float8(a), .float8(b)): return a.bitPattern == b.bitPattern
        case let (.numeric(a), .numeric(b)): return a == b
        case let (.text(a), .text(b)): return a.utf8.elementsEqual(b.utf8)
        case let (.bytea(a), .bytea(b)): return a == b
        case let (.date(a), .date(b)): return a == b
        case let (.time(a), .time(b)): return a == b
        case let (.timestamp(a), .timestamp(b)): return a == b
        case let (.timestamptz(a), .timestamptz(b)): return a == b
        case let (.uuid(a), .uuid(b)): return a == b
        case let (.json(a), .json(b)): return a.utf8.elementsEqual(b.utf8)
        case let (.jsonb(a), .jsonb(b)): return a.utf8.elementsEqual(b.utf8)
        case let (.other(t1, a), .other(t2, b)): return t1 == t2 && a.utf8.elementsEqual(b.utf8)
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(typeName)
        switch self {
        case .null, .unchanged: break
        case .bool(let v): hasher.combine(v)
        case .int2(let v): hasher.combine(v)
        case .int4(let v): hasher.combine(v)
        case .int8(let v): hasher.combine(v)
        case .float4(let v): hasher.combine(v.bitPattern)
        case .float8(let v): hasher.combine(v.bitPattern)
        case .numeric(let v): hasher.combine(v)
        case .text(let v), .json(let v), .jsonb(let v): hasher.combine(Array(v.utf8))
        case .bytea(let v): hasher.combine(v)
        case .date(let v): hasher.combine(v)
        case .time(let v), .timestamp(let v), .timestamptz(let v): hasher.combine(v)
        case .uuid(let v): hasher.combine(v)
        case .other(let t, let v):
            hasher.combine(t)
            hasher.combine(Array(v.utf8))
        }
    }
}

/// An exact decimal kept in PostgreSQL's canonical text form
/// (`-123.4500`, `NaN`, `Infinity`, `-Infinity`), so precision and scale survive.
public struct Numeric: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    /// Accepts PostgreSQL's output form only: an optional minus sign, digits,
    /// optionally a point and more digits; or NaN / Infinity / -Infinity.
    public init(_ text: String) throws(ValueError) {
        guard Numeric.isCanonical(text) else {
            throw ValueError.invalidText(type: "numeric", text: text, expected: "digits with an optional sign and decimal point, NaN, Infinity or -Infinity")
        }
        self.text = text
    }

    /// For text already checked with `isCanonical`.
    init(canonical text: String) {
        self.text = text
    }

    public var description: String { text }

    static func isCanonical(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { isCanonical($0) }
    }

    static func isCanonical(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        if bytes.count <= 9, let first = bytes.first, first == UInt8(ascii: "N") || first == UInt8(ascii: "I") || first == UInt8(ascii: "-") {
            let special = String(decoding: bytes, as: UTF8.self)
            if special == "NaN" || special == "Infinity" || special == "-Infinity" { return true }
        }
        var index = bytes.startIndex
        if index != bytes.endIndex, bytes[index] == UInt8(ascii: "-") { index = bytes.index(after: index) }
        var integerDigits = 0
        while index != bytes.endIndex, bytes[index] >= 48, bytes[index] <= 57 {
            integerDigits += 1
            index = bytes.index(after: index)
        }
        guard integerDigits > 0 else { return false }
        if index == bytes.endIndex { return true }
        guard bytes[index] == UInt8(ascii: ".") else { return false }
        index = bytes.index(after: index)
        var fractionDigits = 0
        while index != bytes.endIndex, bytes[index] >= 48, bytes[index] <= 57 {
            fractionDigits += 1
            index = bytes.index(after: index)
        }
        return fractionDigits > 0 && index == bytes.endIndex
    }
}

/// A UUID's 16 bytes, in network order.
public struct UUIDBytes: Sendable, Hashable {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (offset, byte) in bytes.enumerated() {
            if offset < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.init(high: high, low: low)
    }
}

public enum ValueError: Error, Equatable, CustomStringConvertible {
    case invalidText(type: String, text: String, expected: String)
    case outOfRange(type: String, text: String)

    public var description: String {
        switch self {
        case let .invalidText(type, text, expected):
            return "invalid \(type) value \(Self.quoted(text)): expected \(expected)"
        case let .outOfRange(type, text):
            return "\(type) value \(Self.quoted(text)) is out of range"
        }
    }

    static func quoted(_ text: String) -> String {
        let shown = text.count > 64 ? String(text.prefix(64)) + "…" : text
        return "'\(shown)'"
    }
}
