import Foundation
import GovexAPI
import GovexAgent
import GovexCapture
import Testing

@Suite("Catalog reconciliation")
struct CatalogReconciliationTests {
    static func publish(_ code: String, _ share: String) -> AgentConfiguration.Publish {
        AgentConfiguration.Publish(mapping: TableMapping(resource: code, schema: "public", table: code.lowercased(), key: ["id"]), share: share)
    }

    @Test("a resource the catalog does not give this node is dropped; the catalog's share class wins")
    func reconcile() {
        let catalog = [
            CatalogReconciliation.Entry(code: "A", share: .unconditional, key: ["id"], columns: ["id"]),
            CatalogReconciliation.Entry(code: "B", share: .none, key: ["id"], columns: ["id"]),
        ]
        let (kept, alarms) = CatalogReconciliation.reconcile([Self.publish("A", "unconditional"), Self.publish("B", "conditional"), Self.publish("C", "unconditional")],
                                                            with: catalog)
        #expect(kept.map(\.mapping.resource) == ["A", "B"])
        #expect(kept.map(\.share) == ["unconditional", "none"], "B is on the negative list now: never captured")
        #expect(alarms == [
            "[[publish]] B says share = \"conditional\" but the hub's catalog says \"none\": the catalog's share class applies",
            "[[publish]] C is not a resource this node provides in the hub's catalog: it is not captured",
        ])
    }

    @Test("published columns (after exclude and rename) must be exactly the catalog's, or the agent does not start")
    func columns() {
        let entry = CatalogReconciliation.Entry(code: "GA-RK-0001", share: .unconditional, key: ["id_number"], columns: ["id_number", "name", "domicile"])
        let table = ["id_number", "name", "address", "internal_note"]
        let meant = TableMapping(resource: "GA-RK-0001", schema: "public", table: "residents", key: ["id_number"],
                                 columns: .excluding(["internal_note"]), rename: ["address": "domicile"])
        #expect(CatalogReconciliation.publishedColumns(meant, tableColumns: table) == ["id_number", "name", "domicile"])
        #expect(CatalogReconciliation.columnMismatch(resource: "GA-RK-0001", published: ["id_number", "name", "domicile"], catalog: entry) == nil)
        // The DBA's `exlude` typo (were it not refused at load) would have published everything.
        var typo = meant
        typo.columns = .all
        let mismatch = CatalogReconciliation.columnMismatch(resource: "GA-RK-0001", published: CatalogReconciliation.publishedColumns(typo, tableColumns: table), catalog: entry)
        #expect(mismatch?.hasPrefix("[[publish]] GA-RK-0001 publishes internal_note, which the hub's catalog does not list") == true, "\(mismatch ?? "nil")")
        var unrenamed = meant
        unrenamed.rename = [:]
        let missing = CatalogReconciliation.columnMismatch(resource: "GA-RK-0001", published: CatalogReconciliation.publishedColumns(unrenamed, tableColumns: table), catalog: entry)
        #expect(missing?.contains("publishes address") == true && missing?.contains("does not publish domicile") == true, "\(missing ?? "nil")")
    }
}

@Suite("Certificate expiry warning")
struct ExpiryWarningTests {
    @Test("warned from 30 days ahead; an expired certificate says to enroll again")
    func warning() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(AgentRotation.expiryWarning(notAfter: now + 31 * 86_400, now: now) == nil)
        #expect(AgentRotation.expiryWarning(notAfter: now + 29 * 86_400 + 60, now: now)?.contains("expires in 29 days") == true)
        #expect(AgentRotation.expiryWarning(notAfter: now - 86_400, now: now)?.contains("expired") == true)
    }
}
