/// PostgreSQL's COPY text format: one row per line, fields separated by tabs,
/// `\N` for NULL, backslash escapes for the special characters. Pure.
public enum CopyText {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case badEscape(row: String)
        case fieldCount(expected: Int, found: Int)

        public var description: String {
            switch self {
            case .badEscape(let row): return "COPY row with an invalid backslash escape: \(row.prefix(80))"
            case let .fieldCount(expected, found): return "COPY row has \(found) fields, expected \(expected)"
            }
        }
    }

    /// Splits one row (with or without its newline) into raw field bytes, nil for NULL.
    public static func fields(_ row: UnsafeRawBufferPointer, expected: Int) throws(Failure) -> [[UInt8]?] {
        var bytes = row.bindMemory(to: UInt8.self)
        if let last = bytes.last, last == UInt8(ascii: "\n") { bytes = UnsafeBufferPointer(rebasing: bytes.dropLast()) }
        var fields: [[UInt8]?] = []
        fields.reserveCapacity(expected)
        var current: [UInt8] = []
        var index = bytes.startIndex
        var isNull = false
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\t") {
                fields.append(isNull ? nil : current)
                current.removeAll(keepingCapacity: true)
                isNull = false
                index += 1
                continue
            }
            guard byte == UInt8(ascii: "\\") else {
                current.append(byte)
                index += 1
                continue
            }
            index += 1
            guard index < bytes.endIndex else { throw .badEscape(row: String(decoding: bytes, as: UTF8.self)) }
            let escaped = bytes[index]
            index += 1
            switch escaped {
            case UInt8(ascii: "N") where current.isEmpty && (index == bytes.endIndex || bytes[index] == UInt8(ascii: "\t")):
                isNull = true
            case UInt8(ascii: "b"): current.append(8)
            case UInt8(ascii: "f"): current.append(12)
            case UInt8(ascii: "n"): current.append(10)
            case UInt8(ascii: "r"): current.append(13)
            case UInt8(ascii: "t"): current.append(9)
            case UInt8(ascii: "v"): current.append(11)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var value = Int(escaped - 48)
                var digits = 1
                while digits < 3, index < bytes.endIndex, (48...55).contains(bytes[index]) {
                    value = value * 8 + Int(bytes[index] - 48)
                    index += 1
                    digits += 1
                }
                current.append(UInt8(truncatingIfNeeded: value))
            case UInt8(ascii: "x"):
                var value = 0
                var digits = 0
                while digits < 2, index < bytes.endIndex, let nibble = hexValue(bytes[index]) {
                    value = value * 16 + nibble
                    index += 1
                    digits += 1
                }
                guard digits > 0 else { throw .badEscape(row: String(decoding: bytes, as: UTF8.self)) }
                current.append(UInt8(value))
            default:
                current.append(escaped)
            }
        }
        fields.append(isNull ? nil : current)
        guard fields.count == expected else { throw .fieldCount(expected: expected, found: fields.count) }
        return fields
    }

    private static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case 48...57: return Int(c - 48)
        case 97...102: return Int(c - 87)
        case 65...70: return Int(c - 55)
        default: return nil
        }
    }
}

extension CopyText {
    /// Appends one field in COPY text form: `\N` for NULL, backslash, tab, newline and
    /// carriage return escaped (the only bytes the format gives a meaning).
    public static func appendField(_ field: String?, to buffer: inout [UInt8]) {
        guard var value = field else {
            buffer.append(UInt8(ascii: "\\"))
            buffer.append(UInt8(ascii: "N"))
            return
        }
        value.withUTF8 { appendField(utf8: $0, to: &buffer) }
    }

    /// Appends one non-NULL field given as UTF-8 bytes, escaped as `appendField` does.
    public static func appendField(bytes: [UInt8], to buffer: inout [UInt8]) {
        bytes.withUnsafeBufferPointer { appendField(utf8: $0, to: &buffer) }
    }

    private static func appendField(utf8 bytes: UnsafeBufferPointer<UInt8>, to buffer: inout [UInt8]) {
        var needsEscape = false
        for byte in bytes where byte == 0x5C || byte == 0x09 || byte == 0x0A || byte == 0x0D {
            needsEscape = true
            break
        }
        guard needsEscape else {
            buffer.append(contentsOf: bytes)
            return
        }
        for byte in bytes {
            switch byte {
            case 0x5C: buffer.append(0x5C); buffer.append(0x5C)
            case 0x09: buffer.append(0x5C); buffer.append(UInt8(ascii: "t"))
            case 0x0A: buffer.append(0x5C); buffer.append(UInt8(ascii: "n"))
            case 0x0D: buffer.append(0x5C); buffer.append(UInt8(ascii: "r"))
            default: buffer.append(byte)
            }
        }
    }
}
