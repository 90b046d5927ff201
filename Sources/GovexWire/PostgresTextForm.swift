/// The column types the value model distinguishes; anything else is `.other(name)`.
public enum ValueType: Sendable, Hashable {
    case bool, int2, int4, int8, float4, float8, numeric, text, bytea
    case date, time, timestamp, timestamptz, uuid, json, jsonb
    case other(String)
}

/// Conversion between values and PostgreSQL's text forms, as a session pinned to
/// `DateStyle=ISO`, `TimeZone=UTC`, `bytea_output=hex` and `extra_float_digits=3`
/// writes them (the pgoutput stream and libpq's text results use these forms).
extension Value {
    public init(postgresText text: String, type: ValueType) throws(ValueError) {
        switch type {
        case .bool:
            switch text {
            case "t", "true": self = .bool(true)
            case "f", "false": self = .bool(false)
            default: throw .invalidText(type: "bool", text: text, expected: "t or f")
            }
        case .int2:
            guard let v = Int16(text) else { throw .invalidText(type: "int2", text: text, expected: "an integer from -32768 to 32767") }
            self = .int2(v)
        case .int4:
            guard let v = Int32(text) else { throw .invalidText(type: "int4", text: text, expected: "a 32-bit integer") }
            self = .int4(v)
        case .int8:
            guard let v = Int64(text) else { throw .invalidText(type: "int8", text: text, expected: "a 64-bit integer") }
            self = .int8(v)
        case .float4:
            guard let v = Float(Self.swiftFloatSpelling(text)) else { throw .invalidText(type: "float4", text: text, expected: "a real number, NaN, Infinity or -Infinity") }
            self = .float4(v)
        case .float8:
            guard let v = Double(Self.swiftFloatSpelling(text)) else { throw .invalidText(type: "float8", text: text, expected: "a real number, NaN, Infinity or -Infinity") }
            self = .float8(v)
        case .numeric:
            self = .numeric(try Numeric(text))
        case .text:
            self = .text(text)
        case .bytea:
            self = .bytea(try Self.parseByteaHex(text))
        case .date:
            self = .date(try PostgresDateTime.parseDate(text))
        case .time:
            self = .time(try PostgresDateTime.parseTime(text))
        case .timestamp:
            self = .timestamp(try PostgresDateTime.parseTimestamp(text, withZone: false))
        case .timestamptz:
            self = .timestamptz(try PostgresDateTime.parseTimestamp(text, withZone: true))
        case .uuid:
            self = .uuid(try Self.parseUUID(text))
        case .json:
            self = .json(text)
        case .jsonb:
            self = .jsonb(text)
        case .other(let name):
            self = .other(typeName: name, text: text)
        }
    }

    /// The text form PostgreSQL accepts as input for this value, or nil for NULL
    /// and for the unchanged marker (which has no text form: it means "keep").
    public var postgresText: String? {
        switch self {
        case .null, .unchanged: return nil
        case .bool(let v): return v ? "t" : "f"
        case .int2(let v): return String(v)
        case .int4(let v): return String(v)
        case .int8(let v): return String(v)
        case .float4(let v): return Self.floatText(v.isNaN, v.isInfinite, v.sign == .minus, v.description)
        case .float8(let v): return Self.floatText(v.isNaN, v.isInfinite, v.sign == .minus, v.description)
        case .numeric(let v): return v.text
        case .text(let v), .json(let v), .jsonb(let v): return v
        case .other(_, let v): return v
        case .bytea(let v): return "\\x" + Hex.encode(v)
        case .date(let v): return PostgresDateTime.formatDate(v)
        case .time(let v): return PostgresDateTime.formatTime(v)
        case .timestamp(let v): return PostgresDateTime.formatTimestamp(v, withZone: false)
        case .timestamptz(let v): return PostgresDateTime.formatTimestamp(v, withZone: true)
        case .uuid(let v): return Self.formatUUID(v)
        }
    }

    private static func floatText(_ isNaN: Bool, _ isInfinite: Bool, _ isNegative: Bool, _ shortest: String) -> String {
        if isNaN { return "NaN" }
        if isInfinite { return isNegative ? "-Infinity" : "Infinity" }
        // Swift's description is the shortest string that reads back to the same bits.
        return shortest
    }

    private static func swiftFloatSpelling(_ text: String) -> String {
        switch text {
        case "Infinity", "infinity", "inf": return "inf"
        case "-Infinity", "-infinity", "-inf": return "-inf"
        case "NaN", "nan": return "nan"
        default: return text
        }
    }

    static func parseByteaHex(_ text: String) throws(ValueError) -> [UInt8] {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"),
              let bytes = Hex.decode(utf8[2...]) else {
            throw .invalidText(type: "bytea", text: text, expected: "hex form \\x0123… (set bytea_output = hex)")
        }
        return bytes
    }

    static func parseUUID(_ text: String) throws(ValueError) -> UUIDBytes {
        let digits = text.utf8.filter { $0 != UInt8(ascii: "-") }
        let dashes = text.utf8.count - digits.count
        guard digits.count == 32, dashes == 0 || dashes == 4,
              let bytes = Hex.decode(digits), let uuid = UUIDBytes(bytes: bytes) else {
            throw .invalidText(type: "uuid", text: text, expected: "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
        }
        return uuid
    }

    static func formatUUID(_ uuid: UUIDBytes) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(16)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: uuid.high >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: uuid.low >> UInt64(shift))) }
        let hex = Array(Hex.encode(bytes).utf8)
        var out = [UInt8]()
        out.reserveCapacity(36)
        for (index, digit) in hex.enumerated() {
            if index == 8 || index == 12 || index == 16 || index == 20 { out.append(UInt8(ascii: "-")) }
            out.append(digit)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Lower-case hexadecimal, the form bytea, uuid and digests are shown in.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? { decode(Array(text.utf8)) }

    public static func decode(_ hex: some Collection<UInt8>) -> [UInt8]? {
        guard hex.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(hex.count / 2)
        var high: UInt8? = nil
        for character in hex {
            guard let nibble = nibble(character) else { return nil }
            if let h = high {
                out.append(h << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return nil
        }
    }
}
