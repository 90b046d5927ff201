import Foundation
import GovexAPI
import GovexHub
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// The golden record and its discrepancies, written by the ingest transaction on a real
/// hub database, with three departments.
@Suite("Golden records at the hub")
struct GoldenStoreTests {
    static let catalog = ThreeDepartments.catalog(share: "conditional")
    static let keys = ["gongan": VectorKeys.gongan, "minzheng": VectorKeys.ed25519(seed: Array(repeating: 21, count: 32)),
                       "zhujian": VectorKeys.ed25519(seed: Array(repeating: 22, count: 32))]
    static let a = "11010519491231002X", b = "440306199003072315"

    /// Ingests a batch and (unless `merge` is false) lets the golden merger take what waits, as a hub's merger would.
    static func push(_ node: String, _ sequence: UInt64, _ resource: String, _ rows: [(String, [(String, Value)])], merge: Bool = true,
                     on sql: PostgresConnection) async throws {
        let keyColumn = resource == "ZJ-FW-0001" ? "owner_id" : "id_number"
        let records = rows.enumerated().map { index, row in
            ChangeRecord(operation: .insert, resource: resource, position: SourcePosition(commit: 0x100 * sequence, ordinal: UInt32(index)),
                         key: [Column(keyColumn, .text(row.0))], values: row.1.map { Column($0.0, $0.1) })
        }
        var metadata = SampleBatches.metadata(sequence: sequence)
        metadata.nodeID = node
        metadata.nodeEpoch = 7
        let outcome = try await HubStoreTests.store.ingest(try SampleBatches.seal(records, key: keys[node]!, metadata: metadata), from: node, on: sql)
        #expect(try HubStoreTests.receipt(outcome).status == .accepted, "\(String(decoding: outcome.body, as: UTF8.self))")
        if merge { try await GoldenQueue.drain(store: HubStoreTests.store, on: sql) }
    }

    /// The catalog, the three departments, and their overlapping person records: two
    /// mismatches (B's name at zhujian, A's marital status at zhujian) and an invalid ID.
    static func plantThreeDepartments(merge: Bool = true, on sql: PostgresConnection) async throws {
            _ = try await Catalog.load(path: "catalog.toml", text: Self.catalog).apply(on: sql)
            for node in ["minzheng", "zhujian"] {
                try await HubStore.addNode(node, on: sql)
                try await HubStore.registerKey(Self.keys[node]!.publicKey, for: node, on: sql)
            }
            try await Self.push("gongan", 1, "GA-RK-0001", [(Self.a, [("name", .text("张秀英")), ("birth_date", .date(-18_263))]),
                                                            (Self.b, [("name", .text("李建国")), ("birth_date", .date(-3_652))])], merge: merge, on: sql)
            try await Self.push("minzheng", 1, "MZ-HY-0003", [(Self.a, [("marital_status", .text("已婚"))])], merge: merge, on: sql)
            try await Self.push("zhujian", 1, "ZJ-FW-0001", [
                (Self.a, [("owner_name", .text("张秀英")), ("marital_status", .text("未婚"))]),
                (Self.b, [("owner_name", .text("李建")), ("marital_status", .null)]),
                ("440306199003072316", [("owner_name", .text("王")), ("marital_status", .null)]),
            ], merge: merge, on: sql)
    }

    @Test("authorities set the golden record; each planted mismatch is one open discrepancy; invalid IDs are caught; a correction resolves")
    func threeDepartments() async throws {
        try await HubStoreTests.withHub { _, sql in
            try await Self.plantThreeDepartments(on: sql)

            let golden = try await sql.query("""
                SELECT name, birth_date, marital_status, "name@zhujian", "marital_status@zhujian", govex_nulls::text
                FROM govex_golden.person WHERE subject_key = $1
                """, [Self.a]).rows[0]
            #expect(golden == ["张秀英", "1949-12-31", "已婚", "张秀英", "未婚", "{}"], "one column per field and per reporting node")
            let nullReport = try await sql.query(#"SELECT "marital_status@zhujian", govex_nulls::text FROM govex_golden.person WHERE subject_key = $1"#,
                                                 [Self.b]).rows[0]
            #expect(nullReport == [nil, #"{marital_status@zhujian}"#], "a received NULL is told from nothing received")
            let open = try await HubStore.discrepancies(HubStore.DiscrepancyQuery(subject: "person", status: "open", node: nil), on: sql)
            #expect(open.count == 3, "\(open)")
            #expect(open.contains { $0.key == Self.a && $0.field == "marital_status" && $0.authorityValue == "已婚" && $0.reportedValue == "未婚" && $0.reportingNode == "zhujian" })
            #expect(open.contains { $0.key == Self.b && $0.field == "name" && $0.authority == "gongan" && $0.reportedValue == "李建" })
            #expect(open.contains { $0.kind == "invalid_identifier" && $0.key == "440306199003072316" && $0.reason?.contains("GB 11643") == true })
            #expect(try await sql.query("SELECT count(*) FROM govex_golden.person WHERE subject_key = '440306199003072316'").rows[0][0] == "0")
            #expect(try await HubStore.discrepancies(HubStore.DiscrepancyQuery(subject: nil, status: "open", node: "minzheng"), on: sql).count == 1, "minzheng is involved in one")

            try await Self.push("zhujian", 2, "ZJ-FW-0001", [(Self.b, [("owner_name", .text("李建国")), ("marital_status", .null)])], on: sql)
            let after = try await HubStore.discrepancies(HubStore.DiscrepancyQuery(subject: "person", status: nil, node: nil), on: sql)
            #expect(after.filter { $0.status == "open" }.count == 2, "\(after)")
            #expect(after.contains { $0.key == Self.b && $0.status == "resolved" })
        }
    }

    @Test("a golden merge that fails keeps its batches queued for it, but their rows reach the hub's copy; fixed, they merge")
    func failingMergeDoesNotHoldUpTheCopy() async throws {
        try await HubStoreTests.withHub { _, sql in
            try await Self.plantThreeDepartments(merge: false, on: sql)
            // A constraint no golden row can meet (as a DBA's mistake would): the merge fails.
            try await sql.query("ALTER TABLE govex_golden.person ADD CONSTRAINT broken CHECK (subject_key IS NULL) NOT VALID")
            await #expect {
                try await GoldenQueue.drain(store: HubStoreTests.store, on: sql)
            } throws: { error in
                (error as? GoldenQueue.MergeFailure)?.copiedAlone == 3 && "\(error)".contains("broken")
            }
            #expect(try await HubCopy.rows(of: "GA-RK-0001", on: sql).count == 2, "the copy did not wait for the golden merge")
            #expect(try await HubCopy.rows(of: "ZJ-FW-0001", on: sql).count == 3)
            #expect(try await sql.query("SELECT count(*), count(*) FILTER (WHERE copy_pending) FROM govex.golden_queue").rows[0] == ["3", "0"])
            try await sql.query("ALTER TABLE govex_golden.person DROP CONSTRAINT broken")
            #expect(try await GoldenQueue.drain(store: HubStoreTests.store, on: sql).batches == 3)
            #expect(try await sql.query("SELECT name FROM govex_golden.person WHERE subject_key = $1", [Self.a]).rows.first?[0] == "张秀英")
            #expect(try await HubCopy.rows(of: "GA-RK-0001", on: sql).count == 2, "written once")
        }
    }

    @Test("queued batches merged as one group, read back from storage by another hub process, end as merged one by one")
    func mergedAsOneGroup() async throws {
        try await HubStoreTests.withHub { _, sql in
            try await Self.plantThreeDepartments(merge: false, on: sql)
            let queued = try await sql.query("SELECT count(*) FROM govex.golden_queue").rows[0][0]
            #expect(queued == "3", "each accepted batch feeding a subject waits for the merger")
            #expect(try await sql.query("SELECT count(*) FROM govex_golden.person").rows.first?[0] ?? "0" == "0", "nothing merged at ingest")
            // A process that did not ingest them (or restarted) has none in memory: it reads them back.
            let elsewhere = HubStore(hubKey: VectorKeys.hub)
            let drained = try await GoldenQueue.drain(store: elsewhere, on: sql)
            #expect(drained.batches == 3 && drained.records == 6 && drained.missing.isEmpty, "one group")
            #expect(try await sql.query("SELECT count(*) FROM govex.golden_queue").rows[0][0] == "0")
            let golden = try await sql.query("""
                SELECT subject_key, name, birth_date, marital_status, "name@zhujian", "marital_status@zhujian", govex_nulls::text
                FROM govex_golden.person ORDER BY subject_key
                """).rows
            #expect(golden == [["11010519491231002X", "张秀英", "1949-12-31", "已婚", "张秀英", "未婚", "{}"],
                               ["440306199003072315", "李建国", "1990-01-01", nil, "李建", nil, "{marital_status@zhujian}"]])
            let open = try await HubStore.discrepancies(HubStore.DiscrepancyQuery(subject: "person", status: "open", node: nil), on: sql)
            #expect(open.count == 3, "the same three as merged one by one: \(open)")
            #expect(open.contains { $0.key == Self.b && $0.field == "name" && $0.reportedValue == "李建" })

            // A mismatch opened and corrected within one group leaves no discrepancy.
            try await Self.push("zhujian", 2, "ZJ-FW-0001", [(Self.a, [("owner_name", .text("张秀")), ("marital_status", .text("未婚"))])], merge: false, on: sql)
            try await Self.push("zhujian", 3, "ZJ-FW-0001", [(Self.a, [("owner_name", .text("张秀英")), ("marital_status", .text("未婚"))])], merge: false, on: sql)
            #expect(try await GoldenQueue.drain(store: HubStoreTests.store, on: sql).batches == 2)
            let all = try await HubStore.discrepancies(HubStore.DiscrepancyQuery(subject: "person", status: nil, node: nil), on: sql)
            #expect(all.count == 3 && !all.contains { $0.key == Self.a && $0.field == "name" }, "\(all)")
        }
    }

    @Test("feedback: each side sees its own value, the other's only where entitled (and masked as its subscription is), in change order")
    func feedbackEntitlement() async throws {
        try await HubStoreTests.withHub { _, sql in
            try await Self.plantThreeDepartments(on: sql)
            guard case .stored(let golden) = try await HubStoreTests.store.subscribe(
                node: "zhujian", resource: "person", columns: [], purpose: "golden persons", on: sql) else { throw TestSupportError("not stored") }
            #expect(golden.status == "active" && golden.nextDelivery == 2, "backfilled at once: a truncate, and no record zhujian may see")
            guard case .stored(let subscription) = try await HubStoreTests.store.subscribe(
                node: "zhujian", resource: "GA-RK-0001", columns: ["name"], purpose: "owner names", on: sql) else { throw TestSupportError("not stored") }
            _ = try await HubStoreTests.store.decide(subscription: subscription.id, SubscriptionRules.DecisionRequest(
                decision: "approve", reason: "agreement 7", masks: ["name": "keep(1,0)"]), by: "gongan", on: sql)

            // The approval entitles zhujian to gongan's names: its golden subscription is backfilled again, names masked.
            let refreshed = try await sql.query("""
                SELECT encode(payload, 'hex') FROM govex.deliveries WHERE subscription_id = $1 ORDER BY delivery DESC LIMIT 1
                """, [String(golden.id)]).rows.first?[0]
            let page = try BatchFile(bytes: Hex.decode(refreshed ?? "") ?? []).records()
            #expect(page.first?.operation == .truncate && page.count == 3, "\(page)")
            #expect(page.dropFirst().allSatisfy { record in
                record.values.map(\.name) == ["name"] && [Value.text("李**"), .text("张**")].contains(record.values[0].value)
            }, "only the name, masked: no birth date, no marital status")

            let zhujian = try await HubStore.feedback(for: "zhujian", after: 0, limit: 100, on: sql)
            #expect(zhujian.count == 3)
            #expect(zhujian.map(\.row.change) == zhujian.map(\.row.change).sorted(), "oldest change first")
            let name = try #require(zhujian.first { $0.row.field == "name" })
            #expect(name.row.authorityValue == "李**" && name.hidden.isEmpty, "entitled to gongan's name, masked as its subscription is")
            #expect(name.row.reportedValue == "李建", "its own value")
            let marital = try #require(zhujian.first { $0.row.field == "marital_status" })
            #expect(marital.row.authorityValue == nil && marital.hidden == ["authority_value"], "not entitled to minzheng's marital status")
            #expect(marital.row.reportedValue == "未婚")
            let shown = marital.row.json(hidden: marital.hidden)
            #expect(shown.contains(#""authority_value_shown":false"#) && !shown.contains(#""authority_value":"#), "\(shown)")
            #expect(zhujian.contains { $0.row.kind == "invalid_identifier" && $0.hidden.isEmpty })

            let gongan = try await HubStore.feedback(for: "gongan", after: 0, limit: 100, on: sql)
            #expect(gongan.count == 1 && gongan[0].row.authorityValue == "李建国" && gongan[0].row.reportedValue == nil
                    && gongan[0].hidden == ["reported_value"], "the authority learns zhujian differs, not zhujian's value")
            let minzheng = try await HubStore.feedback(for: "minzheng", after: 0, limit: 100, on: sql)
            #expect(minzheng.count == 1 && minzheng[0].row.authorityValue == "已婚" && minzheng[0].hidden == ["reported_value"])
            #expect(try await HubStore.feedback(for: "gongan", after: gongan[0].row.change, limit: 100, on: sql).isEmpty)

            try await Self.push("zhujian", 2, "ZJ-FW-0001", [(Self.b, [("owner_name", .text("李建国")), ("marital_status", .null)])], on: sql)
            let through = zhujian.map(\.row.change).max() ?? 0
            let next = try await HubStore.feedback(for: "zhujian", after: through, limit: 100, on: sql)
            #expect(next.count == 1 && next[0].row.status == "resolved" && next[0].row.field == "name" && next[0].row.resolvedAt != nil,
                    "the correction reaches the feed as the next change")
            #expect(try await HubStore.feedback(for: "gongan", after: gongan[0].row.change, limit: 100, on: sql).count == 1, "both sides hear of it")
        }
    }
}

@Suite("Wake signal")
struct WakeSignalTests {
    @Test("a wake before the wait ends it at once, and only that one: the next waits for its timeout")
    func wakeOnce() async {
        // Upper bounds far below the long timeouts, not tight: a loaded machine schedules late.
        let signal = WakeSignal()
        signal.wake()
        let clock = ContinuousClock()
        let first = await clock.measure { await signal.wait(upTo: .seconds(120)) }
        #expect(first < .seconds(60))
        let second = await clock.measure { await signal.wait(upTo: .milliseconds(300)) }
        #expect(second >= .milliseconds(250), "a stale wake-up (e.g. from the cancelled timer) would end it at once: \(second)")
        let third = await clock.measure {
            Task { try? await Task.sleep(for: .milliseconds(50)); signal.wake() }
            await signal.wait(upTo: .seconds(120))
        }
        #expect(third < .seconds(60), "a wake while waiting ends the wait")
        let fourth = await clock.measure { await signal.wait(upTo: .milliseconds(300)) }
        #expect(fourth >= .milliseconds(250))
    }
}
