import GovexPolicy
import GovexPostgres
import GovexWire

/// What a node may see of the discrepancies it is involved in (一数一源 feedback). Each side
/// always sees its own value and learns that the other side's differs; it sees the other
/// side's value only if it is entitled to that field: an active subscription to a resource
/// of the other side that feeds the field, with that column — and then as that
/// subscription masks it. Pure.
public enum DiscrepancyFeedback {
    /// One subscription's view of a resource, as far as feedback needs it.
    public struct Grant: Sendable, Equatable {
        public var resource: String
        public var columns: [String]
        public var masks: [String: ColumnMask]
        public var secret: [UInt8]

        public init(resource: String, columns: [String], masks: [String: ColumnMask] = [:], secret: [UInt8] = []) {
            self.resource = resource
            self.columns = columns
            self.masks = masks
            self.secret = secret
        }
    }

    public struct Entitlement: Sendable {
        public var viewer: String
        /// Resource code → providing node.
        public var providers: [String: String]
        /// The viewer's active subscriptions.
        public var grants: [Grant]
        /// Subject code → subject.
        public var subjects: [String: Catalog.Subject]

        public init(viewer: String, providers: [String: String], grants: [Grant], subjects: [String: Catalog.Subject]) {
            self.viewer = viewer
            self.providers = providers
            self.grants = grants
            self.subjects = subjects
        }
    }

    public struct View: Sendable, Equatable {
        public var row: HubStore.DiscrepancyRow
        /// `authority_value` and/or `reported_value` when left out.
        public var hidden: Set<String>
    }

    /// `owner`'s value of `field` of `subject` as `entitlement.viewer` may see it, or nil
    /// when it may not.
    static func visible(_ value: String?, owner: String?, subject: String, field: String?, entitlement: Entitlement) -> String?? {
        guard let owner else { return .some(value) }
        if owner == entitlement.viewer { return .some(value) }
        guard let field, let definition = entitlement.subjects[subject]?.fields.first(where: { $0.name == field }) else { return nil }
        for source in definition.sources {
            let parts = source.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2, entitlement.providers[parts[0]] == owner else { continue }
            for grant in entitlement.grants where grant.resource == parts[0] && grant.columns.contains(parts[1]) {
                guard let mask = grant.masks[parts[1]] else { return .some(value) }
                return .some(mask.apply(to: value.map(Value.text) ?? .null, secret: grant.secret).postgresText)
            }
        }
        return nil
    }

    public static func view(_ row: HubStore.DiscrepancyRow, entitlement: Entitlement) -> View {
        var shown = row
        var hidden = Set<String>()
        if let value = visible(row.authorityValue, owner: row.authority, subject: row.subject, field: row.field, entitlement: entitlement) {
            shown.authorityValue = value
        } else {
            shown.authorityValue = nil
            hidden.insert("authority_value")
        }
        if let value = visible(row.reportedValue, owner: row.reportingNode, subject: row.subject, field: row.field, entitlement: entitlement) {
            shown.reportedValue = value
        } else {
            shown.reportedValue = nil
            hidden.insert("reported_value")
        }
        return View(row: shown, hidden: hidden)
    }
}

extension HubStore {
    /// What `node` is entitled to see of other nodes' values (in feedback and golden records),
    /// read from the catalog and its active subscriptions to resources.
    public static func entitlement(of node: String, on sql: PostgresConnection) async throws -> DiscrepancyFeedback.Entitlement {
        let catalog = try await Catalog.read(on: sql)
        var grants: [DiscrepancyFeedback.Grant] = []
        for subscription in try await subscriptions(of: node, on: sql) where subscription.status == "active" && subscription.subscriber == node {
            let policy = try await policy(of: subscription, on: sql)
            grants.append(DiscrepancyFeedback.Grant(resource: subscription.resource, columns: policy.columns, masks: policy.masks, secret: policy.secret))
        }
        return DiscrepancyFeedback.Entitlement(
            viewer: node, providers: Dictionary(catalog.resources.map { ($0.code, $0.provider) }, uniquingKeysWith: { first, _ in first }),
            grants: grants, subjects: Dictionary(catalog.subjects.map { ($0.code, $0) }, uniquingKeysWith: { first, _ in first }))
    }

    /// `node`'s feedback stream: the changes of the discrepancies it is involved in after
    /// change number `after`, oldest first, each as the node may see it.
    public static func feedback(for node: String, after: Int64, limit: Int, on sql: PostgresConnection) async throws -> [DiscrepancyFeedback.View] {
        let rows = try await discrepancies(DiscrepancyQuery(node: node, afterChange: after, limit: limit), on: sql)
        guard !rows.isEmpty else { return [] }
        let entitlement = try await entitlement(of: node, on: sql)
        return rows.map { DiscrepancyFeedback.view($0, entitlement: entitlement) }
    }
}
