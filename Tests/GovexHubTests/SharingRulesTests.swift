import Foundation
import GovexAPI
import GovexHub
import GovexPolicy
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// Conditional sharing on a real hub database: nothing until approved, then exactly the
/// approved columns and rows, masked and pseudonymised, and nothing after revocation.
@Suite("Sharing rules")
struct SharingRulesTests {
    static let people = Catalog.Resource(code: "GA-RK-0002", name: "people", provider: "gongan", share: "conditional",
                                         key: ["id_number"], columns: ["id_number", "name", "district", "phone"])

    static func person(_ op: ChangeOperation, _ id: String, _ name: String, _ district: String, _ phone: String, ordinal: UInt32) -> ChangeRecord {
        ChangeRecord(operation: op, resource: people.code, position: SourcePosition(commit: 0x100 * UInt64(ordinal + 1), ordinal: 0),
                     key: [Column("id_number", .text(id))],
                     values: [Column("name", .text(name)), Column("district", .text(district)), Column("phone", .text(phone))])
    }

    static func batch(_ sequence: UInt64, _ records: [ChangeRecord]) throws -> [UInt8] {
        var metadata = SampleBatches.metadata(sequence: sequence)
        metadata.nodeEpoch = 7
        return try SampleBatches.seal(records, key: VectorKeys.gongan, metadata: metadata)
    }

    static func deliveries(_ id: Int64, node: String, after: UInt64 = 0, on sql: PostgresConnection) async throws -> HubStore.DeliveriesOutcome {
        try await HubStoreTests.store.deliveries(subscription: id, for: node, after: after, limit: 100, maxBytes: 1 << 30, on: sql)
    }

    static func verified(_ outcome: HubStore.DeliveriesOutcome, subscription: Int64) throws -> [(file: [UInt8], delivery: Delivery.Verified)] {
        guard case .deliveries(let files) = outcome else { throw TestSupportError("refused: \(outcome)") }
        return try files.map { file in
            (file, try Delivery.verify(file, hubKey: VectorKeys.hub.publicKey, subscriptionID: subscription) { node, _ in
                node == "gongan" ? VectorKeys.gongan.publicKey : nil
            })
        }
    }

    func subscribe(_ node: String, on sql: PostgresConnection) async throws -> Subscription {
        guard case .stored(let subscription) = try await HubStoreTests.store.subscribe(node: node, resource: Self.people.code, columns: [],
                                                                          purpose: "housing subsidy checks", on: sql) else {
            throw TestSupportError("not stored")
        }
        return subscription
    }

    @Test("pending delivers nothing; approval narrows columns, filters rows, masks and pseudonymises; revocation stops it at once")
    func conditionalLifecycle() async throws {
        try await HubStoreTests.withHub { _, sql in
            try await Catalog.upsert(Self.people, on: sql)
            for node in ["minzheng", "zhujian"] { try await HubStore.addNode(node, on: sql) }
            let minzheng = try await subscribe("minzheng", on: sql)
            #expect(minzheng.status == "pending")
            _ = try await HubStoreTests.store.ingest(try Self.batch(1, [
                Self.person(.insert, "110105199001011234", "张伟", "朝阳区", "13800001111", ordinal: 0),
            ]), from: "gongan", on: sql)
            guard case .refused(.subscriptionPending, _) = try await Self.deliveries(minzheng.id, node: "minzheng", on: sql) else {
                Issue.record("a pending subscription must deliver nothing")
                return
            }

            let approve = { (masks: [String: String]) in
                SubscriptionRules.DecisionRequest(decision: "approve", reason: "agreement 2026-17", columns: ["name", "district"],
                                                  filter: "district = '朝阳区'", masks: masks)
            }
            guard case .refused(.notProvider, _) = try await HubStoreTests.store.decide(subscription: minzheng.id, approve([:]), by: "zhujian", on: sql) else {
                Issue.record("only the provider decides")
                return
            }
            guard case .refused(.badMask, let why) = try await HubStoreTests.store.decide(subscription: minzheng.id, approve(["id_number": "keep(6,4)"]),
                                                                                       by: "gongan", on: sql) else {
                Issue.record("a key column cannot be masked")
                return
            }
            #expect(why.contains("use pseudonym"))
            guard case .decided(let approved) = try await HubStoreTests.store.decide(
                subscription: minzheng.id, approve(["id_number": "pseudonym", "name": "keep(1,0)"]), by: "gongan", on: sql) else {
                Issue.record("the provider approves")
                return
            }
            #expect(approved.status == "active" && approved.columns == ["id_number", "name", "district"] && approved.decidedBy == "gongan")
            #expect(approved.reason == "agreement 2026-17" && approved.decidedAt != nil)

            let zhujian = try await subscribe("zhujian", on: sql)
            _ = try await HubStoreTests.store.decide(subscription: zhujian.id, SubscriptionRules.DecisionRequest(
                decision: "approve", reason: "r", masks: ["id_number": "pseudonym"]), by: SubscriptionRules.hubAdministrator, on: sql)

            _ = try await HubStoreTests.store.ingest(try Self.batch(2, [
                Self.person(.insert, "110105199202022345", "李娜", "朝阳区", "13900002222", ordinal: 1),
                Self.person(.insert, "110108198503033456", "王强", "海淀区", "13700003333", ordinal: 2),
                Self.person(.update, "110105199001011234", "张伟", "海淀区", "13800001111", ordinal: 3),
            ]), from: "gongan", on: sql)
            _ = try await HubStoreTests.store.ingest(try Self.batch(3, [
                Self.person(.update, "110105199202022345", "李娜娜", "朝阳区", "13900002222", ordinal: 4),
            ]), from: "gongan", on: sql)

            let all = try Self.verified(try await Self.deliveries(minzheng.id, node: "minzheng", on: sql), subscription: minzheng.id)
            #expect(all.count == 3, "the backfill made at approval, then batches 2 and 3")
            let backfill = all[0].delivery
            #expect(backfill.originNode == "hub" && backfill.records.map(\.operation) == [.truncate, .insert], "张伟, from batch 1, is the state")
            #expect(backfill.records.last?.values == [Column("name", .text("张*")), Column("district", .text("朝阳区"))])
            let received = Array(all.dropFirst())
            let records = received.flatMap(\.delivery.records)
            #expect(records.map(\.operation) == [.insert, .delete, .update], "王强 is outside the filter; 张伟 left it")
            #expect(records[1].key == backfill.records[1].key, "the pseudonym of 张伟's ID is the one the backfill used")
            #expect(records.allSatisfy { $0.values.allSatisfy { $0.name != "phone" } }, "phone was not approved")
            #expect(records[0].values.first { $0.name == "name" }?.value == .text("李*"))
            #expect(records[2].values.first { $0.name == "name" }?.value == .text("李**"))
            let pseudonym = records[0].key[0].value
            #expect(records[2].key[0].value == pseudonym, "stable across batches")
            guard case .text(let text) = pseudonym else { Issue.record("a pseudonym is text"); return }
            #expect(text.count == ColumnMask.pseudonymLength && !text.contains("110105"))
            for (file, _) in all {
                let body = try BatchFile(bytes: file).decompressedBody()
                for clear in ["李娜", "张伟", "王强", "110105199202022345", "110105199001011234", "13900002222", "13800001111"] {
                    #expect(!file.contains(subsequence: Array(clear.utf8)) && !body.contains(subsequence: Array(clear.utf8)),
                            "\(clear) appears in clear in a delivery")
                }
            }
            let other = try Self.verified(try await Self.deliveries(zhujian.id, node: "zhujian", on: sql), subscription: zhujian.id)
            let otherRecord = other.flatMap(\.delivery.records).first { $0.operation == .insert && $0.values.contains { $0.value == .text("李娜") } }
            #expect(otherRecord != nil && otherRecord?.key[0].value != pseudonym, "another subscription gets another pseudonym")
            #expect(otherRecord?.values.contains { $0.name == "phone" } == true, "zhujian's approval did not narrow columns")

            guard case .decided(let revoked) = try await HubStoreTests.store.decide(
                subscription: minzheng.id, SubscriptionRules.DecisionRequest(decision: "revoke", reason: "agreement ended"), by: "gongan", on: sql) else {
                Issue.record("the provider revokes")
                return
            }
            #expect(revoked.status == "revoked")
            guard case .refused(.subscriptionRevoked, _) = try await Self.deliveries(minzheng.id, node: "minzheng", on: sql) else {
                Issue.record("a revoked subscription delivers nothing, not even what was routed before")
                return
            }
            _ = try await HubStoreTests.store.ingest(try Self.batch(4, [Self.person(.insert, "110105200001014567", "赵六", "朝阳区", "1", ordinal: 5)]),
                                                     from: "gongan", on: sql)
            #expect(try await sql.query("SELECT count(*) FROM govex.deliveries WHERE subscription_id = $1", [String(minzheng.id)]).rows[0][0] == "3")
        }
    }

    @Test("new terms re-backfill: the state again, under the new mask, after a truncate; unchanged terms do not")
    func newTermsBackfillAgain() async throws {
        try await HubStoreTests.withHub { _, sql in
            try await Catalog.upsert(Self.people, on: sql)
            try await HubStore.addNode("minzheng", on: sql)
            _ = try await HubStoreTests.store.ingest(try Self.batch(1, [
                Self.person(.insert, "110105199001011234", "张伟", "朝阳区", "13800001111", ordinal: 0),
                Self.person(.insert, "110105199202022345", "李娜", "海淀区", "13900002222", ordinal: 1),
            ]), from: "gongan", on: sql)
            let subscription = try await subscribe("minzheng", on: sql)
            func approve(_ masks: [String: String]) async throws {
                _ = try await HubStoreTests.store.decide(subscription: subscription.id, SubscriptionRules.DecisionRequest(
                    decision: "approve", reason: "r", masks: masks), by: "gongan", on: sql)
            }
            try await approve(["name": "keep(1,0)"])
            try await approve(["name": "keep(1,0)"])
            try await approve(["name": "redact"])
            let pages = try Self.verified(try await Self.deliveries(subscription.id, node: "minzheng", on: sql), subscription: subscription.id)
            #expect(pages.count == 2, "one backfill per change of terms")
            let names = pages.map { page in page.delivery.records.compactMap { $0.values.first { $0.name == "name" }?.value } }
            #expect(names == [[.text("张*"), .text("李*")], [.text("***"), .text("***")]])
            #expect(pages.allSatisfy { $0.delivery.records.first?.operation == .truncate })
            #expect(pages[1].delivery.records.first { $0.operation == .insert }?.values.first { $0.name == "phone" }?.value == .text("13800001111"),
                    "types and values come back from the hub's copy")
        }
    }

    @Test("a resource of share class none is refused, citing its legal basis")
    func negativeList() async throws {
        try await HubStoreTests.withHub { _, sql in
            try await Catalog.upsert(Catalog.Resource(code: "GA-AJ-0001", name: "case files", provider: "gongan", share: "none",
                                                      legalBasis: "《公安机关办理刑事案件程序规定》第 46 条", key: ["case_id"], columns: ["case_id"]), on: sql)
            try await HubStore.addNode("minzheng", on: sql)
            let outcome = try await HubStoreTests.store.subscribe(node: "minzheng", resource: "GA-AJ-0001", columns: [], purpose: "p", on: sql)
            guard case .refused(.notShareable, let message) = outcome else { Issue.record("must be refused"); return }
            #expect(message.contains("第 46 条"))
        }
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { self[$0..<($0 + subsequence.count)].elementsEqual(subsequence) }
    }
}
