import GovexHub
import GovexPolicy
import GovexWire
import Testing

/// What a golden-subject subscriber receives, without a database.
@Suite("Golden deliveries")
struct GoldenDeliveriesTests {
    static let subject = Catalog.Subject(code: "person", name: "自然人", keyKind: "citizen_id", fields: [
        .init(name: "name", authority: "gongan", sources: ["GA-RK-0001.name"]),
        .init(name: "birth_date", authority: "gongan", sources: ["GA-RK-0001.birth_date"]),
        .init(name: "marital_status", authority: "minzheng", sources: ["MZ-HY-0003.marital_status"]),
    ])
    static let providers = ["GA-RK-0001": "gongan", "MZ-HY-0003": "minzheng"]

    func entitlement(_ viewer: String, _ grants: [DiscrepancyFeedback.Grant]) -> DiscrepancyFeedback.Entitlement {
        DiscrepancyFeedback.Entitlement(viewer: viewer, providers: Self.providers, grants: grants, subjects: ["person": Self.subject])
    }

    static let merged = HubStore.mergeSubject(subject, providers: providers)
    static let record = merged.record(key: "11010519491231002X", values: ["name": "张秀英", "birth_date": "1949-12-31", "marital_status": "已婚"])

    @Test("fields only through the subscriber's own subscriptions to their authorities' resources, masked as those mask them")
    func entitledFields() throws {
        let grants = [DiscrepancyFeedback.Grant(resource: "GA-RK-0001", columns: ["id_number", "name"], masks: ["name": try ColumnMask(spec: "keep(1,0)")])]
        let records = GoldenDeliveries.records(for: [Self.record], subject: Self.merged, columns: ["subject_key", "name", "birth_date", "marital_status"],
                                               entitlement: entitlement("zhujian", grants))
        #expect(records.count == 1)
        #expect(records[0].key == [Column("subject_key", .text("11010519491231002X"))])
        #expect(records[0].values == [Column("name", .text("张**"))], "no birth date (column not granted), no marital status (no grant)")
        let own = GoldenDeliveries.records(for: [Self.record], subject: Self.merged, columns: ["subject_key", "marital_status"],
                                           entitlement: entitlement("minzheng", []))
        #expect(own.first?.values == [Column("marital_status", .text("已婚"))], "an authority sees its own fields; the subscription's columns narrow")
    }

    @Test("a source approval's row filter limits which subjects are seen; its key pseudonym is the key the record travels under")
    func filterAndPseudonym() throws {
        let other = Self.merged.record(key: "440306199003072315", values: ["name": "李建国"])
        let policy = SharingPolicy(columns: ["id_number", "name", "district"], filter: try RowFilter.parse("district = '朝阳区'"),
                                   masks: ["id_number": .pseudonym], secret: Array(repeating: 5, count: 32))
        var viewer = entitlement("zhujian", [DiscrepancyFeedback.Grant(resource: "GA-RK-0001", policy: policy)])
        viewer.keys = ["GA-RK-0001": ["id_number"], "MZ-HY-0003": ["id_number"]]
        let rows: DiscrepancyFeedback.SourceRows = ["GA-RK-0001": [
            Self.record.key: [Column("id_number", .text(Self.record.key)), Column("district", .text("朝阳区"))],
            other.key: [Column("id_number", .text(other.key)), Column("district", .text("海淀区"))],
        ]]
        let records = GoldenDeliveries.records(for: [Self.record, other], subject: Self.merged, columns: ["name"], entitlement: viewer, sourceRows: rows)
        let pseudonym = ColumnMask.pseudonym.apply(to: .text(Self.record.key), secret: policy.secret)
        #expect(records.map(\.key) == [[Column("subject_key", pseudonym)]], "only the Chaoyang subject, under the approval's pseudonym: \(records)")
        #expect(GoldenDeliveries.records(for: [Self.record], subject: Self.merged, columns: ["name"], entitlement: viewer).isEmpty,
                "a row the hub does not hold does not pass a filter")
    }

    @Test("a subscriber entitled to nothing gets not even the key; one that was entitled before gets a delete")
    func nothingVisible() {
        let nobody = entitlement("zhujian", [])
        #expect(GoldenDeliveries.records(for: [Self.record], subject: Self.merged, columns: ["name"], entitlement: nobody).isEmpty)
        let grants = [DiscrepancyFeedback.Grant(resource: "GA-RK-0001", columns: ["name"])]
        let emptied = Self.merged.record(key: Self.record.key, values: ["marital_status": "已婚"])
        let records = GoldenDeliveries.records(for: [emptied], before: [Self.record.key: Self.record], subject: Self.merged, columns: ["name"],
                                               entitlement: entitlement("zhujian", grants))
        #expect(records.map(\.operation) == [.delete], "the name it held is gone")
    }
}
