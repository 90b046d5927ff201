/// Proleptic Gregorian calendar arithmetic on PostgreSQL's epoch (2000-01-01),
/// with astronomical years (year 0 is 1 BC), as PostgreSQL counts internally.
public enum CivilCalendar {
    public static let microsecondsPerDay: Int64 = 86_400_000_000
    /// Days between 1970-01-01 and 2000-01-01.
    public static let unixToPostgresEpochDays: Int64 = 10_957

    /// Days since 2000-01-01 for a calendar date (month 1...12, day 1...31).
    public static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468 - unixToPostgresEpochDays
    }

    /// The calendar date of a day counted from 2000-01-01.
    public static func date(days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + unixToPostgresEpochDays + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    public static func isValid(year: Int64, month: Int64, day: Int64) -> Bool {
        guard (1...12).contains(month), day >= 1 else { return false }
        let lengths: [Int64] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        let isLeap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let length = month == 2 && isLeap ? 29 : lengths[Int(month - 1)]
        return day <= length
    }

    /// Splits a microsecond count into whole days and the time of day, flooring toward -infinity.
    public static func split(microseconds: Int64) -> (days: Int64, timeOfDay: Int64) {
        var days = microseconds / microsecondsPerDay
        var timeOfDay = microseconds % microsecondsPerDay
        if timeOfDay < 0 {
            days -= 1
            timeOfDay += microsecondsPerDay
        }
        return (days, timeOfDay)
    }

    // PostgreSQL's accepted ranges (julian day 0 = 4714-11-24 BC is the first day;
    // dates end at 5874897-12-31, timestamps before 294277-01-01).
    public static let firstDay: Int64 = -2_451_545
    public static let lastDateDay: Int64 = 2_145_031_948
    public static let endOfTimestamps: Int64 = 9_223_371_331_200_000_000
    public static let firstTimestamp: Int64 = -211_813_488_000_000_000
}
