import GovexHub
import GovexWire
import Testing

@Suite("Backfill pages")
struct BackfillTests {
    static let resource = Catalog.Resource(code: "GA-RK-0001", name: "residents", provider: "gongan", share: "unconditional",
                                           key: ["id"], columns: ["id", "name", "born", "code"])

    @Test("pages start with a truncate, hold typed rows in catalog order, number records by ordinal per page")
    func pages() throws {
        let rows = (1...5).map { id in
            Backfill.StoredRow(values: ["id": String(id), "name": id == 3 ? nil : "n\(id)", "born": "1990-01-0\(id)", "code": "A1"],
                               types: ["id": "int8", "name": "text", "born": "date", "code": "other:character(2)"])
        }
        let pages = Backfill.pages(of: rows, resource: Self.resource, pageRows: 4)
        #expect(pages.map(\.count) == [4, 2])
        #expect(pages[0][0].operation == .truncate && pages.joined().dropFirst().allSatisfy { $0.operation == .insert })
        #expect(pages.allSatisfy { page in page.map(\.position.ordinal) == Array(0..<UInt32(page.count)) && page.allSatisfy { $0.position.commit == 0 } })
        let first = pages[0][1]
        #expect(first.key == [Column("id", .int8(1))])
        #expect(first.values == [Column("name", .text("n1")), Column("born", .date(-3652)), Column("code", .other(typeName: "character(2)", text: "A1"))])
        #expect(pages[0][3].values[0] == Column("name", .null))
        // A stored text that does not read as its type travels as text; a batch holds all of it.
        let odd = Backfill.pages(of: [Backfill.StoredRow(values: ["id": "x"], types: ["id": "int8"])], resource: Self.resource)
        #expect(odd[0][1].key == [Column("id", .text("x"))])
        var encoder = BatchBodyEncoder()
        for record in pages[0] { try encoder.append(record) }
        #expect(encoder.recordCount == 4)
    }
}
