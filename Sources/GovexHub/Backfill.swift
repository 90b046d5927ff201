import Foundation
import GovexAPI
import GovexPolicy
import GovexPostgres
import GovexWire

/// Backfill: a subscription that becomes active, or whose terms change, first receives
/// the resource's current state from the hub's copy, then the change stream.
public enum Backfill {
    public static let pageRows = 5_000

    /// The records that rebuild a subscriber's table from the hub's copy, in pages: the
    /// first starts with a truncate. Pure. Columns follow the catalog's order; a column the
    /// stored row lacks (added to the catalog after the row was written) travels as NULL.
    public static func pages(of rows: [HubCopy.Row], resource: Catalog.Resource, pageRows: Int = pageRows) -> [[ChangeRecord]] {
        // Hub-made: no source order, records numbered by ordinal (position type none).
        var ordinal: UInt32 = 0
        func next() -> SourcePosition {
            defer { ordinal = ordinal % UInt32(max(1, pageRows)) == UInt32(max(1, pageRows)) - 1 ? 0 : ordinal + 1 }
            return SourcePosition(commit: 0, ordinal: ordinal)
        }
        func column(_ name: String, of row: HubCopy.Row) -> Column { Column(name, row.value(of: name) ?? .null) }
        var records = [ChangeRecord(operation: .truncate, resource: resource.code, position: next())]
        records.reserveCapacity(rows.count + 1)
        let valueColumns = resource.columns.filter { !resource.key.contains($0) }
        for row in rows {
            records.append(ChangeRecord(operation: .insert, resource: resource.code, position: next(),
                                        key: resource.key.map { column($0, of: row) }, values: valueColumns.map { column($0, of: row) }))
        }
        return stride(from: 0, to: records.count, by: max(1, pageRows)).map { Array(records[$0..<min($0 + max(1, pageRows), records.count)]) }
    }
}

extension HubStore {
    /// Locks the ledger of a resource's provider: ingest holds it for its whole transaction,
    /// so while it is held no batch of that resource is half-way, and the state read next is
    /// exactly what routing has not yet sent. Lock order: ledger, then subscription.
    /// For a subject, the hub's copy is its golden records: the subject's lock, taken
    /// exclusively, waits for merges half-way and holds new ones until the transaction ends.
    static func lockProvider(of resource: String, on sql: PostgresConnection) async throws {
        try await sql.query("""
            SELECT 1 FROM govex.nodes WHERE node_id = (SELECT provider FROM govex.catalog_resources WHERE code = $1) FOR UPDATE
            """, [resource])
        if try await sql.query("SELECT 1 FROM govex.catalog_subjects WHERE code = $1", [resource]).rows.isEmpty == false {
            try await lockSubject(resource, on: sql)
        }
    }

    /// Appends the backfill of `subscription` to its stream, inside the caller's transaction
    /// (which holds the provider's ledger lock): one page per `Backfill.pageRows` rows, each a
    /// hub-signed snapshot delivery with the subscription's policy applied. Returns the pages.
    @discardableResult
    func backfill(_ subscription: Subscription, resource: Catalog.Resource, catalog: Catalog, on sql: PostgresConnection) async throws -> Int {
        if let subject = catalog.subjects.first(where: { $0.code == resource.code }), resource.provider == Catalog.hubProvider {
            return try await backfillGolden(subscription, subject: subject, on: sql)
        }
        // The stored rows, and the changes still waiting for the merger (held off meanwhile).
        try await GoldenQueue.lockMerger(on: sql)
        var stored = try await HubCopy.rows(of: resource.code, on: sql)
        let waiting = try await GoldenQueue.pendingCopies(of: resource.code, store: self, on: sql)
        if !waiting.isEmpty {
            var rows = Dictionary(stored.map { ($0.key, $0.columns) }, uniquingKeysWith: { $1 })
            for changes in waiting { HubCopy.replay(changes, onto: &rows) }
            stored = rows.map { HubCopy.Row(key: $0.key, columns: $0.value) }.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        }
        let policy = try await Self.policy(of: subscription, on: sql)
        let pages = try Backfill.pages(of: stored, resource: resource).map { try policy.apply(to: $0, resource: resource.code) ?? $0 }
        try await storeBackfill(pages, rows: stored.count, of: subscription, on: sql)
        return pages.count
    }

    /// Appends hub-made pages to a subscription's stream, numbered from its next delivery.
    func storeBackfill(_ pages: [[ChangeRecord]], rows: Int, of subscription: Subscription, on sql: PostgresConnection) async throws {
        var delivery = subscription.nextDelivery
        for page in pages {
            let file = try Delivery.issueBackfill(page, subscriptionID: subscription.id, delivery: delivery, hubKey: hubKey,
                                                  createdAt: Int64(Date().timeIntervalSince1970 * 1_000_000))
            try await sql.query("INSERT INTO govex.deliveries (subscription_id, delivery, payload) VALUES ($1, $2, $3::bytea)",
                                [String(subscription.id), String(delivery), "\\x" + Hex.encode(file)])
            delivery += 1
        }
        try await sql.query("UPDATE govex.subscriptions SET next_delivery = $2 WHERE subscription_id = $1",
                            [String(subscription.id), String(delivery)])
        try await sql.query("SELECT pg_catalog.pg_notify($1, $2)", [Self.deliveryChannel, String(subscription.id)])
        try await Self.audit("backfill_routed", subject: "subscription \(subscription.id)", actor: SubscriptionRules.hubAdministrator,
                             details: [("rows", String(rows)), ("deliveries", BatchJSON.string("\(subscription.nextDelivery)...\(delivery - 1)"))],
                             on: sql)
    }
}
