import GovexApply
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// govex's own tables in a department's database: created once, whoever asks at the same time.
@Suite("govex's own tables")
struct OwnTablesTests {
    @Test("eight creators at once on a fresh database: every one succeeds, no unique-violation on pg_type (plain IF NOT EXISTS races)")
    func concurrentCreators() async throws {
        try await TestPostgres.withDatabase { database in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await PostgresConnection.with(database.conninfo) { sql in try await OwnTables.prepare(OwnTables.all, in: sql) }
                    }
                }
                try await group.waitForAll()
            }
            let missing = try await PostgresConnection.with(database.conninfo) { sql in try await OwnTables.missing(OwnTables.all, in: sql) }
            #expect(missing.isEmpty)
        }
    }

    @Test("a role that may not create them gets the DDL to hand to a DBA; with them present it needs no privilege")
    func withoutPrivilege() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                let role = "govex_limited_\(UInt32.random(in: 0...UInt32.max))"
                try await sql.query("CREATE ROLE \(role) LOGIN")
                try await sql.query("REVOKE CREATE ON DATABASE \(SQLQuoting.identifier(database.name)) FROM PUBLIC")
                try await sql.query("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
                let limited = database.conninfo + " user=\(role)"
                await #expect {
                    try await PostgresConnection.with(limited) { sql in try await OwnTables.prepare(OwnTables.all, in: sql) }
                } throws: { error in
                    "\(error)".contains("govex.delivery_cursors") && "\(error)".contains("`govex check` prints")
                }
                try await OwnTables.prepare(OwnTables.all, in: sql)
                for grant in OwnTables.grants(OwnTables.all, to: role) { try await sql.query(grant) }
                try await PostgresConnection.with(limited) { sql in try await OwnTables.prepare(OwnTables.all, in: sql) }
                try await sql.query("DROP OWNED BY \(role)")
                try await sql.query("DROP ROLE \(role)")
            }
        }
    }
}
