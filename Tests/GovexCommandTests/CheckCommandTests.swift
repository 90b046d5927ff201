import Foundation
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// `govex check` finds each kind of misconfiguration, prints its fix, and `--apply` makes the database ready.
@Suite("govex check")
struct CheckCommandTests {
    static let govex = Subprocess.buildDirectory + "/govex"

    @Test("each misconfiguration is reported with its fix; --apply fixes them; a hostile name stays a name")
    func checkAndApply() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            let hostile = "x\"; DROP TABLE y; --"
            try await sql.query("CREATE TABLE y (id int)")
            try await sql.query("CREATE TABLE residents (id_number text, name text, photo text, status text)")          // no key index, nullable key
            try await sql.query("CREATE TABLE \(SQLQuoting.identifier(hostile)) (id int PRIMARY KEY, note text)")
            try await sql.query("ALTER TABLE \(SQLQuoting.identifier(hostile)) REPLICA IDENTITY NOTHING")
            let publish = """
                [[publish]]
                resource = "GA-RK-0001"
                share = "unconditional"
                table = "residents"
                key = ["id_number"]
                filter = "status <> 'draft'"

                [[publish]]
                resource = "GA-XX-0002"
                share = "conditional"
                table = "public.\(hostile.replacingOccurrences(of: "\"", with: "\\\""))"
                key = ["id"]

                [[publish]]
                resource = "GA-XX-0003"
                share = "unconditional"
                table = "public.missing"
                key = ["id"]
                columns = ["id", "nope"]
                """
            let path = try AgentCommandTests.write(AgentCommandTests.config(dataDir: "/tmp/unused", conninfo: database.conninfo, slot: "govex_check", publish: publish))

            let first = try await Subprocess.run([Self.govex, "check", "--config", path])
            #expect(first.status == 1, "\(first.output)")
            for expected in [
                "has no unique index", "CREATE UNIQUE INDEX ON \"public\".\"residents\" (\"id_number\")",
                "key column id_number allows NULL", "ALTER TABLE \"public\".\"residents\" ALTER COLUMN \"id_number\" SET NOT NULL",
                "does not carry the key", "table public.missing does not exist",
                "publication govex", "CREATE PUBLICATION \"govex\" FOR TABLE \"public\".\"residents\", \"public\".\"x\"\"; DROP TABLE y; --\"",
                "ALTER TABLE \"public\".\"x\"\"; DROP TABLE y; --\" REPLICA IDENTITY DEFAULT",
            ] {
                #expect(first.output.contains(expected), "missing: \(expected)\n\(first.output)")
            }

            let applied = try await Subprocess.run([Self.govex, "check", "--config", path, "--apply", "--json"])
            #expect(applied.output.contains("applying:"))
            #expect(try await sql.query("SELECT count(*) FROM y").rows[0][0] == "0", "table y survives the hostile name")
            // What --apply can fix is fixed; the missing table remains, and the filtered table now needs FULL.
            let json = String(applied.output.split(separator: "\n").last ?? "")
            #expect(json.contains("\"ready\":false"))
            #expect(json.contains("public.missing does not exist"))
            #expect(!json.contains("does not carry the key"))
            #expect(json.contains("\"subject\":\"GA-RK-0001 (public.residents)\",\"message\":\"ready to capture\""), "\(json)")
            await sql.close()
        }
    }
}
