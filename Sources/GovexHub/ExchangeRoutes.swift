import Foundation
import GovexAPI
import GovexPostgres
import GovexWire
import Hummingbird
import NIOCore
import ServiceLifecycle

/// Subscriptions, delivery streams and provider keys (see docs/api.md).
extension HubServer {
    public static let maxWaitSeconds = 30
    public static let maxDeliveriesPerResponse = 256
    public static let deliveryResponseBytes = 32 << 20

    typealias Authenticated = @Sendable (HubRequestContext, (String) async throws -> Response) async throws -> Response

    func addExchangeRoutes(to router: Router<HubRequestContext>, authenticated: @escaping Authenticated) {
        let store = self.store, pool = self.pool, wakeups = self.wakeups

        router.post(RouterPath(HubRoute.subscriptions)) { request, context -> Response in
            try await authenticated(context) { node in
                let bytes = try await request.body.collect(upTo: 64 << 10)
                guard let body = try? JSONDecoder().decode(SubscriptionRequest.self, from: Data(Array(buffer: bytes))) else {
                    return Self.error(.badRequest, "expected JSON {resource, purpose, columns?}")
                }
                let outcome = try await pool.withConnection { sql in
                    try await store.subscribe(node: node, resource: body.resource, columns: body.columns ?? [], purpose: body.purpose, on: sql)
                }
                switch outcome {
                case .stored(let subscription):
                    HubLog.write(5, "node \(node) requested subscription \(subscription.id) to \(body.resource): \(subscription.view.status)")
                    return try Self.encoded(subscription.view)
                case .refused(let code, let message):
                    return Self.error(code, message)
                }
            }
        }

        // The provider of the subscribed resource approves, narrows, rejects or revokes.
        router.post(RouterPath(HubRoute.decisionPattern)) { request, context -> Response in
            try await authenticated(context) { node in
                guard let id = context.parameters.get("id").flatMap({ Int64($0) }) else {
                    return Self.error(.badRequest, "the subscription id must be a number")
                }
                let bytes = try await request.body.collect(upTo: 64 << 10)
                guard let body = try? JSONDecoder().decode(DecisionRequest.self, from: Data(Array(buffer: bytes))) else {
                    return Self.error(.badRequest, "expected JSON {decision: approve|reject|revoke, reason, columns?, filter?, masks?}")
                }
                let decision = SubscriptionRules.DecisionRequest(decision: body.decision.rawValue, reason: body.reason, columns: body.columns,
                                                                 filter: body.filter, masks: body.masks ?? [:])
                switch try await pool.withConnection({ sql in try await store.decide(subscription: id, decision, by: node, on: sql) }) {
                case .decided(let subscription):
                    HubLog.write(5, "node \(node) decided subscription \(id): \(body.decision.rawValue), now \(subscription.view.status)")
                    return try Self.encoded(subscription.view)
                case .refused(let code, let message):
                    return Self.error(code, message)
                }
            }
        }

        router.get(RouterPath(HubRoute.subscriptions)) { _, context -> Response in
            try await authenticated(context) { node in
                let list = try await pool.withConnection { sql in try await HubStore.subscriptions(of: node, on: sql) }
                return try Self.encoded(list.map(\.view))
            }
        }

        router.get(RouterPath(HubRoute.deliveries)) { request, context -> Response in
            try await authenticated(context) { node in
                let query = request.uri.queryParameters
                guard let subscription = query["subscription"].flatMap({ Int64(String($0)) }) else {
                    return Self.error(.badRequest, "give ?subscription=ID (from GET /v1/subscriptions)")
                }
                guard let after = UInt64(query["after"].map(String.init) ?? "0") else {
                    return Self.error(.badRequest, "after must be the last delivery applied, a non-negative integer")
                }
                let waitSeconds = min(Int(query["wait"].map(String.init) ?? "0") ?? 0, Self.maxWaitSeconds)
                let limit = min(max(Int(query["limit"].map(String.init) ?? "") ?? 64, 1), Self.maxDeliveriesPerResponse)
                let deadline = ContinuousClock.now + .seconds(max(waitSeconds, 0))
                while true {
                    let generation = await wakeups.generation(of: subscription)
                    let outcome = try await pool.withConnection { sql in
                        try await store.deliveries(subscription: subscription, for: node, after: after, limit: limit,
                                                   maxBytes: Self.deliveryResponseBytes, on: sql)
                    }
                    switch outcome {
                    case .refused(let code, let message):
                        return Self.error(code, message)
                    case .deliveries(let files) where !files.isEmpty || ContinuousClock.now >= deadline:
                        if !files.isEmpty {
                            try await pool.withConnection { sql in
                                try await HubStore.recordServed(subscription: subscription, to: node, first: after + 1, last: after + UInt64(files.count),
                                                                bytes: files.reduce(0) { $0 + $1.count }, on: sql)
                            }
                        }
                        return Response(status: .ok, headers: [.contentType: "application/vnd.govex.deliveries"],
                                        body: .init(byteBuffer: ByteBuffer(bytes: Delivery.frame(files))))
                    case .deliveries where Task.isShuttingDownGracefully:
                        // A stopping hub answers at once instead of holding its shutdown for the wait.
                        return Response(status: .ok, headers: [.contentType: "application/vnd.govex.deliveries"], body: .init())
                    case .deliveries:
                        await withGracefulShutdownHandler {
                            await wakeups.wait(for: subscription, after: generation, timeout: deadline - ContinuousClock.now)
                        } onGracefulShutdown: {
                            Task { await wakeups.wake(subscription) }
                        }
                    }
                }
            }
        }

        router.post(RouterPath(HubRoute.deliveriesAck)) { request, context -> Response in
            try await authenticated(context) { node in
                let bytes = try await request.body.collect(upTo: 4 << 10)
                guard let body = try? JSONDecoder().decode(AckRequest.self, from: Data(Array(buffer: bytes))), let through = UInt64(body.through) else {
                    return Self.error(.badRequest, "expected JSON {subscription: ID, through: \"N\"}")
                }
                let recorded = try await pool.withConnection { sql in
                    try await HubStore.acknowledge(subscription: body.subscription, for: node, through: through, on: sql)
                }
                guard recorded else {
                    return Self.error(.notDelivered, "subscription \(body.subscription) of \(node) has no delivery \(through)")
                }
                return Self.json(.ok, "{}")
            }
        }

        // A provider's registered signing keys, for checking the provider's signature carried in deliveries.
        router.get(RouterPath(HubRoute.nodeKeysPattern)) { _, context -> Response in
            try await authenticated(context) { _ in
                let provider = context.parameters.get("node") ?? ""
                let keys = try await pool.withConnection { sql in
                    try await sql.query("""
                        SELECT key_id, algorithm, public_key_pem FROM govex.node_keys WHERE node_id = $1 AND accepted_at IS NOT NULL ORDER BY registered_at
                        """, [provider]).rows
                }
                return try Self.encoded(keys.map { NodeKeyListing(keyID: $0[0] ?? "", algorithm: $0[1] ?? "", publicKey: $0[2] ?? "") })
            }
        }
    }

    /// A typed answer of the contract (GovexAPI), JSON with sorted keys.
    static func encoded(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}
