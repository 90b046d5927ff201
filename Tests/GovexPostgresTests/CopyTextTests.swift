import GovexPostgres
import Testing

@Suite("COPY text format")
struct CopyTextTests {
    static func fields(_ row: String, _ expected: Int) throws -> [String?] {
        try Array(row.utf8).withUnsafeBytes { try CopyText.fields($0, expected: expected) }.map { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    @Test("NULL, escapes, and the literal text \\N")
    func escapes() throws {
        #expect(try Self.fields("1\t\\N\t\\\\N\n", 3) == ["1", nil, "\\N"])
        #expect(try Self.fields("a\\tb\tc\\nd\t\\\\\t\\101\\x42", 4) == ["a\tb", "c\nd", "\\", "AB"])
        #expect(try Self.fields("\t", 2) == ["", ""])
        #expect(try Self.fields("张三\t数据", 2) == ["张三", "数据"])
    }

    @Test("the wrong number of fields or a dangling backslash is an error", arguments: [("a\tb", 3), ("a\\", 1), ("a\\xZ", 1)])
    func errors(row: String, expected: Int) {
        #expect(throws: CopyText.Failure.self) { _ = try Self.fields(row, expected) }
    }
}
