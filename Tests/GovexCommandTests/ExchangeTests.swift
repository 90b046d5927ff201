import Foundation
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// The whole exchange, as processes over mutual TLS: department A (gongan) captures and
/// pushes, the hub routes, department B (minzheng) pulls and applies.
@Suite("Exchange between two departments")
struct ExchangeTests {
    static let govex = AgentCommandTests.govex

    struct Departments {
        let hubConfig: String
        let hubSQL: PostgresConnection
        let aSQL: PostgresConnection
        let bSQL: PostgresConnection
        let aConfig: String
        let bConfig: String
        let aSlot: String
        let aDataDir: String
        let port: Int
        let bDatabase: TestDatabase
    }

    /// The subscriber's configuration: no [[publish]], one [[subscribe]].
    static func subscriberConfig(dataDir: String, conninfo: String, port: Int, extra: String = "") -> String {
        AgentCommandTests.config(dataDir: dataDir, conninfo: conninfo, slot: "unused", publish: """
            [[subscribe]]
            resource = "GA-RK-0001"
            table = "shared.residents"
            purpose = "check residence for housing subsidy applications"
            \(extra)
            """, hub: "https://127.0.0.1:\(port)").replacingOccurrences(of: "id = \"gongan\"", with: "id = \"minzheng\"")
    }

    /// A hub (running) whose catalog shares GA-RK-0001 (gongan's residents, without `secret`)
    /// unconditionally; both departments enrolled; B's table created by `govex check --apply`
    /// from the DDL it prints; B subscribed. Neither agent is started. `extraCatalog` adds
    /// catalog entries, `aPublish` replaces A's [[publish]] entries, `bExtra` is appended to B's
    /// configuration.
    static func withDepartments(subscribe: Bool = true, extraCatalog: String = "", aPublish: String? = nil, bExtra: String = "",
                                _ body: (Departments, Subprocess.Running) async throws -> Void) async throws {
        try await HeavyTestGate.shared.run { try await TestPostgres.withDatabase { hubDatabase in
            try await TestPostgres.withDatabase { aDatabase in
                try await TestPostgres.withDatabase { bDatabase in
                    let port = try freeLoopbackPort()
                    let hubConfig = try AgentCommandTests.write(HubCommandTests.config(
                        dataDir: Subprocess.temporaryDirectory("govex-hub"), conninfo: hubDatabase.conninfo, port: port))
                    try await Subprocess.checkAsync([govex, "hub", "init", "--config", hubConfig])
                    let catalog = Subprocess.temporaryDirectory("govex-catalog") + "/catalog.toml"
                    try """
                        [[resource]]
                        code = "GA-RK-0001"
                        name = "Residents"
                        provider = "gongan"
                        share = "unconditional"
                        key = ["id"]
                        columns = ["id", "name"]
                        \(extraCatalog)
                        """.write(toFile: catalog, atomically: true, encoding: .utf8)
                    try await Subprocess.checkAsync([govex, "hub", "catalog", "apply", catalog, "--config", hubConfig])
                    let hub = try await AgentPushTests.startHub(hubConfig)
                    let hubURL = "https://127.0.0.1:\(port)"
                    func enroll(_ node: String, _ config: String) async throws {
                        let added = try await Subprocess.run([govex, "hub", "node", "add", node, "--config", hubConfig])
                        let command = try #require(added.output.split(separator: "\n").first { $0.contains("govex enroll") })
                        let words = command.split(separator: " ").map(String.init)
                        let token = try #require(words.drop { $0 != "--token" }.dropFirst().first)
                        let caHash = try #require(words.drop { $0 != "--ca-sha256" }.dropFirst().first)
                        try await Subprocess.checkAsync([govex, "enroll", "--hub", hubURL, "--token", token, "--ca-sha256", caHash, "--config", config])
                    }
                    do {
                        try await PostgresConnection.with(hubDatabase.conninfo) { hubSQL in
                            try await PostgresConnection.with(aDatabase.conninfo) { aSQL in
                                try await PostgresConnection.with(bDatabase.conninfo) { bSQL in
                                    let (aDataDir, aSlot, aConfig) = try await AgentCommandTests.prepareAgent(aDatabase, aSQL, directoryPrefix: "govex-a", hub: hubURL,
                                                                                                           publish: aPublish)
                                    let bDataDir = Subprocess.temporaryDirectory("govex-b")
                                    try Subprocess.check([govex, "keygen", "--out", bDataDir + "/keys"])
                                    let bConfig = try AgentCommandTests.write(subscriberConfig(dataDir: bDataDir, conninfo: bDatabase.conninfo, port: port, extra: bExtra))
                                    try await enroll("gongan", aConfig)
                                    try await enroll("minzheng", bConfig)

                                    let checked = try await Subprocess.run([govex, "check", "--config", bConfig])
                                    #expect(checked.status == 1, "\(checked.output)")
                                    #expect(checked.output.contains(#"CREATE TABLE "shared"."residents" ("id" text NOT NULL, "name" text, PRIMARY KEY ("id"))"#),
                                            "\(checked.output)")
                                    let applied = try await Subprocess.run([govex, "check", "--apply", "--config", bConfig])
                                    #expect(applied.status == 0, "\(applied.output)")

                                    if subscribe {
                                        let subscribed = try await Subprocess.run([govex, "subscribe", "--resource", "GA-RK-0001", "--config", bConfig])
                                        #expect(subscribed.status == 0 && subscribed.output.contains("is active: columns id, name"), "\(subscribed.output)")
                                    }

                                    try await body(Departments(hubConfig: hubConfig, hubSQL: hubSQL, aSQL: aSQL, bSQL: bSQL, aConfig: aConfig,
                                                               bConfig: bConfig, aSlot: aSlot, aDataDir: aDataDir, port: port, bDatabase: bDatabase), hub)
                                    try? await aSQL.dropSlot(aSlot)
                                }
                            }
                        }
                    } catch {
                        await hub.stopIfRunning()
                        throw error
                    }
                    // A test that returns early (or forgets) leaves no hub running.
                    await hub.stopIfRunning()
                }
            }
        } }
    }

    /// A's shared columns and B's table, each as one text (order by key).
    static func contents(_ sql: PostgresConnection, _ table: String) async throws -> String {
        try await sql.query("SELECT count(*)::text || ':' || coalesce(md5(string_agg(id::text || '=' || coalesce(name, '<null>'), ',' ORDER BY id::int)), '') FROM \(table)")
            .rows[0][0] ?? ""
    }

    @Test("B subscribes, then A's snapshot, inserts, updates, key changes, deletes and a truncate arrive exactly in B's table")
    func endToEnd() async throws {
        try await Self.withDepartments { departments, hub in
            let (aSQL, bSQL) = (departments.aSQL, departments.bSQL)
            try await aSQL.query("INSERT INTO residents SELECT g, '张' || g, 'secret' FROM generate_series(1, 300) g")
            let (aMetrics, bMetrics) = (try freeLoopbackPort(), try freeLoopbackPort())
            for (config, port) in [(departments.aConfig, aMetrics), (departments.bConfig, bMetrics)] {
                let text = try String(contentsOfFile: config, encoding: .utf8)
                try text.replacingOccurrences(of: "listen = \"\"", with: "listen = \"127.0.0.1:\(port)\"").write(toFile: config, atomically: true, encoding: .utf8)
            }
            let b = try Subprocess.start([Self.govex, "agent", "--config", departments.bConfig])
            let a = try Subprocess.start([Self.govex, "agent", "--config", departments.aConfig])
            func converged() async throws -> Bool {
                try await Self.contents(aSQL, "residents") == Self.contents(bSQL, "shared.residents")
            }
            #expect(try await AgentPushTests.eventually(converged), "the snapshot arrives")

            try await aSQL.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(301, 400) g")
            try await aSQL.query("UPDATE residents SET name = 'renamed ' || id WHERE id % 3 = 0")
            try await aSQL.query("UPDATE residents SET id = id + 1000 WHERE id BETWEEN 10 AND 19")
            try await aSQL.query("UPDATE residents SET name = NULL WHERE id = 7")
            try await aSQL.query("UPDATE residents SET secret = 'not shared' WHERE id = 8")
            try await aSQL.query("DELETE FROM residents WHERE id BETWEEN 381 AND 400")
            let arrived = try await AgentPushTests.eventually(converged)
            let (aNow, bNow) = (try await Self.contents(aSQL, "residents"), try await Self.contents(bSQL, "shared.residents"))
            #expect(arrived, "changes arrive: A \(aNow) B \(bNow)")
            #expect(try await bSQL.query("SELECT name FROM shared.residents WHERE id = '1012'").rows.first?[0] == "renamed 12", "a moved key keeps the name it was given before")

            try await aSQL.query("TRUNCATE residents")
            try await aSQL.query("INSERT INTO residents VALUES (1, 'after truncate', 's'), (2, 'second', 's')")
            #expect(try await AgentPushTests.eventually(converged), "the truncate and what followed arrive")
            #expect(try await Self.contents(bSQL, "shared.residents").hasPrefix("2:"))
            let cursor = try await bSQL.query("SELECT delivered_through::int8, origin_node FROM govex.delivery_cursors").rows
            #expect(cursor.count == 1 && cursor[0][1] == "gongan")
            #expect(try await AgentPushTests.eventually {
                try await departments.hubSQL.query("SELECT acked_through = next_delivery - 1 FROM govex.subscriptions").rows.first?[0] == "t"
            }, "the hub learns how far B got")

            // What monitoring sees: A's pushes succeed, B applies within seconds of A sealing.
            func value(_ port: Int, _ name: String) throws -> Double? {
                try httpGet(port: port, path: "/metrics").split(separator: "\n").first { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
                    .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            }
            let now = Date().timeIntervalSince1970
            #expect(try value(aMetrics, "govex_push_batches_total").map { $0 > 0 } == true)
            #expect(try value(aMetrics, "govex_push_last_success_timestamp_seconds").map { abs($0 - now) < 120 } == true)
            #expect(try value(bMetrics, "govex_apply_deliveries_total").map { $0 > 0 } == true)
            #expect(try value(bMetrics, "govex_apply_last_success_timestamp_seconds").map { abs($0 - now) < 120 } == true)
            let lag = try value(bMetrics, "govex_apply_lag_seconds")
            #expect(lag.map { $0 >= 0 && $0 < 60 } == true, "apply lag \(String(describing: lag))")
            #expect(MetricsText.typesWithoutHelp(try httpGet(port: bMetrics, path: "/metrics")).isEmpty)
            #expect(try await AgentPushTests.eventually {
                try await Subprocess.run([Self.govex, "status", "--config", departments.bConfig]).output.contains("s after the provider sealed it")
            }, "govex status shows B's apply lag")

            let listed = try await Subprocess.run([Self.govex, "subscriptions", "--json", "--config", departments.bConfig])
            #expect(listed.status == 0 && listed.output.contains("\"status\":\"active\""), "\(listed.output)")

            // The audit trail holds against the anchors A kept from its receipts; an edit is named.
            let anchors = departments.aDataDir + "/anchors"
            // B can hold a change before A has read the hub's receipt for it and kept it as an anchor.
            _ = try await AgentPushTests.eventually {
                ((try? FileManager.default.contentsOfDirectory(atPath: anchors)) ?? []).contains { $0.hasSuffix(".json") }
            }
            let audited = try await Subprocess.run([Self.govex, "hub", "audit", "verify", "--anchors", anchors, "--config", departments.hubConfig])
            #expect(audited.status == 0 && audited.output.contains("audit trail holds"), "\(audited.output)")
            #expect(!audited.output.contains(" 0 anchors checked"))
            let served = try await departments.hubSQL.query("""
                SELECT count(*) FILTER (WHERE actor = 'minzheng' AND subject LIKE 'subscription %') = count(*), count(*) > 0
                FROM govex.audit_log WHERE action = 'deliveries_served'
                """).rows[0]
            #expect(served == ["t", "t"], "every fetch that handed B deliveries is on the audit trail")
            try await departments.hubSQL.query("UPDATE govex.audit_log SET actor = 'someone else' WHERE entry = 4")
            let broken = try await Subprocess.run([Self.govex, "hub", "audit", "verify", "--anchors", anchors, "--config", departments.hubConfig])
            #expect(broken.status == 1 && broken.output.contains("BROKEN at entry 4"), "\(broken.output)")

            for process in [a, b] { process.signal(SIGTERM) }
            let (aLog, bLog) = (await a.finish(), await b.finish())
            #expect(aLog.status == 0 && bLog.status == 0, "\(aLog.output)\n\(bLog.output)")
            #expect(!bLog.output.contains("<3>"), "no errors at B: \(bLog.output)")
            hub.signal(SIGTERM)
            _ = await hub.finish()
        }
    }

    @Test("B SIGKILLed 25 times while applying a stream that rewrites the same keys, deletes and re-inserts: B ends equal to A")
    func subscriberKilled() async throws {
        try await Self.withDepartments { departments, hub in
            let (aSQL, bSQL) = (departments.aSQL, departments.bSQL)
            try await aSQL.query("INSERT INTO residents SELECT g, 'v0-' || g, 's' FROM generate_series(1, 2000) g")
            let a = try Subprocess.start([Self.govex, "agent", "--config", departments.aConfig])
            var b = try Subprocess.start([Self.govex, "agent", "--config", departments.bConfig])
            let writer = try await PostgresConnection.connect(departments.bDatabase.conninfo.replacingOccurrences(of: departments.bDatabase.name, with: try await aSQL.query("SELECT current_database()").rows[0][0] ?? ""))
            let workload = Task {
                for round in 1...120 {
                    try await writer.query("UPDATE residents SET name = 'v\(round)-' || id WHERE id % 7 = \(round % 7) OR id <= 50")
                    try await writer.query("DELETE FROM residents WHERE id % 11 = \(round % 11) AND id > 1500")
                    try await writer.query("""
                        INSERT INTO residents SELECT g, 'back\(round)-' || g, 's' FROM generate_series(1501, 2000) g
                        WHERE g % 11 = \((round + 5) % 11) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name
                        """)
                    try await Task.sleep(for: .milliseconds(60))
                }
            }
            var kills = 0
            while kills < 25 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 150...700)))
                b.signal(SIGKILL)
                _ = await b.finish()
                kills += 1
                b = try Subprocess.start([Self.govex, "agent", "--config", departments.bConfig])
            }
            try await workload.value
            await writer.close()
            let converged = try await AgentPushTests.eventually {
                try await Self.contents(aSQL, "residents") == Self.contents(bSQL, "shared.residents")
            }
            let (aNow, bNow) = (try await Self.contents(aSQL, "residents"), try await Self.contents(bSQL, "shared.residents"))
            #expect(converged, "after \(kills) kills: A \(aNow), B \(bNow)\n\((try? String(contentsOfFile: b.outputPath, encoding: .utf8)) ?? "")")
            let applied = try await bSQL.query("SELECT delivered_through::text FROM govex.delivery_cursors").rows.first?[0]
            let routed = try await departments.hubSQL.query("SELECT (next_delivery - 1)::text FROM govex.subscriptions").rows.first?[0]
            #expect(applied != nil && applied == routed, "every routed delivery applied once: \(applied ?? "none") of \(routed ?? "none")")

            #expect(try await AgentPushTests.eventually {
                (try? String(contentsOfFile: b.outputPath, encoding: .utf8))?.contains("applied through delivery") == true
            })
            for process in [a, b] { process.signal(SIGTERM) }
            let (aStopped, bStopped) = (await a.finish(), await b.finish())
            #expect(aStopped.status == 0 && bStopped.status == 0, "A: \(aStopped.output.suffix(2000))\nB: \(bStopped.output.suffix(3000))")
            hub.signal(SIGTERM)
            _ = await hub.finish()
        }
    }

    @Test("SIGHUP reloads agent.toml and the hub's catalog; a configuration that does not load is reported and the running one kept")
    func reload() async throws {
        try await Self.withDepartments { departments, hub in
            let (aSQL, hubSQL) = (departments.aSQL, departments.hubSQL)
            let a = try Subprocess.start([Self.govex, "agent", "--config", departments.aConfig])
            func log() -> String { (try? String(contentsOfFile: a.outputPath, encoding: .utf8)) ?? "" }
            #expect(try await AgentPushTests.eventually { log().contains("streaming") })
            #expect(log().contains("GA-XX-0009 is not a resource this node provides"))

            // The hub now shares GA-XX-0009 too, and the DBA takes it off the negative list.
            let catalog = Subprocess.temporaryDirectory("govex-catalog") + "/catalog.toml"
            try """
                [[resource]]
                code = "GA-RK-0001"
                name = "Residents"
                provider = "gongan"
                share = "unconditional"
                key = ["id"]
                columns = ["id", "name"]

                [[resource]]
                code = "GA-XX-0009"
                name = "Formerly negative"
                provider = "gongan"
                share = "unconditional"
                key = ["id"]
                columns = ["id", "name"]
                """.write(toFile: catalog, atomically: true, encoding: .utf8)
            try await Subprocess.checkAsync([Self.govex, "hub", "catalog", "apply", catalog, "--config", departments.hubConfig])
            let original = try String(contentsOfFile: departments.aConfig, encoding: .utf8)
            try original.replacingOccurrences(of: "share = \"none\"", with: "share = \"unconditional\"")
                .write(toFile: departments.aConfig, atomically: true, encoding: .utf8)
            a.signal(SIGHUP)
            #expect(try await AgentPushTests.eventually { log().contains("reloaded") && log().components(separatedBy: "streaming").count == 3 })
            try await aSQL.query("INSERT INTO negative VALUES (1, 'now shared')")
            #expect(try await AgentPushTests.eventually {
                try await hubSQL.query("SELECT count(*) FROM govex.resource_rows WHERE resource = 'GA-XX-0009'").rows[0][0] == "1"
            }, "captured after the reload: \(log())")

            // A broken file: reported, and the agent goes on as it was.
            try "[node]\nid = \"gongan\"\n".write(toFile: departments.aConfig, atomically: true, encoding: .utf8)
            a.signal(SIGHUP)
            #expect(try await AgentPushTests.eventually { log().contains("cannot reload") })
            try await aSQL.query("INSERT INTO negative VALUES (2, 'still flowing')")
            #expect(try await AgentPushTests.eventually {
                try await hubSQL.query("SELECT count(*) FROM govex.resource_rows WHERE resource = 'GA-XX-0009'").rows[0][0] == "2"
            }, "\(log())")

            a.signal(SIGTERM)
            let stopped = await a.finish()
            #expect(stopped.status == 0, "\(stopped.output)")
            hub.signal(SIGTERM)
            _ = await hub.finish()
        }
    }

    @Test("B subscribes while A's changes are flowing: the backfill from the hub's copy and the stream meet without a gap or a double")
    func lateSubscriber() async throws {
        try await Self.withDepartments(subscribe: false) { departments, hub in
            let (aSQL, bSQL) = (departments.aSQL, departments.bSQL)
            try await aSQL.query("INSERT INTO residents SELECT g, 'v0-' || g, 's' FROM generate_series(1, 3000) g")
            let a = try Subprocess.start([Self.govex, "agent", "--config", departments.aConfig])
            let b = try Subprocess.start([Self.govex, "agent", "--config", departments.bConfig])
            let writer = try await PostgresConnection.connect(departments.bDatabase.conninfo.replacingOccurrences(
                of: departments.bDatabase.name, with: try await aSQL.query("SELECT current_database()").rows[0][0] ?? ""))
            let workload = Task {
                for round in 1...80 {
                    try await writer.query("UPDATE residents SET name = 'v\(round)-' || id WHERE id % 13 = \(round % 13)")
                    try await writer.query("DELETE FROM residents WHERE id = \(round * 7)")
                    try await writer.query("INSERT INTO residents VALUES (\(10_000 + round), 'new\(round)', 's')")
                    try await Task.sleep(for: .milliseconds(40))
                }
            }
            try await Task.sleep(for: .milliseconds(1500))
            let subscribed = try await Subprocess.run([Self.govex, "subscribe", "--resource", "GA-RK-0001", "--config", departments.bConfig])
            #expect(subscribed.status == 0, "\(subscribed.output)")
            try await workload.value
            await writer.close()
            let converged = try await AgentPushTests.eventually {
                try await Self.contents(aSQL, "residents") == Self.contents(bSQL, "shared.residents")
            }
            let (aNow, bNow) = (try await Self.contents(aSQL, "residents"), try await Self.contents(bSQL, "shared.residents"))
            #expect(converged, "A \(aNow), B \(bNow)")
            let bLog = (try? String(contentsOfFile: b.outputPath, encoding: .utf8)) ?? ""
            #expect(bLog.contains("backfill"), "progress of the backfill is visible at B: \(bLog)")
            for process in [a, b] { process.signal(SIGTERM) }
            let (aStopped, bStopped) = (await a.finish(), await b.finish())
            #expect(aStopped.status == 0 && bStopped.status == 0)
            hub.signal(SIGTERM)
            _ = await hub.finish()
        }
    }

    @Test("conditional: B's request waits; A approves with a mask from its agent's command line; B receives masked rows; A revokes")
    func conditionalByCommandLine() async throws {
        try await Self.withDepartments(subscribe: false) { departments, hub in
            let (aSQL, bSQL) = (departments.aSQL, departments.bSQL)
            let catalog = Subprocess.temporaryDirectory("govex-catalog") + "/catalog.toml"
            try """
                [[resource]]
                code = "GA-RK-0001"
                name = "Residents"
                provider = "gongan"
                share = "conditional"
                key = ["id"]
                columns = ["id", "name"]
                """.write(toFile: catalog, atomically: true, encoding: .utf8)
            try await Subprocess.checkAsync([Self.govex, "hub", "catalog", "apply", catalog, "--config", departments.hubConfig])
            try await aSQL.query("INSERT INTO residents SELECT g, '王' || g, 's' FROM generate_series(1, 20) g")
            let a = try Subprocess.start([Self.govex, "agent", "--config", departments.aConfig])
            let b = try Subprocess.start([Self.govex, "agent", "--config", departments.bConfig])

            let asked = try await Subprocess.run([Self.govex, "subscribe", "--resource", "GA-RK-0001", "--config", departments.bConfig])
            #expect(asked.output.contains("is pending"), "\(asked.output)")
            let pending = try await Subprocess.run([Self.govex, "subscriptions", "--pending", "--config", departments.aConfig])
            let id = try #require(pending.output.split(separator: "\n").dropFirst().first?.split(separator: "\t").first.map(String.init), "\(pending.output)")
            #expect(pending.output.contains("minzheng"))
            let refused = try await Subprocess.run([Self.govex, "approve", id, "--reason", "ok", "--mask", "id=keep(1,0)", "--config", departments.aConfig])
            #expect(refused.status == 1 && refused.output.contains("use pseudonym"), "\(refused.output)")
            let approved = try await Subprocess.run([Self.govex, "approve", id, "--reason", "agreement 17", "--mask", "name=keep(1,0)",
                                                     "--config", departments.aConfig])
            #expect(approved.status == 0 && approved.output.contains("is active") && approved.output.contains("name=keep(1,0)"), "\(approved.output)")

            try await aSQL.query("UPDATE residents SET name = '李四' WHERE id = 5")
            #expect(try await AgentPushTests.eventually {
                try await bSQL.query("SELECT count(*) FILTER (WHERE name ~ '^王[*]+$'), count(*) FILTER (WHERE name = '李*') FROM shared.residents").rows[0] == ["19", "1"]
            }, "backfill and stream arrive masked: \((try? String(contentsOfFile: b.outputPath, encoding: .utf8)) ?? "")")

            let revoked = try await Subprocess.run([Self.govex, "revoke", id, "--reason", "agreement ended", "--config", departments.aConfig])
            #expect(revoked.status == 0 && revoked.output.contains("is revoked"), "\(revoked.output)")
            try await aSQL.query("UPDATE residents SET name = '赵六' WHERE id = 6")
            try await Task.sleep(for: .seconds(2))
            #expect(try await bSQL.query("SELECT name FROM shared.residents WHERE id = '6'").rows.first?[0] == "王*", "nothing after the revocation")
            let listed = try await Subprocess.run([Self.govex, "hub", "subscriptions", "--json", "--config", departments.hubConfig])
            #expect(listed.output.contains(#""status":"revoked""#) && listed.output.contains(#""reason":"agreement ended""#), "\(listed.output)")

            for process in [a, b] { process.signal(SIGTERM) }
            _ = (await a.finish(), await b.finish())
            hub.signal(SIGTERM)
            _ = await hub.finish()
        }
    }

    @Test("rotation: agent and hub keys and certificates; batches signed before and after verify; agents learn the hub's new key by endorsement")
    func rotation() async throws {
        try await Self.withDepartments { departments, firstHub in
            var hub = firstHub
            let (aSQL, hubSQL) = (departments.aSQL, departments.hubSQL)
            let a = try Subprocess.start([Self.govex, "agent", "--config", departments.aConfig])
            func log() -> String { (try? String(contentsOfFile: a.outputPath, encoding: .utf8)) ?? "" }
            func hubRows() async throws -> String? {
                try await hubSQL.query("SELECT count(*) FROM govex.resource_rows WHERE resource = 'GA-RK-0001'").rows[0][0]
            }
            try await aSQL.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(1, 10) g")
            #expect(try await AgentPushTests.eventually { try await hubRows() == "10" })

            let signing = try await Subprocess.run([Self.govex, "rotate", "signing", "--config", departments.aConfig])
            #expect(signing.status == 0 && signing.output.contains("registered and installed signing key"), "\(signing.output)")
            let certificate = departments.aDataDir + "/tls/tls.pem"
            let before = try String(contentsOfFile: certificate, encoding: .utf8)
            let tls = try await Subprocess.run([Self.govex, "rotate", "tls", "--config", departments.aConfig])
            #expect(tls.status == 0 && tls.output.contains("renewed the TLS certificate"), "\(tls.output)")
            #expect(try String(contentsOfFile: certificate, encoding: .utf8) != before)
            let keyMode = try FileManager.default.attributesOfItem(atPath: departments.aDataDir + "/tls/tls.key")[.posixPermissions] as? Int
            #expect(keyMode == 0o600)

            a.signal(SIGHUP)
            #expect(try await AgentPushTests.eventually { log().components(separatedBy: "streaming").count == 3 })
            try await aSQL.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(11, 20) g")
            #expect(try await AgentPushTests.eventually { try await hubRows() == "20" }, "pushed with the renewed certificate: \(log())")

            let keyIDs = try await hubSQL.query("SELECT bytes FROM govex.batches").rows.map { row -> String in
                let bytes = Hex.decode(String((row[0] ?? "").dropFirst(2))) ?? []
                return Hex.encode(try BatchFile(bytes: bytes).header.keyID)
            }
            #expect(Set(keyIDs).count == 2, "batches signed with the old key and with the new one")
            #expect(try await hubSQL.query("SELECT bool_and(accepted) FROM govex.batch_index").rows[0][0] == "t")
            #expect(try await hubSQL.query("SELECT count(*) FROM govex.node_keys WHERE node_id = 'gongan'").rows[0][0] == "2")
            #expect(try await hubSQL.query("SELECT count(*) FROM govex.certificates WHERE node_id = 'gongan'").rows[0][0] == "2")
            // The hub's own keys: a new signing key endorsed by the old one, a new TLS certificate; a restart.
            let b = try Subprocess.start([Self.govex, "agent", "--config", departments.bConfig])
            #expect(try await AgentPushTests.eventually {
                try await Self.contents(aSQL, "residents") == Self.contents(departments.bSQL, "shared.residents")
            })
            for what in ["signing", "tls"] {
                let rotated = try await Subprocess.run([Self.govex, "hub", "rotate", what, "--config", departments.hubConfig])
                #expect(rotated.status == 0, "\(rotated.output)")
            }
            hub.signal(SIGTERM)
            _ = await hub.finish()
            hub = try await AgentPushTests.startHub(departments.hubConfig)
            try await aSQL.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(21, 30) g")
            #expect(try await AgentPushTests.eventually { try await hubRows() == "30" }, "receipts under the new hub key verify: \(log())")
            #expect(try await AgentPushTests.eventually {
                try await Self.contents(aSQL, "residents") == Self.contents(departments.bSQL, "shared.residents")
            }, "deliveries under the new hub key verify at B")
            let learned = try FileManager.default.contentsOfDirectory(atPath: departments.aDataDir + "/tls").filter { $0.hasPrefix("hub-signing.") && $0 != "hub-signing.pub" }
            #expect(learned.count == 1, "A learned the endorsed key: \(learned)")
            let audit = try await Subprocess.run([Self.govex, "hub", "audit", "verify", "--anchors", departments.aDataDir + "/anchors", "--config", departments.hubConfig])
            #expect(audit.status == 0, "anchors signed by both hub keys verify: \(audit.output)")

            for process in [a, b] { process.signal(SIGTERM) }
            let (aStopped, bStopped) = (await a.finish(), await b.finish())
            #expect(aStopped.status == 0 && bStopped.status == 0)
            #expect(!aStopped.output.contains("does not verify"), "\(aStopped.output)")
            hub.signal(SIGTERM)
            _ = await hub.finish()
        }
    }
}
