import Foundation
import GovexAPI
import GovexPolicy
import GovexPostgres
import GovexWire

/// Subscriptions, routing and the delivery streams in the hub's database.
extension HubStore {
    public static let deliveryChannel = "govex_deliveries"

    public enum SubscribeOutcome: Sendable, Equatable {
        case stored(Subscription)
        case refused(code: HubErrorCode, message: String)
    }

    /// Records a subscription request; a live one (pending or active) for the same node and
    /// resource is answered again rather than duplicated.
    public func subscribe(node: String, resource code: String, columns: [String], purpose: String,
                          on sql: PostgresConnection) async throws -> SubscribeOutcome {
        try await sql.transaction {
            try await Self.lockProvider(of: code, on: sql)
            let catalog = try await Catalog.read(on: sql)
            let resource = catalog.subscribable.first { $0.code == code }
            switch SubscriptionRules.decide(subscriber: node, resourceCode: code, resource: resource, columns: columns, purpose: purpose) {
            case .refuse(let refusal, let message):
                try await Self.audit("subscription_refused", subject: code, actor: node,
                                     details: [("purpose", BatchJSON.string(purpose)), ("refusal", BatchJSON.string(refusal.rawValue)),
                                               ("reason", BatchJSON.string(message))], on: sql)
                return .refused(code: refusal, message: message)
            case .store(let status, let columns):
                if let live = try await Self.subscriptions(where: "subscriber = $1 AND resource = $2 AND status IN ('pending', 'active')",
                                                           [node, code], on: sql).first {
                    return .stored(live)
                }
                let id = try await sql.query("""
                    INSERT INTO govex.subscriptions (subscriber, resource, columns, requested_columns, purpose, status, decided_at, decided_by)
                    VALUES ($1, $2, $3::text[], $3::text[], $4, $5, CASE WHEN $5 = 'active' THEN now() END, CASE WHEN $5 = 'active' THEN 'catalog' END)
                    RETURNING subscription_id
                    """, [node, code, Self.textArray(columns), purpose, status]).rows[0][0] ?? "0"
                let stored = try await Self.subscriptions(where: "subscription_id = $1", [id], on: sql)[0]
                try await Self.audit("subscription_requested", subject: "subscription \(id)", actor: node,
                                     details: [("resource", BatchJSON.string(code)), ("purpose", BatchJSON.string(purpose)),
                                               ("columns", BatchJSON.stringArray(columns)), ("status", BatchJSON.string(status))], on: sql)
                if stored.status == "active", let resource { try await backfill(stored, resource: resource, catalog: catalog, on: sql) }
                return .stored(try await Self.subscriptions(where: "subscription_id = $1", [id], on: sql)[0])
            }
        }
    }

    /// A node's subscriptions and those to the resources it provides (all of them for nil).
    public static func subscriptions(of node: String?, on sql: PostgresConnection) async throws -> [Subscription] {
        if let node {
            return try await subscriptions(where: """
                subscriber = $1 OR resource IN (SELECT code FROM govex.catalog_resources WHERE provider = $1)
                """, [node], on: sql)
        }
        return try await subscriptions(where: "true", [], on: sql)
    }

    public enum DecideOutcome: Sendable, Equatable {
        case decided(Subscription)
        case refused(code: HubErrorCode, message: String)
    }

    /// Approves, rejects or revokes a subscription, by its resource's provider or the hub
    /// administrator; records who, when and why. A revocation stops delivery at once: the
    /// delivery route and routing both require an active subscription.
    public func decide(subscription id: Int64, _ request: SubscriptionRules.DecisionRequest, by actor: String,
                       on sql: PostgresConnection) async throws -> DecideOutcome {
        try await sql.transaction {
            guard let found = try await Self.subscriptions(where: "subscription_id = $1", [String(id)], on: sql).first else {
                return .refused(code: .unknownSubscription, message: "there is no subscription \(id)")
            }
            try await Self.lockProvider(of: found.resource, on: sql)
            let subscription = try await Self.subscriptions(where: "subscription_id = $1", [String(id)], on: sql, locking: true)[0]
            let catalog = try await Catalog.read(on: sql)
            let resource = catalog.subscribable.first { $0.code == subscription.resource }
            switch SubscriptionRules.decide(request, on: subscription, resource: resource, by: actor) {
            case .refuse(let code, let message):
                return .refused(code: code, message: message)
            case .update(let status, let columns, let filter, let masks):
                let masksJSON = BatchJSON.object(masks.sorted { $0.key < $1.key }.map { ($0.key, BatchJSON.string($0.value)) })
                try await sql.query("""
                    UPDATE govex.subscriptions SET status = $2, columns = $3::text[], filter = $4, masks = $5::jsonb,
                        decided_at = now(), decided_by = $6, reason = $7
                    WHERE subscription_id = $1
                    """, [String(id), status, Self.textArray(columns), filter, masksJSON, actor, request.reason])
                let decided = try await Self.subscriptions(where: "subscription_id = $1", [String(id)], on: sql)[0]
                let action = ["approve": "approved", "reject": "rejected", "revoke": "revoked"][request.decision] ?? request.decision
                try await Self.audit("subscription_" + action, subject: "subscription \(id)", actor: actor,
                                     details: [("reason", BatchJSON.string(request.reason)), ("status", BatchJSON.string(status)),
                                               ("columns", BatchJSON.stringArray(columns)), ("filter", filter.map(BatchJSON.string) ?? "null"),
                                               ("masks", masksJSON)], on: sql)
                // Newly active, or active under new terms: the state first, then the stream.
                let termsChanged = decided.columns != subscription.columns || decided.filter != subscription.filter || decided.masks != subscription.masks
                if decided.status == "active", subscription.status != "active" || termsChanged, let resource {
                    try await backfill(decided, resource: resource, catalog: catalog, on: sql)
                }
                if decided.status != subscription.status || termsChanged {
                    try await refreshGoldenSubscriptions(of: decided.subscriber, fedBy: decided.resource, catalog: catalog, on: sql)
                }
                return .decided(try await Self.subscriptions(where: "subscription_id = $1", [String(id)], on: sql)[0])
            }
        }
    }

    /// What a subscription may see, with its pseudonym secret.
    static func policy(of subscription: Subscription, on sql: PostgresConnection) async throws -> SharingPolicy {
        let secret = bytea(try await sql.query("SELECT secret FROM govex.subscriptions WHERE subscription_id = $1",
                                               [String(subscription.id)]).rows.first?[0])
        var masks: [String: ColumnMask] = [:]
        for (column, spec) in subscription.masks { masks[column] = try ColumnMask(spec: spec) }
        return SharingPolicy(columns: subscription.columns, filter: try subscription.filter.map { try RowFilter.parse($0) },
                             masks: masks, secret: secret)
    }

    static func subscriptions(where condition: String, _ parameters: [String?], on sql: PostgresConnection,
                              locking: Bool = false) async throws -> [Subscription] {
        try await sql.query("""
            SELECT subscription_id, subscriber, resource, array_to_json(columns)::text, purpose, status, reason,
                   to_char(requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), acked_through::text, next_delivery::text,
                   array_to_json(requested_columns)::text, filter, masks::text, decided_by,
                   to_char(decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
            FROM govex.subscriptions WHERE \(condition) ORDER BY subscription_id\(locking ? " FOR UPDATE" : "")
            """, parameters).rows.map { row in
            var subscription = Subscription(
                id: Int64(row[0] ?? "") ?? 0, subscriber: row[1] ?? "", resource: row[2] ?? "", columns: Catalog.stringArray(row[3]),
                purpose: row[4] ?? "", status: row[5] ?? "", reason: row[6], requestedAt: row[7] ?? "",
                ackedThrough: UInt64(row[8] ?? "") ?? 0, nextDelivery: UInt64(row[9] ?? "") ?? 1)
            subscription.requestedColumns = Catalog.stringArray(row[10])
            subscription.filter = row[11]
            subscription.masks = (try? JSONDecoder().decode([String: String].self, from: Data((row[12] ?? "{}").utf8))) ?? [:]
            subscription.decidedBy = row[13]
            subscription.decidedAt = row[14]
            return subscription
        }
    }

    /// Appends an accepted batch to the stream of every active subscription to one of its
    /// resources. Runs inside the ingest transaction, under the provider's ledger lock, which
    /// is what serialises each stream's numbering (a resource has one provider). Subscribers
    /// waiting on any hub replica are woken by the NOTIFY when the transaction commits.
    @discardableResult
    static func route(node: String, header: BatchHeader, on sql: PostgresConnection) async throws -> [Int64] {
        try await sql.query("""
            WITH routed AS (
                UPDATE govex.subscriptions SET next_delivery = next_delivery + 1
                WHERE status = 'active' AND resource = ANY($1::text[])
                RETURNING subscription_id, next_delivery - 1 AS delivery
            ), stored AS (
                INSERT INTO govex.deliveries (subscription_id, delivery, node_id, epoch, sequence, received_at)
                SELECT subscription_id, delivery, $2, $3, $4, now() FROM routed
                RETURNING subscription_id
            )
            SELECT subscription_id::text, pg_catalog.pg_notify($5, subscription_id::text) FROM stored
            """, [textArray(header.resources), node, String(header.nodeEpoch), String(header.sequence), deliveryChannel])
            .rows.compactMap { $0[0].flatMap { Int64($0) } }
    }

    public enum DeliveriesOutcome: Sendable {
        case deliveries([[UInt8]])
        case refused(code: HubErrorCode, message: String)
    }

    /// Up to `limit` deliveries (and about `maxBytes`) after `after` in a subscription's stream,
    /// issued from the stored batches.
    public func deliveries(subscription id: Int64, for node: String, after: UInt64, limit: Int, maxBytes: Int,
                           on sql: PostgresConnection) async throws -> DeliveriesOutcome {
        guard let subscription = try await Self.subscriptions(where: "subscription_id = $1", [String(id)], on: sql).first,
              subscription.subscriber == node else {
            return .refused(code: .unknownSubscription, message: "\(node) has no subscription \(id); `govex subscriptions` lists them")
        }
        guard subscription.status == "active" else {
            return .refused(code: .subscription(subscription.status),
                            message: "subscription \(id) to \(subscription.resource) is \(subscription.status)\(subscription.reason.map { ": \($0)" } ?? "")")
        }
        let policy = try await Self.policy(of: subscription, on: sql)
        let rows = try await sql.query("""
            SELECT d.delivery::text, b.bytes IS NULL AND d.payload IS NULL, coalesce(d.payload, b.bytes), d.payload IS NOT NULL,
                   b.column_names::text
            FROM govex.deliveries d
            LEFT JOIN govex.batches b ON b.node_id = d.node_id AND b.epoch = d.epoch AND b.sequence = d.sequence AND b.received_at = d.received_at
            WHERE d.subscription_id = $1 AND d.delivery > $2
            ORDER BY d.delivery LIMIT $3
            """, [String(id), String(after), String(limit)]).rows
        var issued: [[UInt8]] = []
        var bytes = 0
        for row in rows {
            let delivery = UInt64(row[0] ?? "") ?? 0
            guard row[1] == "f" else {
                if !issued.isEmpty { break }
                return .refused(code: .deliveryExpired,
                                message: "delivery \(delivery) of subscription \(id) re-issues a batch past the hub's retention; subscribe again to be backfilled")
            }
            if row[3] == "t" {
                // A backfill page, issued when the subscription became active.
                issued.append(Self.bytea(row[2]))
                bytes += issued[issued.count - 1].count
                if bytes >= maxBytes { break }
                continue
            }
            let origin = try BatchFile(bytes: Self.bytea(row[2]))
            let columnNames = row[4].map(GoldenTable.arrayElements)
            let createdAt = Int64(Date().timeIntervalSince1970 * 1_000_000)
            let file = try Delivery.issue(origin: origin, columnNames: columnNames, subscriptionID: id, delivery: delivery, resource: subscription.resource,
                                          policy: policy, hubKey: hubKey, createdAt: createdAt)
            issued.append(file)
            bytes += file.count
            if bytes >= maxBytes { break }
        }
        return .deliveries(issued)
    }

    /// Records in the audit trail that `node` was handed deliveries `first...last` of a
    /// subscription (`bytes` in all): who received which data is on the chain, not only
    /// what it acknowledged.
    public static func recordServed(subscription id: Int64, to node: String, first: UInt64, last: UInt64, bytes: Int,
                                    on sql: PostgresConnection) async throws {
        try await sql.transaction {
            _ = try await audit("deliveries_served", subject: "subscription \(id)", actor: node,
                                details: [("deliveries", BatchJSON.string("\(first)...\(last)")), ("bytes", String(bytes))], on: sql)
        }
    }

    /// Records how far a subscriber has applied its stream (monotonic; a late ack of an
    /// older delivery changes nothing). False when `through` was never delivered.
    public static func acknowledge(subscription id: Int64, for node: String, through: UInt64, on sql: PostgresConnection) async throws -> Bool {
        try await sql.transaction {
            let recorded = try await sql.query("""
                UPDATE govex.subscriptions SET acked_through = greatest(acked_through, $3), acked_at = now()
                WHERE subscription_id = $1 AND subscriber = $2 AND $3 < next_delivery
                """, [String(id), node, String(through)]).affectedRows == 1
            if recorded {
                try await audit("deliveries_acknowledged", subject: "subscription \(id)", actor: node,
                                details: [("through", BatchJSON.string(String(through)))], on: sql)
            }
            return recorded
        }
    }
}
