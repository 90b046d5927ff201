import GovexTestSupport
import GovexWire
import Testing

@Suite("PostgreSQL text forms")
struct ValueTextFormTests {
    static let columns = EdgeValues.rows.flatMap { $0 }.filter { $0.text != nil }

    @Test("every edge value parses from PostgreSQL's text", arguments: columns.indices)
    func parses(index: Int) throws {
        let column = Self.columns[index]
        #expect(try Value(postgresText: column.text!, type: column.valueType) == column.value)
    }

    @Test("formatting then parsing gives the same value", arguments: columns.indices)
    func roundTrips(index: Int) throws {
        let column = Self.columns[index]
        let text = try #require(column.value.postgresText)
        #expect(try Value(postgresText: text, type: column.valueType) == column.value)
    }

    @Test("malformed text is refused with the type and what was expected", arguments: [
        ("2024-02-30", ValueType.date), ("2024-13-01", .date), ("25:00:00", .time), ("12:60:00", .time),
        ("1.2.3", .numeric), ("1e5", .numeric), ("", .numeric), ("maybe", .bool), ("70000", .int2),
        ("\\xABC", .bytea), ("0xAB", .bytea), ("not-a-uuid", .uuid), ("2024-01-01 10:00:00", .timestamptz),
        ("5874898-01-01", .date), ("294277-01-01 00:00:00", .timestamp),
    ])
    func refusesMalformed(text: String, type: ValueType) {
        #expect(throws: ValueError.self) { _ = try Value(postgresText: text, type: type) }
    }

    @Test("numeric keeps its scale and NULL differs from the empty string")
    func exactness() throws {
        #expect(try Value(postgresText: "1.0", type: .numeric) != Value(postgresText: "1.00", type: .numeric))
        #expect(Value.text("") != Value.null)
        #expect(Value.float8(.nan) == Value.float8(.nan))
        #expect(Value.float8(0.0) != Value.float8(-0.0))
    }

    @Test("calendar arithmetic agrees with itself across the whole date range")
    func calendarRoundTrip() {
        var day = -2_451_545
        while day <= 2_145_031_948 {
            let date = CivilCalendar.date(days: Int64(day))
            #expect(CivilCalendar.days(year: date.year, month: date.month, day: date.day) == Int64(day))
            day += 9_973
        }
    }
}
