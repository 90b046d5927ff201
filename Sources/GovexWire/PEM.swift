/// PEM armour (RFC 7468) around DER, with the base64 it needs.
public enum PEM {
    public static func encode(label: String, der: [UInt8]) -> String {
        let body = Base64.encode(der)
        var lines = ["-----BEGIN \(label)-----"]
        var index = body.startIndex
        while index < body.endIndex {
            let end = body.index(index, offsetBy: 64, limitedBy: body.endIndex) ?? body.endIndex
            lines.append(String(body[index..<end]))
            index = end
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The label and DER of the first PEM block in `text`.
    public static func decode(_ text: String) -> (label: String, der: [UInt8])? {
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingSpaces() }
        guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN ") && $0.hasSuffix("-----") }) else { return nil }
        let label = String(lines[begin].dropFirst(11).dropLast(5))
        guard let end = lines[begin...].firstIndex(of: "-----END \(label)-----") else { return nil }
        let body = lines[(begin + 1)..<end].joined()
        guard let der = Base64.decode(body) else { return nil }
        return (label, der)
    }
}

enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var value: UInt32 = 0
            for (i, byte) in chunk.enumerated() { value |= UInt32(byte) << UInt32(16 - 8 * i) }
            for i in 0..<4 {
                out.append(i <= chunk.count ? alphabet[Int((value >> UInt32(18 - 6 * i)) & 63)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        var out = [UInt8]()
        var value: UInt32 = 0
        var bits = 0
        var padding = 0
        for c in text.utf8 {
            let digit: UInt32
            switch c {
            case 65...90: digit = UInt32(c - 65)
            case 97...122: digit = UInt32(c - 71)
            case 48...57: digit = UInt32(c + 4)
            case UInt8(ascii: "+"): digit = 62
            case UInt8(ascii: "/"): digit = 63
            case UInt8(ascii: "="):
                padding += 1
                continue
            default: return nil
            }
            guard padding == 0 else { return nil }
            value = value << 6 | digit
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: value >> UInt32(bits)))
            }
        }
        return padding <= 2 ? out : nil
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
