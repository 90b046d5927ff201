import Foundation
import GovexHub
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// 一数一源 end to end, as processes: three departments publish overlapping person records;
/// the hub keeps the golden record and feeds every discrepancy back to both departments.
@Suite("One source, one number, between three departments")
struct OneSourceTests {
    static let govex = AgentCommandTests.govex
    static let idWithX = "11010519491231002X", idB = "440306199003072315", invalidID = "440306199003072316"

    static let catalog = ThreeDepartments.catalog(share: "unconditional")

    static let goldenTable = """
        CREATE SCHEMA golden;
        CREATE TABLE golden.person (subject_key text PRIMARY KEY, name text, birth_date date, marital_status text);
        """
    static let goldenSubscription = """
        [[subscribe]]
        resource = "person"
        table = "golden.person"
        purpose = "the golden person record"
        """

    struct Department {
        let node: String
        let sql: PostgresConnection
        let config: String
    }

    /// A department's agent.toml: its [[publish]] (and [[subscribe]]) text, feedback every 300 ms.
    static func config(node: String, dataDir: String, database: TestDatabase, port: Int, entries: String) -> String {
        AgentCommandTests.config(dataDir: dataDir, conninfo: database.conninfo, slot: database.name + "_slot", publish: entries,
                                 hub: "https://127.0.0.1:\(port)")
            .replacingOccurrences(of: "id = \"gongan\"", with: "id = \"\(node)\"")
            .replacingOccurrences(of: "url = \"https://127.0.0.1:\(port)\"", with: "url = \"https://127.0.0.1:\(port)\"\nfeedback_interval = \"300ms\"")
    }

    @Test("golden fields from their authorities; each mismatch one open discrepancy fed back to both sides, values only where entitled; corrections resolve; no echo")
    func threeDepartments() async throws {
        try await HeavyTestGate.shared.run { try await TestPostgres.withDatabase { hubDatabase in
            try await TestPostgres.withDatabase { gonganDatabase in
                try await TestPostgres.withDatabase { minzhengDatabase in
                    try await TestPostgres.withDatabase { zhujianDatabase in
                        let port = try freeLoopbackPort()
                        let hubConfig = try AgentCommandTests.write(HubCommandTests.config(
                            dataDir: Subprocess.temporaryDirectory("govex-hub"), conninfo: hubDatabase.conninfo, port: port))
                        try await Subprocess.checkAsync([Self.govex, "hub", "init", "--config", hubConfig])
                        let catalog = Subprocess.temporaryDirectory("govex-catalog") + "/catalog.toml"
                        try Self.catalog.write(toFile: catalog, atomically: true, encoding: .utf8)
                        try await Subprocess.checkAsync([Self.govex, "hub", "catalog", "apply", catalog, "--config", hubConfig])
                        let hub = try await AgentPushTests.startHub(hubConfig)
                        try await PostgresConnection.with(hubDatabase.conninfo) { hubSQL in
                            var departments: [Department] = []
                            let setups: [(String, TestDatabase, String, String)] = [
                                ("gongan", gonganDatabase, """
                                    CREATE TABLE residents (id_number text PRIMARY KEY, name text, birth_date date);
                                    CREATE PUBLICATION govex FOR TABLE residents;
                                    """, """
                                    [[publish]]
                                    resource = "GA-RK-0001"
                                    share = "unconditional"
                                    table = "public.residents"
                                    key = ["id_number"]
                                    """),
                                // minzheng publishes its marital status from `people` and applies gongan's names into the same table.
                                ("minzheng", minzhengDatabase, """
                                    CREATE TABLE people (id_number text PRIMARY KEY, marital_status text, name text);
                                    CREATE PUBLICATION govex FOR TABLE people;
                                    \(Self.goldenTable)
                                    """, """
                                    [[publish]]
                                    resource = "MZ-HY-0003"
                                    share = "unconditional"
                                    table = "public.people"
                                    key = ["id_number"]
                                    columns = ["id_number", "marital_status"]

                                    [[subscribe]]
                                    resource = "GA-RK-0001"
                                    table = "public.people"
                                    purpose = "names for marriage registration"
                                    columns = ["id_number", "name"]

                                    \(Self.goldenSubscription)
                                    """),
                                ("zhujian", zhujianDatabase, """
                                    CREATE TABLE housing (owner_id text PRIMARY KEY, owner_name text, marital_status text);
                                    CREATE PUBLICATION govex FOR TABLE housing;
                                    \(Self.goldenTable)
                                    """, """
                                    [[publish]]
                                    resource = "ZJ-FW-0001"
                                    share = "unconditional"
                                    table = "public.housing"
                                    key = ["owner_id"]

                                    \(Self.goldenSubscription)
                                    """),
                            ]
                            for (node, database, ddl, entries) in setups {
                                let sql = try await PostgresConnection.connect(database.conninfo)
                                try await sql.script(ddl)
                                let dataDir = Subprocess.temporaryDirectory("govex-\(node)")
                                try Subprocess.check([Self.govex, "keygen", "--out", dataDir + "/keys"])
                                let config = try AgentCommandTests.write(Self.config(node: node, dataDir: dataDir, database: database, port: port, entries: entries))
                                let added = try await Subprocess.run([Self.govex, "hub", "node", "add", node, "--config", hubConfig])
                                let words = try #require(added.output.split(separator: "\n").first { $0.contains("govex enroll") }).split(separator: " ").map(String.init)
                                let token = try #require(words.drop { $0 != "--token" }.dropFirst().first)
                                let caHash = try #require(words.drop { $0 != "--ca-sha256" }.dropFirst().first)
                                try await Subprocess.checkAsync([Self.govex, "enroll", "--hub", "https://127.0.0.1:\(port)", "--token", token,
                                                                 "--ca-sha256", caHash, "--config", config])
                                departments.append(Department(node: node, sql: sql, config: config))
                            }
                            let (gongan, minzheng, zhujian) = (departments[0], departments[1], departments[2])
                            let subscribed = try await Subprocess.run([Self.govex, "subscribe", "--resource", "GA-RK-0001", "--config", minzheng.config])
                            #expect(subscribed.status == 0, "\(subscribed.output)")
                            for department in [minzheng, zhujian] {
                                let golden = try await Subprocess.run([Self.govex, "subscribe", "--resource", "person", "--config", department.config])
                                #expect(golden.status == 0 && golden.output.contains("is active"), "\(golden.output)")
                            }

                            try await gongan.sql.query("INSERT INTO residents VALUES ($1, '张秀英', '1949-12-31'), ($2, '李建国', '1990-03-07')",
                                                       [Self.idWithX, Self.idB])
                            try await minzheng.sql.query("INSERT INTO people (id_number, marital_status) VALUES ($1, '已婚')", [Self.idWithX])
                            try await zhujian.sql.query("INSERT INTO housing VALUES ($1, '张秀英', '未婚'), ($2, '李建', NULL), ($3, '王', NULL)",
                                                        [Self.idWithX, Self.idB, Self.invalidID])
                            let agents = try departments.map { try Subprocess.start([Self.govex, "agent", "--config", $0.config]) }

                            func localFeedback(_ department: Department) async throws -> [[String?]] {
                                guard try await department.sql.query("SELECT to_regclass('govex.discrepancies') IS NOT NULL").rows.first?[0] == "t" else { return [] }
                                return try await department.sql.query("""
                                    SELECT key, coalesce(field, kind), status, role, authority_value, authority_value_shown::text, reported_value, reported_value_shown::text
                                    FROM govex.discrepancies ORDER BY key COLLATE "C", coalesce(field, kind) COLLATE "C"
                                    """).rows
                            }
                            let arrived = try await AgentPushTests.eventually {
                                let counts = [try await localFeedback(zhujian).count, try await localFeedback(gongan).count, try await localFeedback(minzheng).count]
                                return counts == [3, 1, 1]
                            }
                            let logs = agents.map { (try? String(contentsOfFile: $0.outputPath, encoding: .utf8)) ?? "" }
                            let hubLog = (try? String(contentsOfFile: hub.outputPath, encoding: .utf8)) ?? ""
                            #expect(arrived, "feedback reaches all three: \(logs.map { $0.suffix(1500) })\nhub: \(hubLog.suffix(3000))")

                            let golden = try await hubSQL.query("SELECT name, birth_date, marital_status FROM govex_golden.person WHERE subject_key = $1",
                                                                [Self.idWithX]).rows.first
                            #expect(golden == ["张秀英", "1949-12-31", "已婚"], "each field from its authority")
                            #expect(try await hubSQL.query("SELECT count(*) FROM govex.discrepancies WHERE status = 'open'").rows.first?[0] == "3",
                                    "each planted mismatch once, and the invalid ID")
                            #expect(try await hubSQL.query("SELECT count(*) FROM govex_golden.person WHERE subject_key = $1", [Self.invalidID]).rows.first?[0] == "0")

                            // zhujian subscribes to nothing: it learns its values differ, never the authorities' values.
                            let zhujianFeedback = try await localFeedback(zhujian)
                            let expectedZhujian: [[String?]] = [
                                [Self.idWithX, "marital_status", "open", "reporter", nil, "false", "未婚", "true"],
                                [Self.idB, "name", "open", "reporter", nil, "false", "李建", "true"],
                                [Self.invalidID, "invalid_identifier", "open", "reporter", nil, "true", nil, "true"],
                            ]
                            #expect(zhujianFeedback == expectedZhujian, "\(zhujianFeedback)")
                            #expect(try await localFeedback(gongan) == [[Self.idB, "name", "open", "authority", "李建国", "true", nil, "false"]],
                                    "the authority learns zhujian differs, not zhujian's value")
                            #expect(try await localFeedback(minzheng) == [[Self.idWithX, "marital_status", "open", "authority", "已婚", "true", nil, "false"]])
                            let listed = try await Subprocess.run([Self.govex, "discrepancies", "list", "--status", "open", "--config", zhujian.config])
                            #expect(listed.status == 0 && listed.output.contains("not entitled") && listed.output.contains(Self.invalidID), "\(listed.output)")

                            // Correcting either side resolves: zhujian fixes the name, minzheng (the authority) the marital status.
                            try await zhujian.sql.query("UPDATE housing SET owner_name = '李建国' WHERE owner_id = $1", [Self.idB])
                            try await minzheng.sql.query("UPDATE people SET marital_status = '未婚' WHERE id_number = $1", [Self.idWithX])
                            let resolved = try await AgentPushTests.eventually {
                                let all = try await localFeedback(zhujian) + (try await localFeedback(gongan)) + (try await localFeedback(minzheng))
                                let statuses = all.filter { $0[1] != "invalid_identifier" }.map { $0[2] }
                                return statuses.count == 4 && statuses.allSatisfy { $0 == "resolved" }
                            }
                            #expect(resolved, "both sides of both discrepancies hear of the resolution")
                            let after = try await hubSQL.query("SELECT marital_status FROM govex_golden.person WHERE subject_key = $1", [Self.idWithX])
                            #expect(after.rows.first?[0] == "未婚")

                            // Golden subscriptions: minzheng sees gongan's names (its GA-RK-0001 subscription) and its own
                            // marital status, never the birth date; zhujian, entitled to no field, receives not even the keys.
                            let goldenAtMinzheng = try await AgentPushTests.eventually {
                                try await minzheng.sql.query("SELECT subject_key, name, birth_date::text, marital_status FROM golden.person ORDER BY 1").rows
                                    == [[Self.idWithX, "张秀英", nil, "未婚"], [Self.idB, "李建国", nil, nil]]
                            }
                            let minzhengRows = try await minzheng.sql.query("SELECT * FROM golden.person ORDER BY 1").rows
                            #expect(goldenAtMinzheng, "\(minzhengRows)")
                            #expect(try await zhujian.sql.query("SELECT count(*) FROM golden.person").rows.first?[0] == "0")
                            let zhujianCursor = try await zhujian.sql.query(
                                "SELECT delivered_through::text FROM govex.delivery_cursors WHERE resource = 'person'").rows.first?[0]
                            #expect(zhujianCursor == "1", "zhujian's golden stream holds only its (empty) backfill")

                            // gongan's names were applied into minzheng's published table, under the apply's origin: never shipped back.
                            #expect(try await AgentPushTests.eventually {
                                try await minzheng.sql.query("SELECT name FROM people WHERE id_number = $1", [Self.idB]).rows.first?[0] == "李建国"
                            })
                            // Once the hub's merger has taken everything pushed, its copy shows any echo.
                            #expect(try await AgentPushTests.eventually {
                                try await hubSQL.query("SELECT count(*) FROM govex.golden_queue").rows[0][0] == "0"
                            })
                            let published = try await HubCopy.rows(of: "MZ-HY-0003", on: hubSQL)
                            #expect(published.map(\.key) == ["[\"\(Self.idWithX)\"]"], "no echo of applied rows: \(published)")

                            for agent in agents { agent.signal(SIGTERM) }
                            for agent in agents {
                                let stopped = await agent.finish()
                                #expect(stopped.status == 0, "\(stopped.output.suffix(2000))")
                            }
                            for department in departments {
                                try? await department.sql.dropSlot(department.sql.query("SELECT current_database()").rows[0][0].map { $0 + "_slot" } ?? "")
                                await department.sql.close()
                            }
                        }
                        hub.signal(SIGTERM)
                        _ = await hub.finish()
                    }
                }
            }
        } }
    }
}
