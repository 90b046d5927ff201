import Foundation
import GovexAPI
import GovexHub
import GovexPolicy
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// Sharing rules on the golden and feedback paths (issue [1/5], finding 1): a subscriber
/// approved for one district, with the ID number pseudonymised and the name masked, sees
/// through its golden subscription and its discrepancy feedback only that district's
/// subjects, keyed by its own pseudonym.
@Suite("Sharing rules on golden records and feedback")
struct GoldenSharingTests {
    static let catalog = ThreeDepartments.catalog(share: "conditional")
        .replacingOccurrences(of: #"columns = ["id_number", "name", "birth_date"]"#, with: #"columns = ["id_number", "name", "birth_date", "district"]"#)
    static let chaoyang = "11010519491231002X", haidian = "440306199003072315", chaoyang2 = "110101199003074477"

    static func resident(_ key: String, _ name: String, _ district: String) -> (String, [(String, Value)]) {
        (key, [("name", .text(name)), ("birth_date", .date(-3_652)), ("district", .text(district))])
    }

    /// The latest delivery of a subscription, decoded.
    static func latest(_ subscription: Int64, on sql: PostgresConnection) async throws -> (delivery: Int, records: [ChangeRecord]) {
        let row = try #require(try await sql.query("""
            SELECT delivery::text, encode(payload, 'hex') FROM govex.deliveries WHERE subscription_id = $1 ORDER BY delivery DESC LIMIT 1
            """, [String(subscription)]).rows.first)
        return (Int(row[0] ?? "") ?? 0, try BatchFile(bytes: Hex.decode(row[1] ?? "") ?? []).records())
    }

    @Test("a district-limited, pseudonymised approval limits the golden subscription and the feedback to that district, keys pseudonymised")
    func districtAndPseudonym() async throws {
        try await HubStoreTests.withHub { _, sql in
            _ = try await Catalog.load(path: "catalog.toml", text: Self.catalog).apply(on: sql)
            for node in ["minzheng", "zhujian"] {
                try await HubStore.addNode(node, on: sql)
                try await HubStore.registerKey(GoldenStoreTests.keys[node]!.publicKey, for: node, on: sql)
            }
            let store = HubStoreTests.store
            try await GoldenStoreTests.push("gongan", 1, "GA-RK-0001", [Self.resident(Self.chaoyang, "张秀英", "朝阳区"),
                                                                        Self.resident(Self.haidian, "李建国", "海淀区"),
                                                                        Self.resident(Self.chaoyang2, "王芳", "朝阳区")], on: sql)
            // zhujian reports other names for one subject in each district: two discrepancies.
            try await GoldenStoreTests.push("zhujian", 1, "ZJ-FW-0001", [(Self.chaoyang, [("owner_name", .text("张秀")), ("marital_status", .null)]),
                                                                         (Self.haidian, [("owner_name", .text("李建")), ("marital_status", .null)])], on: sql)

            guard case .stored(let residents) = try await store.subscribe(
                node: "zhujian", resource: "GA-RK-0001", columns: ["name", "district"], purpose: "owners in Chaoyang", on: sql) else { throw TestSupportError("not stored") }
            _ = try await store.decide(subscription: residents.id, SubscriptionRules.DecisionRequest(
                decision: "approve", reason: "agreement 7", filter: "district = '朝阳区'", masks: ["id_number": "pseudonym", "name": "keep(1,0)"]),
                by: "gongan", on: sql)
            guard case .stored(let golden) = try await store.subscribe(node: "zhujian", resource: "person", columns: [], purpose: "golden persons", on: sql) else {
                throw TestSupportError("not stored")
            }

            // The resource delivery's pseudonyms are the ones the golden records travel under.
            let secret = Hex.decode(try await sql.query("SELECT encode(secret, 'hex') FROM govex.subscriptions WHERE subscription_id = $1",
                                                        [String(residents.id)]).rows.first?[0] ?? "") ?? []
            func pseudonym(_ key: String) -> String { ColumnMask.pseudonym.apply(to: .text(key), secret: secret).postgresText ?? "" }

            let backfill = try await Self.latest(golden.id, on: sql).records
            #expect(backfill.first?.operation == .truncate)
            let keys = Set(backfill.dropFirst().map { $0.key[0].value.postgresText ?? "" })
            #expect(keys == [pseudonym(Self.chaoyang), pseudonym(Self.chaoyang2)], "only Chaoyang's subjects, keyed by pseudonym: \(backfill)")
            #expect(!keys.contains(Self.chaoyang) && !keys.contains(pseudonym(Self.haidian)))
            #expect(backfill.dropFirst().allSatisfy { $0.values.map(\.name) == ["name"] && ["张**", "王*"].contains($0.values[0].value.postgresText) },
                    "names masked as the approval masks them: \(backfill)")

            // A change in Haidian reaches no one outside; one in Chaoyang arrives under its pseudonym.
            let before = try await Self.latest(golden.id, on: sql).delivery
            try await GoldenStoreTests.push("gongan", 2, "GA-RK-0001", [Self.resident(Self.haidian, "李建民", "海淀区")], on: sql)
            #expect(try await Self.latest(golden.id, on: sql).delivery == before, "a Haidian change must not reach a Chaoyang-only subscriber")
            try await GoldenStoreTests.push("gongan", 3, "GA-RK-0001", [Self.resident(Self.chaoyang2, "王芳芳", "朝阳区")], on: sql)
            let change = try await Self.latest(golden.id, on: sql)
            #expect(change.delivery == before + 1 && change.records.map { $0.key[0].value.postgresText } == [pseudonym(Self.chaoyang2)], "\(change)")

            // Feedback: zhujian holds both subjects itself, but sees gongan's value only where its approval reaches.
            let feedback = try await HubStore.feedback(for: "zhujian", after: 0, limit: 100, on: sql).filter { $0.row.field == "name" }
            let inChaoyang = try #require(feedback.first { $0.row.key == Self.chaoyang })
            #expect(inChaoyang.row.authorityValue == "张**" && inChaoyang.hidden.isEmpty, "\(inChaoyang)")
            let inHaidian = try #require(feedback.first { $0.row.key == Self.haidian })
            #expect(inHaidian.row.authorityValue == nil && inHaidian.hidden == ["authority_value"], "outside the filter: \(inHaidian)")
        }
    }
}
