import Foundation
import GovexPostgres
import GovexTestSupport
import Testing

/// A delivery B's database refuses does not block B's other subscriptions, and is applied
/// exactly once when the DBA replays it after the fix.
@Suite("Dead letters at a subscriber")
struct DeadLetterTests {
    static let govex = AgentCommandTests.govex

    static let vehicles = """
        [[resource]]
        code = "GA-CL-0002"
        name = "Vehicles"
        provider = "gongan"
        share = "unconditional"
        key = ["plate"]
        columns = ["plate", "owner"]
        """

    static let aPublish = AgentCommandTests.residentsPublish + """

        [[publish]]
        resource = "GA-CL-0002"
        share = "unconditional"
        table = "public.vehicles"
        key = ["plate"]
        """

    static let bExtra = """
        [[subscribe]]
        resource = "GA-CL-0002"
        table = "shared.vehicles"
        purpose = "check vehicle ownership for housing subsidy applications"

        [apply]
        attempts = 3
        retry_delay = "200ms"
        """

    @Test("a poison delivery is retried, dead-lettered with an alarm while another resource flows, and replayed once after the fix")
    func poisonDelivery() async throws {
        try await ExchangeTests.withDepartments(extraCatalog: Self.vehicles, aPublish: Self.aPublish, bExtra: Self.bExtra) { departments, hub in
            let (aSQL, bSQL) = (departments.aSQL, departments.bSQL)
            try await aSQL.query("CREATE TABLE vehicles (plate text PRIMARY KEY, owner text)")
            try await aSQL.query("ALTER PUBLICATION govex ADD TABLE vehicles")
            #expect(try await Subprocess.run([Self.govex, "check", "--apply", "--config", departments.bConfig]).status == 0)
            let subscribed = try await Subprocess.run([Self.govex, "subscribe", "--resource", "GA-CL-0002", "--config", departments.bConfig])
            #expect(subscribed.status == 0, "\(subscribed.output)")
            // B's DBA has a rule the provider does not: the poison. And a log that shows each row inserted once.
            try await bSQL.script("""
                ALTER TABLE shared.residents ADD CONSTRAINT no_poison CHECK (name IS DISTINCT FROM 'poison');
                CREATE TABLE shared.inserted (id text);
                CREATE FUNCTION shared.log_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO shared.inserted VALUES (NEW.id); RETURN NULL; END $$;
                CREATE TRIGGER log_insert AFTER INSERT ON shared.residents FOR EACH ROW EXECUTE FUNCTION shared.log_insert();
                """)
            try await aSQL.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(1, 100) g")
            let a = try Subprocess.start([Self.govex, "agent", "--config", departments.aConfig])
            let first = try Subprocess.start([Self.govex, "agent", "--config", departments.bConfig])
            func residents() async throws -> (String, String) {
                (try await ExchangeTests.contents(aSQL, "residents"), try await ExchangeTests.contents(bSQL, "shared.residents"))
            }
            #expect(try await AgentPushTests.eventually { let (x, y) = try await residents(); return x == y }, "the snapshot arrives")

            // While B is down, a good change and then the poison, as two batches: when B comes
            // back both wait, and it applies them as one group, which fails; one by one, the
            // good one is applied and the poison alone is retried and dead-lettered.
            first.signal(SIGTERM)
            #expect(await first.finish().status == 0)
            func routed() async throws -> Int {
                Int(try await departments.hubSQL.query("""
                    SELECT count(*) FROM govex.deliveries d JOIN govex.subscriptions s USING (subscription_id) WHERE s.resource = 'GA-RK-0001'
                    """).rows.first?[0] ?? "") ?? -1
            }
            let before = try await routed()
            try await aSQL.query("UPDATE residents SET name = 'before the poison' WHERE id = 1")
            #expect(try await AgentPushTests.eventually { try await routed() == before + 1 }, "the good change routed on its own")
            try await aSQL.query("INSERT INTO residents VALUES (101, 'poison', 's')")
            #expect(try await AgentPushTests.eventually { try await routed() == before + 2 }, "both batches routed to B's subscription")
            let b = try Subprocess.start([Self.govex, "agent", "--config", departments.bConfig])
            func bLog() -> String { (try? String(contentsOfFile: b.outputPath, encoding: .utf8)) ?? "" }
            #expect(try await AgentPushTests.eventually {
                try await bSQL.query("SELECT count(*) FROM govex.dead_letters WHERE status = 'dead'").rows.first?[0] == "1"
            }, "dead-lettered: \(bLog().suffix(3000))")
            #expect(bLog().contains("together failed") && bLog().contains("applying them one by one"), "applied as a group first: \(bLog().suffix(3000))")
            #expect(try await bSQL.query("SELECT name FROM shared.residents WHERE id = '1'").rows.first?[0] == "before the poison",
                    "the good delivery of the failed group is applied")
            #expect(bLog().contains("try 1 of 3 failed") && bLog().contains("try 2 of 3 failed"), "retried first")
            // The alarm is logged just after the dead letter's row commits: wait for the line too.
            #expect(try await AgentPushTests.eventually { bLog().contains("<2>govex agent: ALARM: delivery") && bLog().contains("no_poison") },
                    "an alarm naming the cause: \(bLog().suffix(3000))")
            // The journal names table and constraint only: PostgreSQL's detail quotes the row.
            #expect(!bLog().contains("Failing row contains"), "row data in the log: \(bLog().suffix(3000))")

            // Residents wait behind the dead letter; vehicles keep flowing.
            try await aSQL.query("INSERT INTO residents SELECT g, 'later' || g, 's' FROM generate_series(102, 150) g")
            try await aSQL.query("UPDATE residents SET name = 'updated' WHERE id <= 10")
            try await aSQL.query("INSERT INTO vehicles SELECT '京A' || g, 'owner ' || g FROM generate_series(1, 40) g")
            #expect(try await AgentPushTests.eventually {
                try await bSQL.query("SELECT count(*) FROM shared.vehicles").rows.first?[0] == "40"
            }, "another resource flows past")
            #expect(try await bSQL.query("SELECT count(*) FROM shared.residents WHERE id::int > 100 OR name = 'updated'").rows.first?[0] == "0",
                    "later residents deliveries wait, in order")

            let listed = try await Subprocess.run([Self.govex, "deadletter", "list", "--config", departments.bConfig])
            #expect(listed.status == 0 && listed.output.contains("GA-RK-0001") && listed.output.contains("no_poison"), "\(listed.output)")
            let id = try #require(try await bSQL.query("SELECT id::text FROM govex.dead_letters").rows.first?[0])
            let shown = try await Subprocess.run([Self.govex, "deadletter", "show", id, "--json", "--config", departments.bConfig])
            #expect(shown.status == 0 && shown.output.contains("\"status\":\"dead\"") && shown.output.contains("\"attempts\":3"), "\(shown.output)")

            // A replay before the fix fails again and waits again.
            let early = try await Subprocess.run([Self.govex, "deadletter", "replay", id, "--config", departments.bConfig])
            #expect(early.status == 1 && early.output.contains("failed again"), "\(early.output)")

            try await bSQL.query("ALTER TABLE shared.residents DROP CONSTRAINT no_poison")
            let replayed = try await Subprocess.run([Self.govex, "deadletter", "replay", id, "--config", departments.bConfig])
            #expect(replayed.status == 0 && replayed.output.contains("replayed"), "\(replayed.output)")
            #expect(try await AgentPushTests.eventually { let (x, y) = try await residents(); return x == y }, "the resource catches up")
            #expect(try await bSQL.query("SELECT count(*) = count(DISTINCT id) AND count(*) = 150 FROM shared.inserted").rows.first?[0] == "t",
                    "every row inserted exactly once")
            let again = try await Subprocess.run([Self.govex, "deadletter", "skip", id, "--reason", "late", "--config", departments.bConfig])
            #expect(again.status == 2 && again.output.contains("already replayed"), "\(again.output)")

            for process in [a, b] { process.signal(SIGTERM) }
            let (aStopped, bStopped) = (await a.finish(), await b.finish())
            #expect(aStopped.status == 0 && bStopped.status == 0, "B: \(bStopped.output.suffix(3000))")
            hub.signal(SIGTERM)
            _ = await hub.finish()
        }
    }
}
