import GovexWire

public struct RowFilterError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { "row filter: \(message)" }
}

extension RowFilter {
    /// SQL's three-valued result for one row: true, false, or nil (unknown, e.g. a NULL compared).
    /// `value` returns a column's value by its source name.
    public func evaluate(_ value: (String) -> Value?) throws(RowFilterError) -> Bool? {
        switch self {
        case let .and(a, b):
            let left = try a.evaluate(value)
            if left == false { return false }
            let right = try b.evaluate(value)
            if right == false { return false }
            return left == true && right == true ? true : nil
        case let .or(a, b):
            let left = try a.evaluate(value)
            if left == true { return true }
            let right = try b.evaluate(value)
            if right == true { return true }
            return left == false && right == false ? false : nil
        case .not(let a):
            return try a.evaluate(value).map { !$0 }
        case let .isNull(operand, negated):
            let isNull = try Self.resolve(operand, value) == nil
            return negated ? !isNull : isNull
        case let .inList(operand, items, negated):
            guard let left = try Self.resolve(operand, value) else { return nil }
            var sawNull = false
            for item in items {
                guard let right = try Self.resolve(.literal(item), value) else {
                    sawNull = true
                    continue
                }
                if try Self.order(left, right) == 0 { return !negated }
            }
            return sawNull ? nil : negated
        case let .compare(a, op, b):
            guard let left = try Self.resolve(a, value), let right = try Self.resolve(b, value) else { return nil }
            let order = try Self.order(left, right)
            switch op {
            case .equal: return order == 0
            case .notEqual: return order != 0
            case .less: return order < 0
            case .lessOrEqual: return order <= 0
            case .greater: return order > 0
            case .greaterOrEqual: return order >= 0
            }
        }
    }

    /// Whether a row passes: only a TRUE filter lets it through.
    public func passes(_ value: (String) -> Value?) throws(RowFilterError) -> Bool {
        try evaluate(value) == true
    }

    /// A comparable side: a column's value or a literal (nil for NULL).
    enum Side {
        case value(Value)
        case literal(Literal)
    }

    private static func resolve(_ operand: Operand, _ value: (String) -> Value?) throws(RowFilterError) -> Side? {
        switch operand {
        case .column(let name):
            guard let found = value(name) else { throw RowFilterError(message: "column \(name) is not in the row") }
            switch found {
            case .null: return nil
            case .unchanged:
                throw RowFilterError(message: "column \(name) was not resent by PostgreSQL (unchanged TOAST value); a filter on it needs REPLICA IDENTITY FULL")
            default: return .value(found)
            }
        case .literal(.null): return nil
        case .literal(let literal): return .literal(literal)
        }
    }

    /// -1, 0 or 1. Text compares byte-wise (as COLLATE "C"); numbers exactly; dates and times by their instants.
    static func order(_ left: Side, _ right: Side) throws(RowFilterError) -> Int {
        switch (left, right) {
        case let (.literal(a), .literal(b)):
            return try order(literal: a, against: b)
        case let (.value(a), .literal(b)):
            return try order(value: a, literal: b)
        case let (.literal(a), .value(b)):
            return -(try order(value: b, literal: a))
        case let (.value(a), .value(b)):
            guard let text = a.postgresText, let type = valueType(of: b) else { throw RowFilterError(message: "cannot compare \(a.typeName) with \(b.typeName)") }
            guard a.typeName == b.typeName else { throw RowFilterError(message: "cannot compare a \(a.typeName) column with a \(b.typeName) column") }
            return -(try order(value: b, literal: numericLike(type) ? .number(text) : .string(text)))
        }
    }

    private static func numericLike(_ type: ValueType) -> Bool {
        [.int2, .int4, .int8, .float4, .float8, .numeric].contains(type)
    }

    private static func valueType(of value: Value) -> ValueType? {
        switch value {
        case .bool: return .bool
        case .int2: return .int2
        case .int4: return .int4
        case .int8: return .int8
        case .float4: return .float4
        case .float8: return .float8
        case .numeric: return .numeric
        case .text: return .text
        case .date: return .date
        case .time: return .time
        case .timestamp: return .timestamp
        case .timestamptz: return .timestamptz
        case .uuid: return .uuid
        case .json, .jsonb, .bytea, .other, .null, .unchanged: return nil
        }
    }

    private static func order(literal a: Literal, against b: Literal) throws(RowFilterError) -> Int {
        switch (a, b) {
        case let (.number(x), .number(y)): return Decimal.compare(x, y)
        case let (.string(x), .string(y)): return compareBytes(x, y)
        case let (.bool(x), .bool(y)): return x == y ? 0 : (x ? 1 : -1)
        default: throw RowFilterError(message: "cannot compare \(a) with \(b)")
        }
    }

    private static func order(value: Value, literal: Literal) throws(RowFilterError) -> Int {
        switch (value, literal) {
        case let (.int2(v), .number(n)): return Decimal.compare(String(v), n)
        case let (.int4(v), .number(n)): return Decimal.compare(String(v), n)
        case let (.int8(v), .number(n)): return Decimal.compare(String(v), n)
        case let (.numeric(v), .number(n)):
            switch v.text {
            case "NaN", "Infinity": return 1      // PostgreSQL sorts NaN and Infinity above every number
            case "-Infinity": return -1
            default: return Decimal.compare(v.text, n)
            }
        case let (.float4(v), .number(n)):
            guard let d = Double(n) else { break }
            return Double(v) < d ? -1 : (Double(v) > d ? 1 : 0)
        case let (.float8(v), .number(n)):
            guard let d = Double(n) else { break }
            return v < d ? -1 : (v > d ? 1 : 0)
        case let (.bool(v), .bool(b)): return v == b ? 0 : (v ? 1 : -1)
        case let (.text(v), .string(s)): return compareBytes(v, s)
        case let (.other(_, v), .string(s)): return compareBytes(v, s)
        case (.date, .string(let s)), (.time, .string(let s)), (.timestamp, .string(let s)), (.timestamptz, .string(let s)), (.uuid, .string(let s)):
            let type = valueType(of: value)!
            let parsed: Value
            do { parsed = try Value(postgresText: s, type: type) } catch {
                throw RowFilterError(message: "'\(s)' is not a \(value.typeName): \(error)")
            }
            return compareInstants(value, parsed)
        default: break
        }
        throw RowFilterError(message: "cannot compare a \(value.typeName) column with \(literal)")
    }

    private static func compareInstants(_ a: Value, _ b: Value) -> Int {
        func key(_ v: Value) -> (Int64, Int64) {
            switch v {
            case .date(let d): return (Int64(d), 0)
            case .time(let t), .timestamp(let t), .timestamptz(let t): return (t, 0)
            case .uuid(let u): return (Int64(bitPattern: u.high ^ (1 << 63)), Int64(bitPattern: u.low ^ (1 << 63)))
            default: return (0, 0)
            }
        }
        let (x, y) = (key(a), key(b))
        return x < y ? -1 : (x > y ? 1 : 0)
    }

    private static func compareBytes(_ a: String, _ b: String) -> Int {
        a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : (a.utf8.elementsEqual(b.utf8) ? 0 : 1)
    }
}

/// Exact comparison of decimal strings (`-?digits(.digits)?`), whatever their length.
enum Decimal {
    static func compare(_ a: String, _ b: String) -> Int {
        let (negA, intA, fracA) = split(a)
        let (negB, intB, fracB) = split(b)
        let zeroA = intA.isEmpty && fracA.isEmpty, zeroB = intB.isEmpty && fracB.isEmpty
        if zeroA && zeroB { return 0 }
        let signA = zeroA ? 0 : (negA ? -1 : 1), signB = zeroB ? 0 : (negB ? -1 : 1)
        if signA != signB { return signA < signB ? -1 : 1 }
        var magnitude: Int
        if intA.count != intB.count {
            magnitude = intA.count < intB.count ? -1 : 1
        } else if intA != intB {
            magnitude = intA.lexicographicallyPrecedes(intB) ? -1 : 1
        } else {
            let width = max(fracA.count, fracB.count)
            let paddedA = fracA + Array(repeating: Character("0"), count: width - fracA.count)
            let paddedB = fracB + Array(repeating: Character("0"), count: width - fracB.count)
            magnitude = paddedA == paddedB ? 0 : (paddedA.lexicographicallyPrecedes(paddedB) ? -1 : 1)
        }
        return signA < 0 ? -magnitude : magnitude
    }

    /// Sign, integer digits without leading zeros, fraction digits without trailing zeros.
    private static func split(_ text: String) -> (Bool, [Character], [Character]) {
        var characters = Array(text)
        let negative = characters.first == "-"
        if negative || characters.first == "+" { characters.removeFirst() }
        let point = characters.firstIndex(of: ".") ?? characters.endIndex
        var integer = Array(characters[..<point])
        var fraction = point < characters.endIndex ? Array(characters[(point + 1)...]) : []
        while integer.first == "0" { integer.removeFirst() }
        while fraction.last == "0" { fraction.removeLast() }
        return (negative, integer, fraction)
    }
}

extension RowFilter {
    /// The filter as a SQL boolean expression over the source table's columns: identifiers
    /// and string literals quoted, numbers as validated digits. Used in snapshot queries.
    public var sql: String {
        switch self {
        case let .and(a, b): return "(\(a.sql) AND \(b.sql))"
        case let .or(a, b): return "(\(a.sql) OR \(b.sql))"
        case .not(let a): return "(NOT \(a.sql))"
        case let .compare(a, op, b): return "(\(Self.sql(a)) \(op.rawValue) \(Self.sql(b)))"
        case let .isNull(a, negated): return "(\(Self.sql(a)) IS \(negated ? "NOT " : "")NULL)"
        case let .inList(a, items, negated):
            return "(\(Self.sql(a)) \(negated ? "NOT " : "")IN (\(items.map { Self.sql(.literal($0)) }.joined(separator: ", "))))"
        }
    }

    private static func sql(_ operand: Operand) -> String {
        switch operand {
        case .column(let name): return SQLQuoting.identifier(name)
        case .literal(.string(let value)): return SQLQuoting.literal(value)
        case .literal(.number(let value)): return value
        case .literal(.bool(let value)): return value ? "TRUE" : "FALSE"
        case .literal(.null): return "NULL"
        }
    }
}
