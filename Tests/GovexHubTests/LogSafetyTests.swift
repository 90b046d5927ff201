import GovexHub
import GovexPostgres
import Testing

/// What reaches the journal: node-supplied text cannot forge lines or drive a terminal, and a
/// database error says where it happened without the row it was about.
@Suite("Log safety")
struct LogSafetyTests {
    @Test("control characters from a node are escaped: no forged lines, no ANSI sequences", arguments: [
        ("disk full\r<0>govex hub: all is well", "disk full\\u{d}<0>govex hub: all is well"),
        ("a\nb", "a\\u{a}b"),
        ("\u{1B}[2J\u{1B}[31mred", "\\u{1b}[2J\\u{1b}[31mred"),
        ("line\u{2028}separator", "line\\u{2028}separator"),
        ("列 地址 ok", "列 地址 ok"),
    ])
    func escaped(raw: String, shown: String) {
        #expect(HubLog.escaped(raw) == shown)
    }

    @Test("a PostgreSQL error in a log names SQLSTATE, table and constraint, never the message or detail")
    func postgresError() {
        var error = PostgresError(sqlState: "23514", message: "new row for relation \"residents\" violates check constraint \"no_poison\"",
                                  detail: "Failing row contains (101, 110105194912310021, poison).", hint: nil, context: "running INSERT INTO shared.residents")
        (error.schema, error.table, error.constraint) = ("shared", "residents", "no_poison")
        #expect(error.loggable == "running INSERT INTO shared.residents: SQLSTATE 23514, table shared.residents, constraint no_poison")
        #expect(!error.loggable.contains("Failing row") && !error.loggable.contains("110105194912310021"))
        #expect(HubLog.describe(error) == error.loggable)
    }
}
