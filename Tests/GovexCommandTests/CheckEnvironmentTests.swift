import Foundation
import GovexHub
import GovexPostgres
import GovexTestSupport
import Testing

/// `govex check` says "ready" only when the agent could really start: its key, its
/// enrollment, the hub and the catalog, not only the database.
@Suite("govex check, beyond the database")
struct CheckEnvironmentTests {
    static let govex = AgentCommandTests.govex

    @Test("a signing key readable by others, garbage, or missing makes check fail, naming the fix")
    func signingKey() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            let (dataDir, _, path) = try await AgentCommandTests.prepareAgent(database, sql, directoryPrefix: "govex-check-key")
            let ready = try await Subprocess.run([Self.govex, "check", "--config", path])
            #expect(ready.status == 0 && ready.output.contains("ready to capture"), "\(ready.output)")
            #expect(ready.output.contains("WARNING hub: no [hub] url"), "\(ready.output)")

            let key = dataDir + "/keys/signing.key"
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: key)
            let open = try await Subprocess.run([Self.govex, "check", "--config", path])
            #expect(open.status == 1 && open.output.contains("ERROR   signing key") && open.output.contains("chmod 600"), "\(open.output)")

            try "not a key\n".write(toFile: key, atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key)
            let garbage = try await Subprocess.run([Self.govex, "check", "--config", path])
            #expect(garbage.status == 1 && garbage.output.contains("ERROR   signing key"), "\(garbage.output)")

            try FileManager.default.removeItem(atPath: key)
            let missing = try await Subprocess.run([Self.govex, "check", "--config", path])
            #expect(missing.status == 1 && missing.output.contains("govex keygen --out \(dataDir)/keys"), "\(missing.output)")
            await sql.close()
        }
    }

    @Test("not enrolled, columns the catalog does not list, the hub unreachable: each fails check; enrolled and agreeing is ready")
    func hubAndCatalog() async throws {
        try await AgentPushTests.withExchange("govex-check-hub") { exchange, _ in
            let ready = try await Subprocess.run([Self.govex, "check", "--config", exchange.agentConfig])
            #expect(ready.status == 0, "\(ready.output)")
            #expect(ready.output.contains("OK      hub: https://127.0.0.1:"), "\(ready.output)")
            #expect(ready.output.contains("WARNING catalog: [[publish]] GA-RK-0001 says share = \"unconditional\" but the hub's catalog says \"conditional\""),
                    "what the agent would alarm about at start: \(ready.output)")

            try await Catalog.upsert(Catalog.Resource(code: "GA-RK-0001", name: "residents", provider: "gongan", share: "unconditional",
                                                      key: ["id"], columns: ["id"]), on: exchange.hubSQL)
            let columns = try await Subprocess.run([Self.govex, "check", "--config", exchange.agentConfig])
            #expect(columns.status == 1 && columns.output.contains("publishes name, which the hub's catalog does not list"), "\(columns.output)")

            exchange.hub.signal(SIGTERM)
            _ = await exchange.hub.finish()
            let away = try await Subprocess.run([Self.govex, "check", "--config", exchange.agentConfig])
            #expect(away.status == 1 && away.output.contains("cannot be reached"), "\(away.output)")

            try FileManager.default.removeItem(atPath: exchange.dataDir + "/tls")
            let unenrolled = try await Subprocess.run([Self.govex, "check", "--config", exchange.agentConfig])
            #expect(unenrolled.status == 1 && unenrolled.output.contains("not enrolled") && unenrolled.output.contains("before the first start"),
                    "\(unenrolled.output)")
        }
    }

    @Test("a subscribed table in a schema the role may not use: a finding with the GRANT, not a crash (exit 2 before)")
    func schemaWithoutUsage() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            let role = "govex_check_\(UInt32.random(in: 0...UInt32.max))"
            try await sql.query("CREATE ROLE \(role) LOGIN")
            try await sql.query("CREATE SCHEMA shared")
            try await sql.query("CREATE TABLE shared.residents (id text PRIMARY KEY, name text)")
            let dataDir = Subprocess.temporaryDirectory("govex-check-schema")
            try Subprocess.check([Self.govex, "keygen", "--out", dataDir + "/keys"])
            let path = try AgentCommandTests.write(ExchangeTests.subscriberConfig(dataDir: dataDir, conninfo: database.conninfo + " user=\(role)", port: 1)
                .replacingOccurrences(of: "\n[hub]\nurl = \"https://127.0.0.1:1\"\n", with: ""))
            let checked = try await Subprocess.run([Self.govex, "check", "--config", path])
            #expect(checked.status == 1, "\(checked.output)")
            #expect(checked.output.contains("role \(role) may not use schema shared"), "\(checked.output)")
            #expect(checked.output.contains("GRANT USAGE ON SCHEMA \"shared\" TO \"\(role)\""), "\(checked.output)")
            try await sql.query("DROP TABLE shared.residents")
            try await sql.query("DROP SCHEMA shared")
            try await sql.query("DROP ROLE \(role)")
            await sql.close()
        }
    }
}
