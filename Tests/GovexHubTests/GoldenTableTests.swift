import Foundation
@testable import GovexHub
import GovexPolicy
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// The golden table's storage on a real database: columns per slot, received NULLs told
/// apart from nothing received, odd field names, catalog changes, and the take-over of the
/// jsonb records earlier versions kept.
@Suite("Golden tables")
struct GoldenTableTests {
    /// Field names a DBA may well write: spaces, quotes, a backslash, Chinese.
    static let catalogSubject = Catalog.Subject(code: "person", name: "person", keyKind: "text", fields: [
        .init(name: "full name", authority: "a", sources: ["RA.n", "RB.n"]),
        .init(name: #"say "hi"\"#, authority: "a", sources: ["RA.q", "RB.q"]),
        .init(name: "婚姻状况", authority: "b", sources: ["RB.m", "RA.m"]),
    ])
    static let providers = ["RA": "a", "RB": "b"]

    @Test("values, received NULLs and nothing-received survive a round trip, whatever the field names")
    func roundTrip() async throws {
        try await HubStoreTests.withHub { _, sql in
            let table = try await HubStore.goldenTable(Self.catalogSubject, providers: Self.providers, on: sql)
            let subject = table.subject
            #expect(table.columns == ["full name", "full name@b", #"say "hi"\"#, #"say "hi"\@b"#, "婚姻状况", "婚姻状况@a"])
            var one = subject.record(key: "k1", values: ["full name": "张\t三\\", #"say "hi"\"#: String?.none], reports: ["婚姻状况": ["a": String?.none]])
            one.slots[1] = .some("report, with {braces}")
            let two = subject.record(key: #"k "2""#, values: ["婚姻状况": "已婚"])
            try await sql.transaction {
                try await table.write([one, two], before: [:], on: sql)
            }
            let read = try await table.records(keys: ["k1", #"k "2""#, "missing"], on: sql)
            #expect(read.count == 2)
            #expect(read["k1"] == one, "\(String(describing: read["k1"]))")
            #expect(read[#"k "2""#] == two)

            // Only what changed is written; emptied records go.
            var changed = one
            changed.slots[0] = .some("李四")
            let emptied = GoldenMerge.Record(key: two.key, slotCount: subject.slots.count)
            try await sql.transaction {
                try await table.write([changed, emptied], before: read, on: sql)
            }
            let after = try await table.records(keys: ["k1", #"k "2""#], on: sql)
            #expect(after == ["k1": changed])
            #expect(try await table.allRecords(on: sql) == [changed])
        }
    }

    @Test("a catalog change that adds a reporting node adds its column; nothing received yet in it")
    func layoutChange() async throws {
        try await HubStoreTests.withHub { _, sql in
            let before = try await HubStore.goldenTable(Self.catalogSubject, providers: Self.providers, on: sql)
            let record = before.subject.record(key: "k", values: ["full name": "x"])
            try await sql.transaction { try await before.write([record], before: [:], on: sql) }
            var widened = Self.catalogSubject
            widened.fields[0].sources.append("RC.n")
            let after = try await HubStore.goldenTable(widened, providers: Self.providers.merging(["RC": "c"]) { $1 }, on: sql)
            #expect(after.columns.contains("full name@c"))
            let read = try await after.records(keys: ["k"], on: sql)
            #expect(read["k"].map(after.subject.values(of:)) == ["full name": "x"])
            #expect(read["k"]?.slots[after.subject.slot(field: 0, node: "c")!] == nil)
        }
    }

    @Test("records kept as jsonb by earlier versions move into the table when it is first made")
    func adoptsLegacyRecords() async throws {
        try await HubStoreTests.withHub { _, sql in
            try await sql.query("""
                INSERT INTO govex.golden_records (subject, key, row_values, reports) VALUES
                ('person', 'k', '{"full name": "x", "婚姻状况": null}', '{"full name": {"b": "y"}, "婚姻状况": {"a": "未婚"}}')
                """)
            let table = try await HubStore.goldenTable(Self.catalogSubject, providers: Self.providers, on: sql)
            let read = try await table.records(keys: ["k"], on: sql)
            let expected = table.subject.record(key: "k", values: ["full name": "x", "婚姻状况": String?.none],
                                                reports: ["full name": ["b": "y"], "婚姻状况": ["a": "未婚"]])
            #expect(read["k"] == expected)
            #expect(try await sql.query("SELECT count(*) FROM govex.golden_records").rows[0][0] == "0")
        }
    }

    @Test("array literals: quoted elements, escapes, commas inside quotes")
    func arrayElements() {
        #expect(GoldenTable.arrayElements("{}") == [])
        #expect(GoldenTable.arrayElements(#"{a,"b c","d\"e","f,g"}"#) == ["a", "b c", #"d"e"#, "f,g"])
        var literal: [UInt8] = []
        GoldenTable.appendArrayElement(#"x"y\z"#, to: &literal)
        #expect(GoldenTable.arrayElements("{" + String(decoding: literal, as: UTF8.self) + "}") == [#"x"y\z"#])
    }

    @Test("names PostgreSQL would cut are refused, naming what to shorten")
    func longNames() async throws {
        try await HubStoreTests.withHub { _, sql in
            let subject = Catalog.Subject(code: "person", name: "p", keyKind: "text", fields: [
                .init(name: String(repeating: "f", count: 40), authority: "a", sources: ["RA.n", "RB.n"]),
            ])
            let providers = ["RA": "a", "RB": String(repeating: "n", count: 30)]
            await #expect(throws: GoldenTableError.self) { _ = try await HubStore.goldenTable(subject, providers: providers, on: sql) }
        }
    }
}
