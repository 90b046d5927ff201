import GovexPolicy
import GovexWire
import Testing

@Suite("Row filter language")
struct RowFilterTests {
    static let row: [String: Value] = [
        "status": .text("active"), "region": .text("350100"), "priority": .int4(3), "amount": .numeric(try! Numeric("1234.50")),
        "closed_at": .null, "born": .date(-3651), "vip": .bool(true), "score": .float8(2.5), "code": .text("91350100M000100Y43"),
    ]

    static func evaluate(_ text: String) throws -> Bool? {
        try RowFilter.parse(text).evaluate { Self.row[$0] }
    }

    @Test("comparisons, IN, IS NULL and boolean logic", arguments: [
        ("status <> 'draft'", true as Bool?),
        ("status = 'draft'", false),
        ("priority >= 3 AND priority < 4", true),
        ("amount > 1234.5", false), ("amount = 1234.5", true), ("amount >= 1234.500", true), ("amount < 99999999999999999999.1", true),
        ("region IN ('350100', '350200')", true), ("region NOT IN ('350100')", false),
        ("closed_at IS NULL", true), ("closed_at IS NOT NULL", false),
        ("closed_at = 'x'", nil), ("NOT (closed_at = 'x')", nil), ("closed_at = 'x' OR vip = TRUE", true), ("closed_at = 'x' AND vip = FALSE", false),
        ("born < '1990-01-02'", false), ("born = '1990-01-02'", true), ("score > 2", true), ("\"code\" >= '9'", true),
        ("region IN ('1', NULL)", nil), ("priority = -3", false), ("NOT vip = TRUE", false),
    ])
    func evaluation(text: String, expected: Bool?) throws {
        #expect(try Self.evaluate(text) == expected, "\(text)")
    }

    @Test("mistakes are located", arguments: [
        ("status =", 8), ("status == 'a'", 7), ("status = 'unterminated", 9), ("(status = 'a'", 13), ("status IN 'a'", 10),
        ("status = 'a' extra", 13), ("status ; DROP TABLE x", 7), ("AND = 1", 0), ("1.", 0),
    ])
    func parseErrors(text: String, position: Int) {
        #expect {
            _ = try RowFilter.parse(text)
        } throws: { error in
            (error as? RowFilter.ParseError)?.position == position
        }
    }

    @Test("type mismatches and unknown columns are errors, not silent false", arguments: ["status > 3", "priority = 'high'", "nope = 1", "born = 'yesterday'"])
    func evaluationErrors(text: String) throws {
        let filter = try RowFilter.parse(text)
        #expect(throws: RowFilterError.self) { _ = try filter.evaluate { Self.row[$0] } }
    }

    @Test("an unchanged TOAST value cannot be filtered on")
    func unchanged() throws {
        let filter = try RowFilter.parse("photo IS NULL")
        #expect(throws: RowFilterError.self) { _ = try filter.evaluate { $0 == "photo" ? .unchanged : nil } }
    }

    @Test("SQL translation quotes identifiers and literals")
    func sql() throws {
        let filter = try RowFilter.parse("\"we\"\"ird\" = 'it''s' AND n IN (1, -2.5) OR x IS NOT NULL")
        #expect(filter.sql == "(((\"we\"\"ird\" = 'it''s') AND (\"n\" IN (1, -2.5))) OR (\"x\" IS NOT NULL))")
        #expect(filter.columns == ["we\"ird", "n", "x"])
    }
}
