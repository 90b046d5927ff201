/// Checks of the national identifiers subjects are keyed by, so that a mistyped key
/// becomes a discrepancy of kind "invalid identifier" instead of a new subject.
public enum IdentifierCheck {
    /// A subject's key kind, as the catalog declares it.
    public enum Kind: String, Sendable, CaseIterable {
        /// 公民身份号码, GB 11643-1999: 17 digits and a check character (0-9 or X).
        case citizenID = "citizen_id"
        /// 统一社会信用代码, GB 32100-2015, embedding an organisation code (GB 11714-1997).
        case creditCode = "credit_code"
        /// Anything; only non-empty.
        case text
    }

    /// Why `value` is not a valid identifier of `kind`; nil when it is.
    public static func problem(_ value: String, kind: Kind) -> String? {
        switch kind {
        case .citizenID: return citizenIDProblem(Array(value.utf8))
        case .creditCode: return creditCodeProblem(Array(value.utf8))
        case .text: return value.isEmpty ? "is empty" : nil
        }
    }

    static let citizenWeights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]

    static func citizenIDProblem(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 18 else { return "has \(bytes.count) characters; a citizen ID number has 18" }
        let body = bytes.prefix(17)
        guard body.allSatisfy(isDigit) else { return "has a non-digit among its first 17 characters" }
        let digits = body.map { Int($0 - 0x30) }
        let year = digits[6] * 1000 + digits[7] * 100 + digits[8] * 10 + digits[9]
        let month = digits[10] * 10 + digits[11], day = digits[12] * 10 + digits[13]
        guard (1800...2199).contains(year), (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day) else {
            return "has birth date \(year)-\(month)-\(day) (characters 7-14), which is not a date"
        }
        let expected = Array("10X98765432".utf8)[zip(digits, citizenWeights).reduce(0) { $0 + $1.0 * $1.1 } % 11]
        guard bytes[17] == expected else {
            if bytes[17] == UInt8(ascii: "x") && expected == UInt8(ascii: "X") { return "ends in a lower-case x; the check character is X" }
            return "has check character \(Character(Unicode.Scalar(bytes[17]))), but GB 11643 gives \(Character(Unicode.Scalar(expected)))"
        }
        return nil
    }

    /// GB 32100's 31 characters: digits and capitals without I, O, S, V and Z.
    static let creditAlphabet = Array("0123456789ABCDEFGHJKLMNPQRTUWXY".utf8)
    static let creditWeights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    static let registrationAuthorities = Array("123456789ANY".utf8)

    static func creditCodeProblem(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 18 else { return "has \(bytes.count) characters; a unified social credit code has 18" }
        var values: [Int] = []
        for (index, byte) in bytes.enumerated() {
            guard let value = creditAlphabet.firstIndex(of: byte) else {
                return "has '\(Character(Unicode.Scalar(byte)))' at position \(index + 1); only digits and capitals other than I, O, S, V, Z occur"
            }
            values.append(value)
        }
        guard registrationAuthorities.contains(bytes[0]) else {
            return "starts with '\(Character(Unicode.Scalar(bytes[0])))', which is no registration authority's code"
        }
        guard bytes[2..<8].allSatisfy(isDigit) else { return "has a non-digit in its administrative division code (positions 3-8)" }
        if let problem = organizationCodeProblem(Array(bytes[8..<17])) { return "embeds organisation code \(String(decoding: bytes[8..<17], as: UTF8.self)), which \(problem)" }
        let sum = zip(values.prefix(17), creditWeights).reduce(0) { $0 + $1.0 * $1.1 }
        let expected = creditAlphabet[(31 - sum % 31) % 31]
        guard bytes[17] == expected else {
            return "has check character \(Character(Unicode.Scalar(bytes[17]))), but GB 32100 gives \(Character(Unicode.Scalar(expected)))"
        }
        return nil
    }

    static let organizationWeights = [3, 7, 9, 10, 5, 8, 4, 2]

    /// GB 11714: eight digits or capitals and a check character (0-9 or X).
    static func organizationCodeProblem(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 9 else { return "has \(bytes.count) characters, not 9" }
        var sum = 0
        for (byte, weight) in zip(bytes.prefix(8), organizationWeights) {
            let value: Int
            if isDigit(byte) { value = Int(byte - 0x30) } else if (0x41...0x5A).contains(byte) { value = Int(byte) - 55 } else { return "has a character that is not a digit or capital" }
            sum += value * weight
        }
        let check = 11 - sum % 11
        let expected: UInt8 = check == 10 ? UInt8(ascii: "X") : check == 11 ? UInt8(ascii: "0") : UInt8(0x30 + check)
        return bytes[8] == expected ? nil : "has check character \(Character(Unicode.Scalar(bytes[8]))), but GB 11714 gives \(Character(Unicode.Scalar(expected)))"
    }

    static func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
