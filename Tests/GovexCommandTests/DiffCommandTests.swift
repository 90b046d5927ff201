import Foundation
import GovexPostgres
import GovexTestSupport
import Testing

/// `govex diff` as a user runs it: two databases, exit statuses, the JSON listing, and
/// errors that say what to fix.
@Suite("govex diff")
struct DiffCommandTests {
    static let govex = Subprocess.buildDirectory + "/govex"

    @Test("equal tables exit 0; differences exit 1 and are listed (JSON: key, kind, changed columns); mistakes exit 2 naming the fix")
    func diffCommand() async throws {
        try await TestPostgres.withDatabase { leftDatabase in
            try await TestPostgres.withDatabase { rightDatabase in
                for database in [leftDatabase, rightDatabase] {
                    try await PostgresConnection.with(database.conninfo) { sql in
                        try await sql.script("""
                            CREATE TABLE people (id_number text PRIMARY KEY, name text, income numeric, updated timestamptz);
                            INSERT INTO people SELECT lpad(g::text, 17, '0') || 'X', '姓名' || g, g * 1.5, '2024-01-01'::timestamptz + g * interval '1 hour'
                            FROM generate_series(1, 30000) g;
                            """)
                    }
                }
                let common = ["diff", "--left", leftDatabase.conninfo, "--right", rightDatabase.conninfo, "--table", "people", "--key", "id_number", "--quiet"]
                let equal = try await Subprocess.run([Self.govex] + common)
                #expect(equal.status == 0 && equal.output.contains("equal: 30000 rows left, 30000 rows right"), "\(equal.output)")

                try await PostgresConnection.with(rightDatabase.conninfo) { sql in
                    try await sql.script("""
                        UPDATE people SET name = name || ' ' WHERE id_number = '00000000000000017X';
                        UPDATE people SET income = 30.00 WHERE id_number = '00000000000000020X';
                        DELETE FROM people WHERE id_number = '00000000000025000X';
                        INSERT INTO people VALUES ('99999999999999999X', '新', NULL, NULL);
                        """)
                }
                let listed = try await Subprocess.run([Self.govex] + common + ["--json"])
                #expect(listed.status == 1, "\(listed.output)")
                let json = try #require(listed.output.split(separator: "\n").first { $0.hasPrefix("{") })
                let document = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
                let differences = try #require(document["differences"] as? [[String: Any]])
                let summary = differences.map { entry in
                    "\((entry["key"] as? [String: String])?["id_number"] ?? "?") \(entry["kind"] ?? "?") \((entry["columns"] as? [String]) ?? [])"
                }
                #expect(summary == ["00000000000000017X changed [\"name\"]", "00000000000000020X changed [\"income\"]",
                                    "00000000000025000X only_left []", "99999999999999999X only_right []"],
                        "a trailing space and 30 vs 30.00 are differences; \(summary)")

                // Without --quiet: progress lines on stderr while it runs, then the summary.
                let watched = try await Subprocess.run([Self.govex] + common.filter { $0 != "--quiet" } + ["--progress-every", "0.01"])
                let progress = watched.output.split(separator: "\n").filter { $0.contains("diff: ") && $0.contains(" differences, ") }
                #expect(watched.status == 1 && !progress.isEmpty, "\(watched.output)")
                #expect(progress.allSatisfy { $0.contains("segments compared") && $0.contains("rows hashed in PostgreSQL")
                        && $0.contains("rows fetched") && $0.hasSuffix("MB moved") }, "\(progress)")
                #expect(watched.output.contains("different: 30000 rows left, 30000 rows right; 1 only left, 1 only right, 2 changed"), "\(watched.output)")

                let narrowed = try await Subprocess.run([Self.govex] + common + ["--columns", "updated", "--where", "id_number < '00000000000020000X'"])
                #expect(narrowed.status == 0, "only the compared columns and the rows --where keeps count: \(narrowed.output)")

                let badColumn = try await Subprocess.run([Self.govex] + common + ["--columns", "nmae"])
                #expect(badColumn.status == 2 && badColumn.output.contains("has no column nmae"), "\(badColumn.output)")
                let badTable = try await Subprocess.run([Self.govex] + common.map { $0 == "people" ? "peple" : $0 })
                #expect(badTable.status == 2 && badTable.output.contains("no table peple"), "\(badTable.output)")
            }
        }
    }
}
