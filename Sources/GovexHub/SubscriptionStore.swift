import Foundation
import GovexAPI
import GovexPostgres
import GovexWire

/// Subscriptions, routing and the delivery streams in the hub's database.
extension HubStore {
    public static let deliveryChannel = "govex_deliveries"

    public enum SubscribeOutcome: Sendable, Equatable {
        case stored(Subscription)
        case refused(code: String, message: String)
    }

    /// Records a subscription request; a live one (pending or active) for the same node and
    /// resource is answered again rather than duplicated.
    public static func subscribe(node: String, resource code: String, columns: [String], purpose: String,
                                 on sql: PostgresConnection) async throws -> SubscribeOutcome {
        try await sql.transaction {
            let resource = try await Catalog.read(on: sql).resources.first { $0.code == code }
            switch SubscriptionRules.decide(subscriber: node, resourceCode: code, resource: resource, columns: columns, purpose: purpose) {
            case .refuse(let code, let message):
                return .refused(code: code, message: message)
            case .store(let status, let columns):
                if let live = try await subscriptions(where: "subscriber = $1 AND resource = $2 AND status IN ('pending', 'active')",
                                                      [node, code], on: sql).first {
                    return .stored(live)
                }
                let id = try await sql.query("""
                    INSERT INTO govex.subscriptions (subscriber, resource, columns, purpose, status, decided_at, decided_by)
                    VALUES ($1, $2, $3::text[], $4, $5, CASE WHEN $5 = 'active' THEN now() END, CASE WHEN $5 = 'active' THEN 'catalog' END)
                    RETURNING subscription_id
                    """, [node, code, textArray(columns), purpose, status]).rows[0][0] ?? "0"
                return .stored(try await subscriptions(where: "subscription_id = $1", [id], on: sql)[0])
            }
        }
    }

    public static func subscriptions(of node: String?, on sql: PostgresConnection) async throws -> [Subscription] {
        if let node { return try await subscriptions(where: "subscriber = $1", [node], on: sql) }
        return try await subscriptions(where: "true", [], on: sql)
    }

    static func subscriptions(where condition: String, _ parameters: [String?], on sql: PostgresConnection) async throws -> [Subscription] {
        try await sql.query("""
            SELECT subscription_id, subscriber, resource, array_to_json(columns)::text, purpose, status, reason,
                   to_char(requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), acked_through::text, next_delivery::text
            FROM govex.subscriptions WHERE \(condition) ORDER BY subscription_id
            """, parameters).rows.map { row in
            Subscription(id: Int64(row[0] ?? "") ?? 0, subscriber: row[1] ?? "", resource: row[2] ?? "", columns: Catalog.stringArray(row[3]),
                         purpose: row[4] ?? "", status: row[5] ?? "", reason: row[6], requestedAt: row[7] ?? "",
                         ackedThrough: UInt64(row[8] ?? "") ?? 0, nextDelivery: UInt64(row[9] ?? "") ?? 1)
        }
    }

    /// Appends an accepted batch to the stream of every active subscription to one of its
    /// resources. Runs inside the ingest transaction, under the provider's ledger lock, which
    /// is what serialises each stream's numbering (a resource has one provider). Subscribers
    /// waiting on any hub replica are woken by the NOTIFY when the transaction commits.
    static func route(node: String, header: BatchHeader, on sql: PostgresConnection) async throws {
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
            SELECT pg_catalog.pg_notify($5, subscription_id::text) FROM stored
            """, [textArray(header.resources), node, String(header.nodeEpoch), String(header.sequence), deliveryChannel])
    }

    public enum DeliveriesOutcome: Sendable {
        case deliveries([[UInt8]])
        case refused(status: Int, code: String, message: String)
    }

    /// Up to `limit` deliveries (and about `maxBytes`) after `after` in a subscription's stream,
    /// issued from the stored batches.
    public func deliveries(subscription id: Int64, for node: String, after: UInt64, limit: Int, maxBytes: Int,
                           on sql: PostgresConnection) async throws -> DeliveriesOutcome {
        guard let subscription = try await Self.subscriptions(where: "subscription_id = $1", [String(id)], on: sql).first,
              subscription.subscriber == node else {
            return .refused(status: 404, code: "unknown_subscription", message: "\(node) has no subscription \(id); `govex subscriptions` lists them")
        }
        guard subscription.status == "active" else {
            return .refused(status: 409, code: "subscription_\(subscription.status)",
                            message: "subscription \(id) to \(subscription.resource) is \(subscription.status)\(subscription.reason.map { ": \($0)" } ?? "")")
        }
        let rows = try await sql.query("""
            SELECT d.delivery::text, b.bytes IS NULL, b.bytes
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
                return .refused(status: 410, code: "delivery_expired",
                                message: "delivery \(delivery) of subscription \(id) re-issues a batch past the hub's retention; subscribe again to be backfilled")
            }
            let origin = try BatchFile(bytes: Self.bytea(row[2]))
            let createdAt = Int64(Date().timeIntervalSince1970 * 1_000_000)
            let file = try Delivery.issue(origin: origin, subscriptionID: id, delivery: delivery, resource: subscription.resource,
                                          columns: subscription.columns, hubKey: hubKey, createdAt: createdAt)
            issued.append(file)
            bytes += file.count
            if bytes >= maxBytes { break }
        }
        return .deliveries(issued)
    }

    /// Records how far a subscriber has applied its stream (monotonic; a late ack of an
    /// older delivery changes nothing). False when `through` was never delivered.
    public static func acknowledge(subscription id: Int64, for node: String, through: UInt64, on sql: PostgresConnection) async throws -> Bool {
        try await sql.query("""
            UPDATE govex.subscriptions SET acked_through = greatest(acked_through, $3), acked_at = now()
            WHERE subscription_id = $1 AND subscriber = $2 AND $3 < next_delivery
            """, [String(id), node, String(through)]).affectedRows == 1
    }
}
