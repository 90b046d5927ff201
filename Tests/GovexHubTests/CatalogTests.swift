import Foundation
import GovexHub
import GovexPostgres
import GovexTestSupport
import Testing

@Suite("Catalog")
struct CatalogTests {
    static var example: String {
        get throws { try String(contentsOfFile: Subprocess.buildDirectory + "/../../../Deploy/catalog.example.toml", encoding: .utf8) }
    }

    @Test("the example catalog loads: resources, the negative list with its legal basis, subjects with their authorities")
    func example() throws {
        let catalog = try Catalog.load(path: "catalog.toml", text: try Self.example)
        #expect(catalog.resources.map(\.code) == ["GA-RK-0001", "MZ-HY-0003", "GA-XX-0009"])
        #expect(catalog.resources[2].share == "none" && catalog.resources[2].legalBasis?.isEmpty == false)
        #expect(catalog.subjects.first?.fields.map(\.authority) == ["gongan", "minzheng"])
    }

    @Test("mistakes name the file, line and key", arguments: [
        ("[[resource]]\ncode = \"A\"\nname = \"a\"\nprovider = \"p\"\nshare = \"none\"\nkey = [\"id\"]\ncolumns = [\"id\"]\n",
         "catalog.toml:1: [resource]#0 legal_basis: a resource that may not be shared (share = none) must cite its legal basis"),
        ("[[resource]]\ncode = \"A\"\nname = \"a\"\nprovider = \"p\"\nshare = \"public\"\n", "catalog.toml:5: [resource]#0 share: 'public' is not one of"),
        ("[[resource]]\ncode = \"A\"\nname = \"a\"\nprovider = \"p\"\nshare = \"conditional\"\nkey = [\"id\"]\ncolumns = [\"name\"]\n",
         "catalog.toml:6: [resource]#0 key: key column id is not in columns"),
        ("[[subject]]\ncode = \"person\"\nname = \"p\"\nkey_kind = \"citizen_id\"\n[[subject.field]]\nname = \"n\"\nauthority = \"gongan\"\nsources = [\"X.name\"]\n",
         "catalog.toml:8: [subject.field]#0 sources: field n: 'X.name' must be RESOURCE.column of a resource in this catalog"),
    ])
    func mistakes(text: String, expected: String) {
        #expect { _ = try Catalog.load(path: "catalog.toml", text: text) } throws: { "\($0)".hasPrefix(expected) }
    }

    @Test("the plan lists additions, changes and removals")
    func plan() throws {
        let desired = try Catalog.load(path: "catalog.toml", text: try Self.example)
        var current = desired
        current.resources[0].share = "conditional"
        current.resources.remove(at: 1)
        current.resources.append(Catalog.Resource(code: "OLD-1", name: "old", provider: "p", share: "unconditional", key: ["id"], columns: ["id"]))
        #expect(Catalog.plan(from: current, to: desired) == [
            "~ resource GA-RK-0001: share conditional → unconditional",
            "+ resource MZ-HY-0003 婚姻登记信息 (provider minzheng, share conditional)",
            "- resource OLD-1 old",
        ])
        #expect(Catalog.plan(from: desired, to: desired).isEmpty)
    }

    @Test("apply is declarative and idempotent on the hub's database")
    func apply() async throws {
        try await HubStoreTests.withHub { _, sql in
            let catalog = try Catalog.load(path: "catalog.toml", text: try Self.example)
            let first = try await catalog.apply(on: sql, dryRun: true)
            #expect(first.contains("- resource MZ-HY-0003 marriages") == false && first.contains { $0.hasPrefix("~ resource MZ-HY-0003") })
            #expect(try await Catalog.read(on: sql).resources.count == 2, "a dry run changes nothing")
            _ = try await catalog.apply(on: sql)
            let stored = try await Catalog.read(on: sql)
            #expect(stored.resources == catalog.resources.sorted { $0.code < $1.code } && stored.subjects == catalog.subjects)
            #expect(try await catalog.apply(on: sql).isEmpty, "the second apply changes nothing")
        }
    }
}
