import GovexPolicy
import GovexTestSupport
import GovexWire
import Testing

/// 一数一源 with three departments: 公安 (gongan) is authoritative for name and birth date,
/// 民政 (minzheng) for marital status, 住建 (zhujian) reports name and marital status too.
@Suite("Golden record merge rules")
struct GoldenMergeTests {
    static let person = GoldenMerge.Subject(code: "person", keyKind: .citizenID, fields: [
        .init(name: "name", authority: "gongan", sources: [.init(resource: "GA-RK-0001", column: "name", node: "gongan"),
                                                            .init(resource: "ZJ-FW-0001", column: "owner_name", node: "zhujian")]),
        .init(name: "birth_date", authority: "gongan", sources: [.init(resource: "GA-RK-0001", column: "birth_date", node: "gongan")]),
        .init(name: "marital_status", authority: "minzheng", sources: [.init(resource: "MZ-HY-0003", column: "marital_status", node: "minzheng"),
                                                                      .init(resource: "ZJ-FW-0001", column: "marital_status", node: "zhujian")]),
    ])
    static let a = "11010519491231002X", b = "440306199003072315", c = "320102198512301237"

    static func row(_ op: ChangeOperation, _ resource: String, _ id: String, _ values: [(String, Value)], ordinal: UInt32 = 0) -> ChangeRecord {
        let keyColumn = resource == "ZJ-FW-0001" ? "owner_id" : "id_number"
        return ChangeRecord(operation: op, resource: resource, position: SourcePosition(commit: 1, ordinal: ordinal),
                            key: [Column(keyColumn, .text(id))], values: values.map { Column($0.0, $0.1) })
    }

    func merge(_ state: inout [String: GoldenMerge.Record], _ node: String, _ records: [ChangeRecord]) -> GoldenMerge.Result {
        let touched = GoldenMerge.touchedKeys(records, subject: Self.person)
        let result = GoldenMerge.merge(records, from: node, subject: Self.person, current: state.filter { touched.contains($0.key) })
        for record in result.records { state[record.key] = record.isEmpty ? nil : record }
        return result
    }

    @Test("each field comes from its authority; each mismatch is exactly one discrepancy; correcting either side resolves it")
    func threeDepartments() {
        var state: [String: GoldenMerge.Record] = [:]
        _ = merge(&state, "gongan", [
            Self.row(.insert, "GA-RK-0001", Self.a, [("name", .text("张秀英")), ("birth_date", .date(-18_263))]),
            Self.row(.insert, "GA-RK-0001", Self.b, [("name", .text("李建国")), ("birth_date", .date(-3_652))], ordinal: 1),
        ])
        _ = merge(&state, "minzheng", [Self.row(.insert, "MZ-HY-0003", Self.a, [("marital_status", .text("已婚"))])])
        let reported = merge(&state, "zhujian", [
            Self.row(.insert, "ZJ-FW-0001", Self.a, [("owner_name", .text("张秀英")), ("marital_status", .text("未婚"))]),
            Self.row(.insert, "ZJ-FW-0001", Self.b, [("owner_name", .text("李建")), ("marital_status", .null)], ordinal: 1),
        ])
        #expect(state[Self.a].map(Self.person.values(of:)) == ["name": "张秀英", "birth_date": "1949-12-31", "marital_status": "已婚"], "zhujian never overwrites")
        #expect(reported.confirmations == 1, "zhujian's name for A agrees")
        let opened = reported.events.compactMap { event -> GoldenMerge.Discrepancy? in if case .opened(let d) = event { d } else { nil } }
        #expect(opened.count == 2, "\(reported.events)")
        #expect(opened.contains { $0.key == Self.a && $0.field == "marital_status" && $0.authority == "minzheng" && $0.authorityValue == "已婚" && $0.reportedValue == "未婚" })
        #expect(opened.contains { $0.key == Self.b && $0.field == "name" && $0.authorityValue == "李建国" && $0.reportedValue == "李建" })

        // Correcting the reporting side resolves; so does the authority changing to agree.
        let fixedByZhujian = merge(&state, "zhujian", [Self.row(.update, "ZJ-FW-0001", Self.b, [("owner_name", .text("李建国")), ("marital_status", .null)])])
        #expect(fixedByZhujian.events.count == 1 && fixedByZhujian.events.allSatisfy { if case .resolved(let d) = $0 { d.key == Self.b } else { false } })
        let fixedByAuthority = merge(&state, "minzheng", [Self.row(.update, "MZ-HY-0003", Self.a, [("marital_status", .text("未婚"))])])
        #expect(fixedByAuthority.events.count == 1 && fixedByAuthority.events.allSatisfy { if case .resolved(let d) = $0 { d.field == "marital_status" } else { false } })
        // A new mismatch from the authority side is an update of nothing: it opens again.
        let changed = merge(&state, "minzheng", [Self.row(.update, "MZ-HY-0003", Self.a, [("marital_status", .text("离异"))])])
        #expect(changed.events.count == 1 && changed.events.allSatisfy { if case .opened(let d) = $0 { d.authorityValue == "离异" } else { false } })
        let moved = merge(&state, "zhujian", [Self.row(.update, "ZJ-FW-0001", Self.a, [("owner_name", .text("张秀英")), ("marital_status", .text("丧偶"))])])
        #expect(moved.events.count == 1 && moved.events.allSatisfy { if case .updated(let d) = $0 { d.reportedValue == "丧偶" } else { false } })
        let deleted = merge(&state, "zhujian", [Self.row(.delete, "ZJ-FW-0001", Self.a, [])])
        #expect(deleted.events.count == 1 && deleted.events.allSatisfy { if case .resolved = $0 { true } else { false } }, "a withdrawn report resolves")
    }

    @Test("a report before the authoritative value opens nothing until the authority disagrees; NULL agrees with NULL")
    func reportFirst() {
        var state: [String: GoldenMerge.Record] = [:]
        #expect(merge(&state, "zhujian", [Self.row(.insert, "ZJ-FW-0001", Self.c, [("owner_name", .text("王芳")), ("marital_status", .null)])]).events.isEmpty)
        let authority = merge(&state, "gongan", [Self.row(.insert, "GA-RK-0001", Self.c, [("name", .text("王 芳")), ("birth_date", .null)])])
        #expect(authority.events.count == 1, "trailing spaces and inner spaces are not trimmed away: a difference is a difference")
        #expect(merge(&state, "minzheng", [Self.row(.insert, "MZ-HY-0003", Self.c, [("marital_status", .null)])]).events.isEmpty)
        #expect(state[Self.c].map(Self.person.values(of:))?["marital_status"] == .some(nil), "NULL is a value of the golden record")
    }

    @Test("invalid identifiers become discrepancies and are not merged; the check character X passes")
    func invalidIdentifiers() {
        var state: [String: GoldenMerge.Record] = [:]
        let result = merge(&state, "zhujian", [
            Self.row(.insert, "ZJ-FW-0001", "110105194912310021", [("owner_name", .text("张"))]),
            Self.row(.insert, "ZJ-FW-0001", "11010519491231002x", [("owner_name", .text("张"))], ordinal: 1),
            Self.row(.insert, "ZJ-FW-0001", Self.a, [("owner_name", .text("张"))], ordinal: 2),
        ])
        let invalid = result.events.compactMap { event -> GoldenMerge.Discrepancy? in if case .opened(let d) = event, d.kind == .invalidIdentifier { d } else { nil } }
        #expect(invalid.map(\.key) == ["110105194912310021", "11010519491231002x"])
        #expect(invalid.allSatisfy { $0.reportingNode == "zhujian" && $0.reason != nil })
        #expect(state.keys.sorted() == [Self.a], "only the valid key is merged")
    }

    @Test("records of resources that feed no field change nothing; a key change moves the report")
    func unrelatedAndKeyChanges() {
        var state: [String: GoldenMerge.Record] = [:]
        #expect(merge(&state, "gongan", [Self.row(.insert, "GA-XX-0009", Self.a, [("name", .text("x"))])]).records.isEmpty)
        _ = merge(&state, "gongan", [Self.row(.insert, "GA-RK-0001", Self.a, [("name", .text("张秀英"))]), Self.row(.insert, "GA-RK-0001", Self.b, [("name", .text("李建国"))], ordinal: 1)])
        _ = merge(&state, "zhujian", [Self.row(.insert, "ZJ-FW-0001", Self.a, [("owner_name", .text("李建国"))])])
        var move = Self.row(.update, "ZJ-FW-0001", Self.b, [("owner_name", .text("李建国"))])
        move.oldKey = [Column("owner_id", .text(Self.a))]
        let moved = merge(&state, "zhujian", [move])
        #expect(moved.events.count == 1 && moved.events.allSatisfy { if case .resolved(let d) = $0 { d.key == Self.a } else { false } })
        #expect(moved.confirmations == 1)
    }

    @Test("a truncate of a source withdraws that department's values and reports, as deletes of every key would; later records apply on top")
    func truncates() {
        var state: [String: GoldenMerge.Record] = [:]
        _ = merge(&state, "gongan", [Self.row(.insert, "GA-RK-0001", Self.a, [("name", .text("张秀英")), ("birth_date", .date(-18_263))])])
        _ = merge(&state, "minzheng", [Self.row(.insert, "MZ-HY-0003", Self.a, [("marital_status", .text("已婚"))])])
        _ = merge(&state, "zhujian", [Self.row(.insert, "ZJ-FW-0001", Self.a, [("owner_name", .text("张秀")), ("marital_status", .text("已婚"))])])
        let truncate = ChangeRecord(operation: .truncate, resource: "ZJ-FW-0001", position: SourcePosition(commit: 2, ordinal: 0))
        #expect(GoldenMerge.truncatesSource([truncate], subject: Self.person))
        #expect(!GoldenMerge.truncatesSource([ChangeRecord(operation: .truncate, resource: "OTHER", position: truncate.position)], subject: Self.person))
        let expanded = GoldenMerge.expandingTruncates([truncate, Self.row(.insert, "ZJ-FW-0001", Self.b, [("owner_name", .text("李建国"))], ordinal: 1)],
                                                      subject: Self.person, keys: Array(state.keys))
        let result = merge(&state, "zhujian", expanded)
        #expect(state[Self.a].map(Self.person.reports(of:))?["name"]?["zhujian"] == nil && state[Self.a].map(Self.person.reports(of:))?["marital_status"]?["zhujian"] == nil, "zhujian's reports withdrawn")
        #expect(state[Self.a].map(Self.person.values(of:))?["name"] == "张秀英", "the authority's values stay")
        #expect(result.events.count == 1 && result.events.allSatisfy { if case .resolved(let d) = $0 { d.field == "name" } else { false } })
        #expect(state[Self.b].map(Self.person.reports(of:))?["name"]?["zhujian"] == "李建国", "what follows the truncate applies")
        let byAuthority = merge(&state, "gongan", GoldenMerge.expandingTruncates([ChangeRecord(operation: .truncate, resource: "GA-RK-0001",
                                                                                               position: truncate.position)],
                                                                                 subject: Self.person, keys: Array(state.keys)))
        #expect(state[Self.a].map(Self.person.values(of:))?["name"] == nil && state[Self.a].map(Self.person.values(of:))?["marital_status"] == "已婚", "only gongan's fields go")
        #expect(byAuthority.events.isEmpty)
    }
}

/// The merger takes the batches waiting as one group: the records must end as merging them
/// one by one leaves them, and the events must be the net change.
@Suite("Golden merge of a group of batches")
struct GoldenGroupMergeTests {
    typealias T = GoldenMergeTests

    @Test("merged in parallel parts: the same records and events as merged whole")
    func parallelParts() async {
        var random = SplitMix64(state: 0x601D)
        // Valid citizen IDs: 17 digits and their GB 11643 check character.
        func citizenID(_ n: Int) -> String {
            let digits = String(n)
            let first17 = Array("1101051980" + String(repeating: "0", count: 7 - digits.count) + digits)
            let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
            let sum = zip(first17, weights).reduce(0) { $0 + Int(String($1.0))! * $1.1 }
            return String(first17) + String(Array("10X98765432")[sum % 11])
        }
        let keys = (0..<300).map(citizenID) + ["110105194912310021"]
        for round in 0..<20 {
            var batches: [GoldenMerge.Batch] = []
            for node in ["gongan", "minzheng", "zhujian", "gongan"] {
                let records = (0..<1_000).map { ordinal -> ChangeRecord in
                    let key = keys.randomElement(using: &random)!
                    let operation: ChangeOperation = Int.random(in: 0..<10, using: &random) == 0 ? .delete : .update
                    let name: Value = Int.random(in: 0..<4, using: &random) == 0 ? .text("x") : .text("v-\(key.suffix(3))")
                    switch node {
                    case "gongan": return T.row(operation, "GA-RK-0001", key, [("name", name)], ordinal: UInt32(ordinal))
                    case "minzheng": return T.row(operation, "MZ-HY-0003", key, [("marital_status", name)], ordinal: UInt32(ordinal))
                    default: return T.row(operation, "ZJ-FW-0001", key, [("owner_name", name), ("marital_status", name)], ordinal: UInt32(ordinal))
                    }
                }
                batches.append(GoldenMerge.Batch(node: node, records: records))
            }
            var current: [String: GoldenMerge.Record] = [:]
            if round % 2 == 1 {
                for record in GoldenMerge.merge(Array(batches.prefix(2)), subject: T.person, current: [:]).records { current[record.key] = record }
            }
            let whole = GoldenMerge.merge(batches, subject: T.person, current: current)
            let parts = await GoldenMerge.mergeInParallel(batches, subject: T.person, current: current, partitions: 3)
            #expect(Dictionary(uniqueKeysWithValues: parts.records.map { ($0.key, $0) }) == Dictionary(uniqueKeysWithValues: whole.records.map { ($0.key, $0) }))
            #expect(parts.records.count == whole.records.count && parts.confirmations == whole.confirmations)
            #expect(Set(parts.events.map { "\($0)" }) == Set(whole.events.map { "\($0)" }) && parts.events.count == whole.events.count)
            #expect(!whole.events.isEmpty)
        }
    }

    @Test("a group ends where merging its batches one by one ends, in any order of departments; events are the net change")
    func groupEqualsOneByOne() {
        var random = SplitMix64(state: 0x5EED)
        let keys = [T.a, T.b, T.c, "110105194912310021"]  // the last fails the check digit
        let names = ["张秀英", "李建国", "王", nil]
        func value() -> Value { names.randomElement(using: &random)!.map { .text($0) } ?? .null }
        func batch(_ node: String) -> GoldenMerge.Batch {
            let records = (0..<Int.random(in: 1...6, using: &random)).map { ordinal -> ChangeRecord in
                let key = keys.randomElement(using: &random)!
                let operation: ChangeOperation = Int.random(in: 0..<5, using: &random) == 0 ? .delete : .update
                switch node {
                case "gongan": return T.row(operation, "GA-RK-0001", key, operation == .delete ? [] : [("name", value())], ordinal: UInt32(ordinal))
                case "minzheng": return T.row(operation, "MZ-HY-0003", key, operation == .delete ? [] : [("marital_status", value())], ordinal: UInt32(ordinal))
                default: return T.row(operation, "ZJ-FW-0001", key, operation == .delete ? [] : [("owner_name", value()), ("marital_status", value())],
                                      ordinal: UInt32(ordinal))
                }
            }
            return GoldenMerge.Batch(node: node, records: records)
        }
        for _ in 0..<300 {
            var state: [String: GoldenMerge.Record] = [:]
            for node in ["gongan", "minzheng", "zhujian"] { _ = GoldenMergeTests().merge(&state, node, batch(node).records) }
            let before = state
            let group = (0..<Int.random(in: 1...5, using: &random)).map { _ in batch(["gongan", "minzheng", "zhujian"].randomElement(using: &random)!) }

            var oneByOne = before
            for batch in group { _ = GoldenMergeTests().merge(&oneByOne, batch.node, batch.records) }
            let grouped = GoldenMerge.merge(group, subject: T.person, current: before)
            var groupedState = before
            for record in grouped.records { groupedState[record.key] = record.isEmpty ? nil : record }
            #expect(groupedState == oneByOne, "group \(group.map(\.node))")

            // Departments' batches in another order (each department's own order kept) end the same.
            let reordered = ["zhujian", "minzheng", "gongan"].flatMap { node in group.filter { $0.node == node } }
            var reorderedState = before
            for record in GoldenMerge.merge(reordered, subject: T.person, current: before).records { reorderedState[record.key] = record.isEmpty ? nil : record }
            #expect(reorderedState == oneByOne)

            // Net events: each mismatch open after the group and not before is opened once, and so on.
            func open(_ state: [String: GoldenMerge.Record]) -> [String: [String??]] {
                var open: [String: [String??]] = [:]
                for record in state.values {
                    for (field, definition) in T.person.fields.enumerated() {
                        let authoritative = record.slots[T.person.authoritySlot[field]]
                        for (node, slot) in T.person.reportSlots[field] {
                            guard let authoritative, let reported = record.slots[slot], authoritative != reported else { continue }
                            open[["mismatch", "person", record.key, definition.name, node].joined(separator: "\u{1F}")] = [authoritative, reported]
                        }
                    }
                }
                return open
            }
            let wasOpen = open(before), isOpen = open(oneByOne)
            var opened = Set<String>(), updated = Set<String>(), resolved = Set<String>()
            for event in grouped.events {
                switch event {
                case .opened(let d) where d.kind == .mismatch: #expect(opened.insert(d.identity).inserted)
                case .updated(let d): #expect(updated.insert(d.identity).inserted)
                case .resolved(let d): #expect(resolved.insert(d.identity).inserted)
                default: break
                }
            }
            #expect(opened == Set(isOpen.keys).subtracting(wasOpen.keys))
            #expect(resolved == Set(wasOpen.keys).subtracting(isOpen.keys))
            #expect(updated == Set(isOpen.keys.filter { wasOpen[$0] != nil && wasOpen[$0] != isOpen[$0] }))
            // The invalid key is reported once per department that sent it.
            let invalid = grouped.events.filter { if case .opened(let d) = $0 { d.kind == .invalidIdentifier } else { false } }
            #expect(invalid.count == Set(group.filter { $0.records.contains { GoldenMerge.keyText($0.key) == keys[3] && $0.operation != .delete } }.map(\.node)).count)
        }
    }
}

