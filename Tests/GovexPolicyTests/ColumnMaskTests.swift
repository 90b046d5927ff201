import GovexPolicy
import GovexTestSupport
import GovexWire
import Testing

@Suite("Column masks and sharing policies")
struct ColumnMaskTests {
    @Test("mask specs parse and print back; bad ones say what is accepted", arguments: ["keep(6,4)", "keep(0,0)", "redact", "null", "pseudonym"])
    func specs(_ spec: String) throws {
        #expect(try ColumnMask(spec: spec).description == spec)
    }

    @Test("bad specs are refused with the accepted forms")
    func badSpecs() {
        for spec in ["keep(6)", "keep(-1,2)", "keep(a,b)", "hide", "keep(40,40)"] {
            #expect(throws: ColumnMask.SpecError.self) { try ColumnMask(spec: spec) }
        }
    }

    @Test("keep counts characters, not bytes; short values are hidden whole; NULL and unchanged stay")
    func keep() throws {
        let mask = try ColumnMask(spec: "keep(6,4)")
        #expect(mask.apply(to: .text("11010519491231002X"), secret: []) == .text("110105********002X"))
        #expect(try ColumnMask(spec: "keep(1,0)").apply(to: .text("欧阳娜娜"), secret: []) == .text("欧***"))
        #expect(mask.apply(to: .text("short"), secret: []) == .text("*****"))
        #expect(mask.apply(to: .int8(13_800_001_111), secret: []) == .text("138000*1111"))
        #expect(mask.apply(to: .null, secret: []) == .null)
        #expect(mask.apply(to: .unchanged, secret: []) == .unchanged)
        #expect(ColumnMask.redact.apply(to: .text("x"), secret: []) == .text("***"))
        #expect(ColumnMask.null.apply(to: .text("x"), secret: []) == .null)
    }

    @Test("pseudonyms are stable under one secret and unrelated under another")
    func pseudonyms() {
        let a = ColumnMask.pseudonym.apply(to: .text("11010519491231002X"), secret: Array(repeating: 1, count: 32))
        #expect(a == ColumnMask.pseudonym.apply(to: .text("11010519491231002X"), secret: Array(repeating: 1, count: 32)))
        #expect(a != ColumnMask.pseudonym.apply(to: .text("11010519491231002X"), secret: Array(repeating: 2, count: 32)))
        #expect(a != ColumnMask.pseudonym.apply(to: .text("110105194912310038"), secret: Array(repeating: 1, count: 32)))
    }

    @Test("a policy drops other resources, columns and rows outside the filter; an update leaving the filter deletes both keys")
    func policy() throws {
        let policy = SharingPolicy(columns: ["id", "district"], filter: try RowFilter.parse("district = 'A'"), masks: ["id": .pseudonym],
                                   secret: [7])
        func record(_ op: ChangeOperation, _ id: Int64, _ district: Value, oldID: Int64? = nil, resource: String = "R") -> ChangeRecord {
            ChangeRecord(operation: op, resource: resource, position: SourcePosition(commit: 1, ordinal: 0), key: [Column("id", .int8(id))],
                         values: [Column("district", district), Column("phone", .text("1"))], oldKey: oldID.map { [Column("id", .int8($0))] })
        }
        let out = try #require(try policy.apply(to: [
            record(.insert, 1, .text("A")), record(.insert, 2, .text("B")), record(.insert, 3, .text("A"), resource: "OTHER"),
            record(.update, 4, .text("B"), oldID: 5), record(.update, 6, .unchanged), record(.delete, 7, .null),
        ], resource: "R"))
        #expect(out.map(\.operation) == [.insert, .delete, .delete, .delete, .delete])
        #expect(out.allSatisfy { $0.values.allSatisfy { $0.name == "district" } })
        let pseudonym = { (id: Int64) in ColumnMask.pseudonym.apply(to: .int8(id), secret: [7]) }
        #expect(out.map { $0.key[0].value } == [pseudonym(1), pseudonym(5), pseudonym(4), pseudonym(6), pseudonym(7)])
        #expect(try SharingPolicy(columns: ["id", "district", "phone"]).apply(to: [record(.insert, 1, .text("A"))], resource: "R") == nil,
                "nothing to change: nil, so the provider's body passes unchanged")
    }

    @Test("a policy that says it leaves a batch unchanged without reading it agrees with apply, over random policies and batches")
    func leavesUnchangedAgreesWithApply() throws {
        var random = SplitMix64(state: 0x5EED_0006)
        let names = ["id", "name", "district", "phone"]
        for round in 0..<400 {
            let resources = ["R", "OTHER"].filter { _ in random.next() % 4 != 0 }.ifEmpty(["R"])
            let records = (0..<Int(random.next() % 6 + 1)).map { index -> ChangeRecord in
                let used = names.dropFirst().filter { _ in random.next() % 3 != 0 }
                return ChangeRecord(operation: random.next() % 2 == 0 ? .insert : .update, resource: resources[index % resources.count],
                                    position: SourcePosition(commit: 1, ordinal: UInt32(index)), key: [Column("id", .int8(Int64(index)))],
                                    values: used.map { Column($0, .text(random.next() % 2 == 0 ? "A" : "B")) })
            }
            let columnNames = Array(Set(records.flatMap { (record: ChangeRecord) in record.key.map(\.name) + record.values.map(\.name) }))
            let policy = SharingPolicy(columns: names.filter { $0 == "id" || random.next() % 4 != 0 },
                                       filter: random.next() % 5 == 0 ? try RowFilter.parse("district = 'A'") : nil,
                                       masks: random.next() % 5 == 0 ? ["id": .pseudonym] : [:], secret: [1])
            if policy.leavesUnchanged(batchResources: resources, columnNames: columnNames, resource: "R") {
                #expect(try policy.apply(to: records, resource: "R") == nil, "round \(round): \(policy) \(records)")
            }
        }
        #expect(SharingPolicy(columns: names).leavesUnchanged(batchResources: ["R"], columnNames: names, resource: "R"))
        #expect(!SharingPolicy(columns: names).leavesUnchanged(batchResources: ["R", "OTHER"], columnNames: names, resource: "R"))
        #expect(!SharingPolicy(columns: ["id"]).leavesUnchanged(batchResources: ["R"], columnNames: names, resource: "R"))
        #expect(!SharingPolicy(columns: names, masks: ["name": .redact]).leavesUnchanged(batchResources: ["R"], columnNames: names, resource: "R"))
    }
}

private extension Array {
    func ifEmpty(_ replacement: [Element]) -> [Element] { isEmpty ? replacement : self }
}
