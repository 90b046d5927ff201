import Foundation
import GovexAPI
import GovexHub
import GovexTestSupport
import GovexWire
import Testing

/// The one contract hub, agent and command line share: every error code with one status,
/// documented with it; the typed bodies keep the wire's snake_case names.
@Suite("Hub contract")
struct HubContractTests {
    static var api: String {
        get throws { try String(contentsOfFile: Subprocess.buildDirectory + "/../../../docs/api.md", encoding: .utf8) }
    }

    @Test("every error code is in docs/api.md's table with the status the hub answers it with")
    func documentedCodes() throws {
        let table = try Self.api.components(separatedBy: "## Error codes").last ?? ""
        for code in HubErrorCode.allCases {
            let row = table.split(separator: "\n").first { $0.contains("`\(code.rawValue)`") }
            #expect(row?.contains("| \(code.httpStatus) |") == true, "\(code.rawValue) (\(code.httpStatus)) in the table: \(row ?? "missing")")
        }
        #expect(HubErrorCode.subscription("pending") == .subscriptionPending && HubErrorCode.subscription("odd") == .notLive)
    }

    @Test("typed bodies use the wire's names, and a catalog entry without optional fields decodes")
    func wireNames() throws {
        let view = SubscriptionView(id: 7, subscriber: "minzheng", resource: "GA-RK-0001", columns: ["id"], purpose: "p", status: .active, reason: nil,
                                    requestedAt: "2026-12-03T00:00:00Z", ackedThrough: "2", deliveredThrough: "3", requestedColumns: nil,
                                    filter: nil, masks: ["id": "pseudonym"], decidedBy: "gongan", decidedAt: nil)
        let text = String(decoding: try JSONEncoder().encode(view), as: UTF8.self)
        for name in ["\"acked_through\":\"2\"", "\"delivered_through\":\"3\"", "\"status\":\"active\"", "\"decided_by\":\"gongan\""] {
            #expect(text.contains(name), "\(text)")
        }
        #expect(try JSONDecoder().decode(SubscriptionView.self, from: Data(text.utf8)) == view)
        let entry = try JSONDecoder().decode(CatalogEntry.self, from: Data(#"{"code":"A","name":"a","provider":"p","share":"none","key":["id"],"columns":["id"]}"#.utf8))
        #expect(entry.share == .none && entry.legalBasis == nil)
        #expect(throws: (any Error).self) { try JSONDecoder().decode(CatalogEntry.self, from: Data(#"{"code":"A","name":"a","provider":"p","share":"public","key":[],"columns":[]}"#.utf8)) }
        let enroll = String(decoding: try JSONEncoder().encode(EnrollRequest(node: "n", token: "t", csr: "c", signingKey: "k", signingKeyProof: "p")), as: UTF8.self)
        #expect(enroll.contains("\"signing_key\":\"k\"") && enroll.contains("\"signing_key_proof\":\"p\""))
    }

    @Test("the benchmarks' realistic rows carry exactly the columns their catalog entries list")
    func realisticColumns() {
        var rows = RealisticRows()
        let record = rows.record(ordinal: 0, commit: 1)
        #expect((record.key + record.values).map(\.name) == RealisticRows.columnNames)
    }
}
