import GovexHub
import GovexWire
import Testing

@Suite("Backfill pages")
struct BackfillTests {
    static let resource = Catalog.Resource(code: "GA-RK-0001", name: "residents", provider: "gongan", share: "unconditional",
                                           key: ["id"], columns: ["id", "name", "born", "code"])

    @Test("pages start with a truncate, hold typed rows in catalog order, number records by ordinal per page")
    func pages() throws {
        let rows = (1...5).map { (id: Int) -> HubCopy.Row in
            // Stored in any column order; "code" missing from row 5 (a column added to the catalog later).
            var columns = [Column("born", .date(Int32(-3653 + id))), Column("id", .int8(Int64(id))),
                           Column("name", id == 3 ? .null : .text("n\(id)"))]
            if id != 5 { columns.append(Column("code", .other(typeName: "character(2)", text: "A1"))) }
            return HubCopy.Row(key: "[\"\(id)\"]", columns: columns)
        }
        let pages = Backfill.pages(of: rows, resource: Self.resource, pageRows: 4)
        #expect(pages.map(\.count) == [4, 2])
        #expect(pages[0][0].operation == .truncate && pages.joined().dropFirst().allSatisfy { $0.operation == .insert })
        #expect(pages.allSatisfy { page in page.map(\.position.ordinal) == Array(0..<UInt32(page.count)) && page.allSatisfy { $0.position.commit == 0 } })
        let first = pages[0][1]
        #expect(first.key == [Column("id", .int8(1))])
        #expect(first.values == [Column("name", .text("n1")), Column("born", .date(-3652)), Column("code", .other(typeName: "character(2)", text: "A1"))])
        #expect(pages[0][3].values[0] == Column("name", .null))
        #expect(pages[1][1].values[2] == Column("code", .null), "a column the stored row lacks travels as NULL")
        var encoder = BatchBodyEncoder()
        for record in pages[0] { try encoder.append(record) }
        #expect(encoder.recordCount == 4)
    }
}
