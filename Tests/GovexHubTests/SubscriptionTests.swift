import Foundation
import GovexAPI
import GovexHub
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// Subscriptions: the share-class rules as a pure function, and the routes over mutual TLS.
@Suite("Subscriptions and delivery routes")
struct SubscriptionTests {
    static let residents = Catalog.Resource(code: "GA-RK-0001", name: "residents", provider: "gongan", share: "unconditional",
                                            key: ["id"], columns: ["id", "name", "address"])

    @Test("unconditional is active at once, conditional pending, none refused with its legal basis; columns are checked, keys kept")
    func rules() {
        func decide(_ resource: Catalog.Resource?, columns: [String] = [], purpose: String = "housing checks", node: String = "minzheng") -> SubscriptionRules.Decision {
            SubscriptionRules.decide(subscriber: node, resourceCode: "GA-RK-0001", resource: resource, columns: columns, purpose: purpose)
        }
        #expect(decide(Self.residents) == .store(status: "active", columns: ["id", "name", "address"]))
        #expect(decide(Self.residents, columns: ["address"]) == .store(status: "active", columns: ["id", "address"]), "the key is always delivered")
        var conditional = Self.residents
        conditional.share = "conditional"
        #expect(decide(conditional, columns: ["name"]) == .store(status: "pending", columns: ["id", "name"]))
        var negative = Self.residents
        negative.share = "none"
        negative.legalBasis = "户籍管理条例 第12条"
        guard case .refuse(.notShareable, let message) = decide(negative) else { Issue.record("none must be refused"); return }
        #expect(message.contains("户籍管理条例 第12条"))
        #expect(decide(nil) == .refuse(code: .unknownResource, message: "GA-RK-0001 is not in the hub's catalog; `govex hub catalog list` shows what is"))
        guard case .refuse(.unknownColumns, let unknown) = decide(Self.residents, columns: ["salary"]) else { Issue.record("unknown column"); return }
        #expect(unknown.contains("salary") && unknown.contains("id, name, address"))
        guard case .refuse(.purposeRequired, _) = decide(Self.residents, purpose: "  ") else { Issue.record("purpose"); return }
        guard case .refuse(.ownResource, _) = decide(Self.residents, node: "gongan") else { Issue.record("own resource"); return }
        guard case .refuse(.duplicateColumns, _) = decide(Self.residents, columns: ["name", "name"]) else { Issue.record("duplicates"); return }
    }

    static func post(_ hub: HubServerTests.Hub, _ path: String, json: String, identity: (certificate: String, key: String)) async throws -> (status: Int, body: String, output: String) {
        try await HubServerTests.curl(hub, path, body: Array(json.utf8), identity: identity)
    }

    @Test("subscribe, long-poll woken by a push, ack; only the subscriber reads its stream; a revoked node's open connection is closed")
    func routes() async throws {
        try await HubServerTests.withHub { hub in
            try await PostgresConnection.with(hub.conninfo) { sql in
                // The pushed sample batch carries the edge-value columns: the catalog lists them all.
                var residents = Self.residents
                residents.columns = EdgeValues.columnNames
                try await Catalog.upsert(residents, on: sql)
                try await HubStore.addNode("minzheng", on: sql)
                try await HubStore.addNode("zhujian", on: sql)
            }
            let gongan = try await HubServerTests.identity(hub, node: "gongan")
            let minzheng = try await HubServerTests.identity(hub, node: "minzheng")
            let zhujian = try await HubServerTests.identity(hub, node: "zhujian")

            let subscribed = try await Self.post(hub, "/v1/subscriptions", json: #"{"resource":"GA-RK-0001","purpose":"housing","columns":["name"]}"#, identity: minzheng)
            #expect(subscribed.status == 200 && subscribed.body.contains(#""status":"active""#), "\(subscribed)")
            let id = try #require(try JSONDecoder().decode([String: AnyCodable].self, from: Data(subscribed.body.utf8))["id"]?.int)
            let again = try await Self.post(hub, "/v1/subscriptions", json: #"{"resource":"GA-RK-0001","purpose":"housing"}"#, identity: minzheng)
            #expect(again.body.contains(#""id":\#(id)"#), "a live subscription is answered again, not duplicated: \(again)")
            let missing = try await Self.post(hub, "/v1/subscriptions", json: #"{"resource":"XX-0000","purpose":"p"}"#, identity: minzheng)
            #expect(missing.status == 404)
            let garbage = try await Self.post(hub, "/v1/subscriptions", json: "[", identity: minzheng)
            #expect(garbage.status == 400)

            // First the backfill: the hub's copy (empty so far) as one snapshot page that starts with a truncate.
            let backfill = try Delivery.unframe(try await HubServerTests.curlGet(hub, "/v1/deliveries?subscription=\(id)&after=0", identity: minzheng))
            let page = try Delivery.verify(try #require(backfill.first), hubKey: VectorKeys.hub.publicKey, subscriptionID: Int64(id)) { _, _ in nil }
            #expect(backfill.count == 1 && page.sequence == 1 && page.originNode == "hub" && page.records.map(\.operation) == [.truncate])

            // A long-poll that starts before the push returns with it, well before its wait ends.
            let started = ContinuousClock.now
            async let polled = HubServerTests.curlGet(hub, "/v1/deliveries?subscription=\(id)&after=1&wait=20", identity: minzheng)
            try await Task.sleep(for: .milliseconds(500))
            let pushed = try await HubServerTests.curl(hub, "/v1/batches", body: try HubStoreTests.batch(1), identity: gongan)
            #expect(pushed.status == 200)
            let delivered = try await polled
            #expect(ContinuousClock.now - started < .seconds(10), "woken by NOTIFY, not by the end of the wait")
            let files = try Delivery.unframe(delivered)
            #expect(files.count == 1)
            let verified = try Delivery.verify(files[0], hubKey: VectorKeys.hub.publicKey, subscriptionID: Int64(id)) { node, _ in
                node == "gongan" ? VectorKeys.gongan.publicKey : nil
            }
            #expect(verified.sequence == 2 && verified.originNode == "gongan" && verified.originSequence == 1)
            #expect(verified.records.allSatisfy { record in record.values.allSatisfy { $0.name == "name" } })

            let foreign = try await HubServerTests.curlStatus(hub, "/v1/deliveries?subscription=\(id)&after=0", identity: zhujian)
            #expect(foreign == 404, "another node cannot read the stream")
            let acked = try await Self.post(hub, "/v1/deliveries/ack", json: #"{"subscription":\#(id),"through":"2"}"#, identity: minzheng)
            #expect(acked.status == 200)
            let tooFar = try await Self.post(hub, "/v1/deliveries/ack", json: #"{"subscription":\#(id),"through":"5"}"#, identity: minzheng)
            #expect(tooFar.status == 409)

            // An open keep-alive connection of a node that gets revoked is closed by the hub.
            let holder = try Subprocess.start(["bash", "-c", """
                openssl s_client -quiet -connect 127.0.0.1:\(hub.port) -CAfile \(hub.directory)/ca.pem -cert \(minzheng.certificate) -key \(minzheng.key) \
                  < <(printf 'GET /v1/subscriptions HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n'; sleep 30) 2>&1
                echo "connection closed"
                """])
            var answered = false
            for _ in 0..<100 where !answered {
                answered = (try? String(contentsOfFile: holder.outputPath, encoding: .utf8))?.contains("GA-RK-0001") == true
                if !answered { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(answered, "the open connection was served")
            let revokedAt = ContinuousClock.now
            #expect(try await PostgresConnection.with(hub.conninfo) { try await HubStore.revoke("minzheng", on: $0) })
            let closed = await holder.finish(within: .seconds(40))
            #expect(closed.output.contains("connection closed") && ContinuousClock.now - revokedAt < .seconds(10), "\(closed.output)")
            let refused = try await Self.post(hub, "/v1/subscriptions", json: #"{"resource":"GA-RK-0001","purpose":"p"}"#, identity: minzheng)
            #expect(refused.status == 403 && refused.body.contains("revoked"))
        }
    }
}

/// Just enough JSON decoding for the test to read an id.
struct AnyCodable: Decodable {
    let int: Int?
    init(from decoder: any Decoder) throws {
        int = try? decoder.singleValueContainer().decode(Int.self)
    }
}
