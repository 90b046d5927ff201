/// PostgreSQL's ISO text forms of date, time, timestamp and timestamptz
/// (`DateStyle=ISO`, `TimeZone=UTC`), to and from the integer forms in `Value`.
enum PostgresDateTime {
    static func formatDate(_ days: Int32) -> String {
        if days == Value.dateInfinity { return "infinity" }
        if days == Value.dateMinusInfinity { return "-infinity" }
        var text: [UInt8] = []
        text.reserveCapacity(13)
        appendDay(Int64(days), to: &text)
        if isBC(Int64(days)) { text.append(contentsOf: " BC".utf8) }
        return String(decoding: text, as: UTF8.self)
    }

    static func formatTime(_ microseconds: Int64) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(15)
        appendTimeOfDay(microseconds, to: &text)
        return String(decoding: text, as: UTF8.self)
    }

    static func formatTimestamp(_ microseconds: Int64, withZone: Bool) -> String {
        if microseconds == Value.timestampInfinity { return "infinity" }
        if microseconds == Value.timestampMinusInfinity { return "-infinity" }
        let (days, timeOfDay) = CivilCalendar.split(microseconds: microseconds)
        // Built as bytes: this runs for every timestamp a delivery applies or a batch shows.
        var text: [UInt8] = []
        text.reserveCapacity(32)
        appendDay(days, to: &text)
        text.append(UInt8(ascii: " "))
        appendTimeOfDay(timeOfDay, to: &text)
        if withZone { text.append(contentsOf: "+00".utf8) }
        if isBC(days) { text.append(contentsOf: " BC".utf8) }
        return String(decoding: text, as: UTF8.self)
    }

    static func parseDate(_ text: String) throws(ValueError) -> Int32 {
        if text == "infinity" { return Value.dateInfinity }
        if text == "-infinity" { return Value.dateMinusInfinity }
        var scanner = Scanner(text)
        guard let days = scanner.date(), scanner.era(), scanner.atEnd else {
            throw .invalidText(type: "date", text: text, expected: "YYYY-MM-DD, optionally followed by BC, or ±infinity")
        }
        let adjusted = scanner.isBC ? CivilCalendar.days(year: 1 - scanner.year, month: scanner.month, day: scanner.day) : days
        guard adjusted >= CivilCalendar.firstDay, adjusted <= CivilCalendar.lastDateDay else {
            throw .outOfRange(type: "date", text: text)
        }
        return Int32(adjusted)
    }

    static func parseTime(_ text: String) throws(ValueError) -> Int64 {
        var scanner = Scanner(text)
        guard let time = scanner.timeOfDay(), scanner.atEnd, time <= CivilCalendar.microsecondsPerDay else {
            throw .invalidText(type: "time", text: text, expected: "HH:MM:SS[.ffffff] between 00:00:00 and 24:00:00")
        }
        return time
    }

    static func parseTimestamp(_ text: String, withZone: Bool) throws(ValueError) -> Int64 {
        let type = withZone ? "timestamptz" : "timestamp"
        if text == "infinity" { return Value.timestampInfinity }
        if text == "-infinity" { return Value.timestampMinusInfinity }
        var scanner = Scanner(text)
        guard scanner.date() != nil, scanner.skip(UInt8(ascii: " ")) || scanner.skip(UInt8(ascii: "T")),
              let time = scanner.timeOfDay(), time <= CivilCalendar.microsecondsPerDay else {
            throw .invalidText(type: type, text: text, expected: "YYYY-MM-DD HH:MM:SS[.ffffff]\(withZone ? "+HH[:MM]" : "")[ BC] or ±infinity")
        }
        let offset = withZone ? scanner.zoneOffset() : 0
        guard let offset, scanner.era(), scanner.atEnd else {
            throw .invalidText(type: type, text: text, expected: "YYYY-MM-DD HH:MM:SS[.ffffff]\(withZone ? "+HH[:MM]" : "")[ BC] or ±infinity")
        }
        let year = scanner.isBC ? 1 - scanner.year : scanner.year
        let days = CivilCalendar.days(year: year, month: scanner.month, day: scanner.day)
        guard days >= CivilCalendar.firstDay - 1, days <= CivilCalendar.lastDateDay + 1 else {
            throw .outOfRange(type: type, text: text)
        }
        let microseconds = days * CivilCalendar.microsecondsPerDay + time - offset * 1_000_000
        guard microseconds >= CivilCalendar.firstTimestamp, microseconds < CivilCalendar.endOfTimestamps else {
            throw .outOfRange(type: type, text: text)
        }
        return microseconds
    }

    private static func isBC(_ days: Int64) -> Bool { CivilCalendar.date(days: days).year <= 0 }

    private static func appendDay(_ days: Int64, to text: inout [UInt8]) {
        let (year, month, day) = CivilCalendar.date(days: days)
        appendPadded(year <= 0 ? 1 - year : year, width: 4, to: &text)
        text.append(UInt8(ascii: "-"))
        appendPadded(month, width: 2, to: &text)
        text.append(UInt8(ascii: "-"))
        appendPadded(day, width: 2, to: &text)
    }

    private static func appendTimeOfDay(_ microseconds: Int64, to text: inout [UInt8]) {
        let seconds = microseconds / 1_000_000
        var fraction = microseconds % 1_000_000
        appendPadded(seconds / 3600, width: 2, to: &text)
        text.append(UInt8(ascii: ":"))
        appendPadded(seconds / 60 % 60, width: 2, to: &text)
        text.append(UInt8(ascii: ":"))
        appendPadded(seconds % 60, width: 2, to: &text)
        if fraction != 0 {
            var digits = 6
            while fraction % 10 == 0 {
                fraction /= 10
                digits -= 1
            }
            text.append(UInt8(ascii: "."))
            appendPadded(fraction, width: digits, to: &text)
        }
    }

    /// A non-negative number in decimal, zero-padded to at least `width` digits.
    private static func appendPadded(_ value: Int64, width: Int, to text: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value.magnitude
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            for _ in count..<max(width, count) { text.append(UInt8(ascii: "0")) }
            for index in stride(from: count - 1, through: 0, by: -1) { text.append(buffer[index]) }
        }
    }

    /// Reads the pieces of an ISO date/time text left to right.
    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        var year: Int64 = 0, month: Int64 = 0, day: Int64 = 0
        var isBC = false

        init(_ text: String) { bytes = Array(text.utf8) }

        var atEnd: Bool { index == bytes.count }

        mutating func skip(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        mutating func number(minDigits: Int, maxDigits: Int) -> Int64? {
            var value: Int64 = 0
            var count = 0
            while index < bytes.count, count < maxDigits, bytes[index] >= 48, bytes[index] <= 57 {
                value = value * 10 + Int64(bytes[index] - 48)
                index += 1
                count += 1
            }
            return count >= minDigits ? value : nil
        }

        /// Days since 2000-01-01 as written (before any BC adjustment).
        mutating func date() -> Int64? {
            guard let y = number(minDigits: 4, maxDigits: 7), skip(UInt8(ascii: "-")),
                  let m = number(minDigits: 2, maxDigits: 2), skip(UInt8(ascii: "-")),
                  let d = number(minDigits: 2, maxDigits: 2),
                  CivilCalendar.isValid(year: y, month: m, day: d) else { return nil }
            (year, month, day) = (y, m, d)
            return CivilCalendar.days(year: y, month: m, day: d)
        }

        mutating func timeOfDay() -> Int64? {
            guard let h = number(minDigits: 2, maxDigits: 2), skip(UInt8(ascii: ":")),
                  let m = number(minDigits: 2, maxDigits: 2), skip(UInt8(ascii: ":")),
                  let s = number(minDigits: 2, maxDigits: 2), m < 60, s < 60, h <= 24 else { return nil }
            var micros: Int64 = 0
            if skip(UInt8(ascii: ".")) {
                let start = index
                guard let f = number(minDigits: 1, maxDigits: 6) else { return nil }
                var scaled = f
                for _ in (index - start)..<6 { scaled *= 10 }
                micros = scaled
            }
            return ((h * 60 + m) * 60 + s) * 1_000_000 + micros
        }

        /// Seconds east of UTC, from `+HH`, `+HH:MM` or `+HH:MM:SS`.
        mutating func zoneOffset() -> Int64? {
            let sign: Int64
            if skip(UInt8(ascii: "+")) { sign = 1 } else if skip(UInt8(ascii: "-")) { sign = -1 } else { return nil }
            guard let h = number(minDigits: 2, maxDigits: 2) else { return nil }
            var seconds = h * 3600
            if skip(UInt8(ascii: ":")) {
                guard let m = number(minDigits: 2, maxDigits: 2) else { return nil }
                seconds += m * 60
                if skip(UInt8(ascii: ":")) {
                    guard let s = number(minDigits: 2, maxDigits: 2) else { return nil }
                    seconds += s
                }
            }
            return sign * seconds
        }

        mutating func era() -> Bool {
            if index == bytes.count { return true }
            guard bytes[index...].elementsEqual(" BC".utf8) else { return false }
            index = bytes.count
            isBC = true
            return true
        }
    }
}
