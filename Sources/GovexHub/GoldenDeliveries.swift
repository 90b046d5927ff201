import Foundation
import GovexAPI
import GovexPolicy
import GovexPostgres
import GovexWire

/// Golden-subject subscriptions: a consumer subscribes to a subject (`person`) and receives
/// its golden records — the key and each field it may see. A field is seen only through the
/// consumer's own active subscription to a resource of the field's authority that feeds it
/// (with that column, and with its row filter admitting the subject's row there), and masked
/// as that subscription masks it; the subject subscription itself grants nothing. The key
/// travels pseudonymised when a source approval pseudonymises it. Pure.
public enum GoldenDeliveries {
    /// The records that carry `golden` to a subscriber: an update per record with at least one
    /// authoritative value it may see; for one without, a delete if the record's state
    /// `before` had one (so the subscriber held it), otherwise nothing — not even the key goes
    /// to a subscriber that may see none of a record's values: which people or organisations
    /// exist is itself information. `columns` are the subscription's; `sourceRows` the hub
    /// copy's rows the entitlement's row filters read (`HubStore.sourceRows`).
    ///
    /// Whether a subscriber held a record is judged by the rows as they are now: a subject
    /// whose row leaves a filter gets no delete here (its old values stay at the subscriber
    /// until the golden backfill is refreshed), so that a change to a row outside the filter
    /// never reveals its key.
    public static func records(for golden: [GoldenMerge.Record], before: [String: GoldenMerge.Record] = [:], subject: GoldenMerge.Subject,
                               columns: [String], entitlement: DiscrepancyFeedback.Entitlement, sourceRows: DiscrepancyFeedback.SourceRows = [:],
                               operation: ChangeOperation = .update) -> [ChangeRecord] {
        let fields = subject.fields.indices.filter { columns.contains(subject.fields[$0].name) }
        func shown(_ record: GoldenMerge.Record) -> [Column]? {
            var values: [Column] = []
            var known = false
            for index in fields {
                let field = subject.fields[index], slot = record.slots[subject.authoritySlot[index]]
                guard let visible = DiscrepancyFeedback.visible(slot ?? nil, owner: field.authority, subject: subject.code, key: record.key,
                                                                field: field.name, entitlement: entitlement, sourceRows: sourceRows) else { continue }
                values.append(Column(field.name, visible.map(Value.text) ?? .null))
                known = known || slot != nil
            }
            return known ? values : nil
        }
        var records: [ChangeRecord] = []
        records.reserveCapacity(golden.count)
        for record in golden {
            let key = [Column(Catalog.Subject.keyColumn, .text(entitlement.shownKey(record.key, subject: subject.code)))]
            let position = SourcePosition(commit: 0, ordinal: UInt32(truncatingIfNeeded: records.count))
            if let values = shown(record) {
                records.append(ChangeRecord(operation: operation, resource: subject.code, position: position, key: key, values: values))
            } else if let earlier = before[record.key], shown(earlier) != nil {
                records.append(ChangeRecord(operation: .delete, resource: subject.code, position: position, key: key))
            }
        }
        return records
    }
}

extension HubStore {
    /// Routes the golden records an ingest changed to the subject's active subscriptions, each
    /// a hub-signed delivery shaped by its subscriber's entitlement. The caller holds the
    /// subject's merge lock to commit, so batches of different providers feeding one subject
    /// number its streams in commit order.
    static func routeGolden(_ golden: [GoldenMerge.Record], before: [String: GoldenMerge.Record], subject: Catalog.Subject, table: GoldenTable,
                            hubKey: SigningKey, on sql: PostgresConnection) async throws {
        guard !golden.isEmpty else { return }
        let subscriptions = try await Self.subscriptions(where: "resource = $1 AND status = 'active'", [subject.code], on: sql)
        var entitlements: [String: DiscrepancyFeedback.Entitlement] = [:]  // read once per subscriber, not per subscription
        for subscription in subscriptions {
            let entitlement: DiscrepancyFeedback.Entitlement
            if let known = entitlements[subscription.subscriber] {
                entitlement = known
            } else {
                entitlement = try await Self.entitlement(of: subscription.subscriber, on: sql)
                entitlements[subscription.subscriber] = entitlement
            }
            let sourceRows = try await Self.sourceRows(for: entitlement, subject: subject.code, keys: golden.map(\.key), on: sql)
            let records = GoldenDeliveries.records(for: golden, before: before, subject: table.subject, columns: subscription.columns,
                                                   entitlement: entitlement, sourceRows: sourceRows)
            guard !records.isEmpty else { continue }
            let delivery = UInt64(try await sql.query("""
                UPDATE govex.subscriptions SET next_delivery = next_delivery + 1 WHERE subscription_id = $1 RETURNING (next_delivery - 1)::text
                """, [String(subscription.id)]).rows.first?[0] ?? "") ?? 0
            let file = try Delivery.issueBackfill(records, subscriptionID: subscription.id, delivery: delivery, hubKey: hubKey,
                                                  createdAt: Int64(Date().timeIntervalSince1970 * 1_000_000))
            try await sql.query("""
                INSERT INTO govex.deliveries (subscription_id, delivery, payload) VALUES ($1, $2, $3::bytea)
                """, [String(subscription.id), String(delivery), "\\x" + Hex.encode(file)])
            try await sql.query("SELECT pg_catalog.pg_notify($1, $2)", [deliveryChannel, String(subscription.id)])
        }
    }

    /// A golden subscription's backfill: every golden record of the subject as its subscriber
    /// may see it, after a truncate. The caller holds the subject's lock exclusively.
    func backfillGolden(_ subscription: Subscription, subject: Catalog.Subject, on sql: PostgresConnection) async throws -> Int {
        let table = try await Self.goldenTable(subject, on: sql)
        let golden = try await table.allRecords(on: sql)
        let entitlement = try await Self.entitlement(of: subscription.subscriber, on: sql)
        let records = [ChangeRecord(operation: .truncate, resource: subject.code, position: SourcePosition(commit: 0, ordinal: 0))]
            + GoldenDeliveries.records(for: golden, subject: table.subject, columns: subscription.columns, entitlement: entitlement,
                                       sourceRows: try await Self.sourceRows(for: entitlement, subject: subject.code, keys: nil, on: sql), operation: .insert)
        // Hub-made pages number their records by ordinal, from 0 in each page.
        let pages = stride(from: 0, to: records.count, by: Backfill.pageRows).map { start in
            records[start..<min(start + Backfill.pageRows, records.count)].enumerated().map { index, record in
                var numbered = record
                numbered.position = SourcePosition(commit: 0, ordinal: UInt32(index))
                return numbered
            }
        }
        try await storeBackfill(pages, rows: records.count - 1, of: subscription, on: sql)
        return pages.count
    }

    /// A subscriber's entitlement to a subject's fields follows its subscriptions to the
    /// resources that feed them: when one of those is approved, narrowed or revoked, its
    /// golden subscriptions to those subjects are backfilled again, so that values it may no
    /// longer see leave its table and ones it now may see arrive.
    func refreshGoldenSubscriptions(of subscriber: String, fedBy resource: String, catalog: Catalog, on sql: PostgresConnection) async throws {
        for subject in catalog.subjects where subject.fields.contains(where: { $0.sources.contains { $0.hasPrefix(resource + ".") } }) {
            try await Self.lockProvider(of: subject.code, on: sql)
            for subscription in try await Self.subscriptions(where: "subscriber = $1 AND resource = $2 AND status = 'active'",
                                                             [subscriber, subject.code], on: sql) {
                _ = try await backfillGolden(subscription, subject: subject, on: sql)
            }
        }
    }
}
