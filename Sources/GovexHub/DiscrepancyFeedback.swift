import GovexPolicy
import GovexPostgres
import GovexDiff
import GovexWire

/// What a node may see of the discrepancies it is involved in (一数一源 feedback) and of golden
/// records. Each side always sees its own value and learns that the other side's differs; it
/// sees another node's value only if it is entitled to that field: an active subscription to
/// a resource of that node that feeds the field, with that column, whose row filter admits the
/// subject's row in that resource — and then as that subscription masks it (`SharingPolicy`,
/// the rules every outgoing path applies). Pure.
public enum DiscrepancyFeedback {
    /// One active subscription of the viewer to a resource: what it may see of it.
    public struct Grant: Sendable, Equatable {
        public var resource: String
        public var policy: SharingPolicy

        public init(resource: String, policy: SharingPolicy) {
            self.resource = resource
            self.policy = policy
        }

        public init(resource: String, columns: [String], masks: [String: ColumnMask] = [:], secret: [UInt8] = [], filter: RowFilter? = nil) {
            self.init(resource: resource, policy: SharingPolicy(columns: columns, filter: filter, masks: masks, secret: secret))
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
        /// Resource code → key columns: a subject key is built from them.
        public var keys: [String: [String]]

        public init(viewer: String, providers: [String: String], grants: [Grant], subjects: [String: Catalog.Subject], keys: [String: [String]] = [:]) {
            self.viewer = viewer
            self.providers = providers
            self.grants = grants
            self.subjects = subjects
            self.keys = keys
        }

        /// The resources feeding `subject` whose grants have a row filter: the rows the hub must
        /// read from its copy to decide what the viewer may see.
        public func filteredSources(of subject: String) -> Set<String> {
            let fed = Set(subjects[subject]?.fields.flatMap { $0.sources.map { String($0.prefix { $0 != "." }) } } ?? [])
            return Set(grants.filter { $0.policy.filter != nil && fed.contains($0.resource) }.map(\.resource))
        }

        /// The grant whose pseudonym a subject's key travels under: one that pseudonymises the
        /// key of a resource feeding the subject (the first by resource code), nil for none.
        public func keyPseudonym(of subject: String) -> Grant? {
            let fed = Set(subjects[subject]?.fields.flatMap { $0.sources.map { String($0.prefix { $0 != "." }) } } ?? [])
            return grants.filter { fed.contains($0.resource) && $0.policy.pseudonymises(anyOf: keys[$0.resource] ?? []) }
                .min { $0.resource < $1.resource }
        }

        /// A subject key as the viewer receives it: its own pseudonym when a source approval
        /// pseudonymises the key, else as it is.
        public func shownKey(_ key: String, subject: String) -> String {
            guard let grant = keyPseudonym(of: subject) else { return key }
            return ColumnMask.pseudonym.apply(to: .text(key), secret: grant.policy.secret).postgresText ?? key
        }
    }

    /// Rows of the hub's copy by resource, then by key text (the subject key), for row filters.
    public typealias SourceRows = [String: [String: [Column]]]

    public struct View: Sendable, Equatable {
        public var row: HubStore.DiscrepancyRow
        /// `authority_value` and/or `reported_value` when left out.
        public var hidden: Set<String>
    }

    /// `owner`'s value of `field` of the subject keyed `key` as `entitlement.viewer` may see it,
    /// or nil when it may not. A grant with a row filter admits the value only when the
    /// subject's row in that resource (`sourceRows`) passes; a row the hub does not hold does not.
    static func visible(_ value: String?, owner: String?, subject: String, key: String, field: String?, entitlement: Entitlement,
                        sourceRows: SourceRows) -> String?? {
        guard let owner else { return .some(value) }
        if owner == entitlement.viewer { return .some(value) }
        guard let field, let definition = entitlement.subjects[subject]?.fields.first(where: { $0.name == field }) else { return nil }
        for source in definition.sources {
            let parts = source.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2, entitlement.providers[parts[0]] == owner else { continue }
            for grant in entitlement.grants where grant.resource == parts[0] && grant.policy.columns.contains(parts[1]) {
                if grant.policy.filter != nil {
                    guard let row = sourceRows[grant.resource]?[key], (try? grant.policy.admits(row)) == true else { continue }
                }
                return .some(grant.policy.shown(parts[1], value.map(Value.text) ?? .null).postgresText)
            }
        }
        return nil
    }

    /// A discrepancy as `entitlement.viewer` may see it. The key stays as it is: feedback goes to
    /// the two nodes that hold the subject themselves.
    public static func view(_ row: HubStore.DiscrepancyRow, entitlement: Entitlement, sourceRows: SourceRows = [:]) -> View {
        var shown = row
        var hidden = Set<String>()
        func visible(_ value: String?, owner: String?) -> String?? {
            Self.visible(value, owner: owner, subject: row.subject, key: row.key, field: row.field, entitlement: entitlement, sourceRows: sourceRows)
        }
        if let value = visible(row.authorityValue, owner: row.authority) {
            shown.authorityValue = value
        } else {
            shown.authorityValue = nil
            hidden.insert("authority_value")
        }
        if let value = visible(row.reportedValue, owner: row.reportingNode) {
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
            grants.append(DiscrepancyFeedback.Grant(resource: subscription.resource, policy: try await policy(of: subscription, on: sql)))
        }
        return DiscrepancyFeedback.Entitlement(
            viewer: node, providers: Dictionary(catalog.resources.map { ($0.code, $0.provider) }, uniquingKeysWith: { first, _ in first }),
            grants: grants, subjects: Dictionary(catalog.subjects.map { ($0.code, $0) }, uniquingKeysWith: { first, _ in first }),
            keys: Dictionary(catalog.resources.map { ($0.code, $0.key) }, uniquingKeysWith: { first, _ in first }))
    }

    /// The rows of the hub's copy that `entitlement`'s row filters on `subject` need, for the
    /// subject keys `keys` (nil: every key), by subject key. Nothing is read when no grant
    /// feeding the subject has a filter.
    static func sourceRows(for entitlement: DiscrepancyFeedback.Entitlement, subject: String, keys: [String]?,
                           on sql: PostgresConnection) async throws -> DiscrepancyFeedback.SourceRows {
        let resources = entitlement.filteredSources(of: subject)
        guard !resources.isEmpty else { return [:] }
        // The copy keys a row by the JSON array of its key's text forms, a subject by the text
        // itself (composite keys joined): with one key column the one converts into the other.
        let singleColumn = resources.allSatisfy { entitlement.keys[$0]?.count == 1 }
        let copyKeys = singleColumn ? keys?.map { RowDigest.keyText([Column("", .text($0))]) } : nil
        var rows: DiscrepancyFeedback.SourceRows = [:]
        for row in try await sql.query("""
            SELECT resource, row_data FROM govex.resource_rows WHERE resource = ANY($1::text[])\(copyKeys == nil ? "" : " AND key = ANY($2::text[])")
            """, [textArray(resources.sorted())] + (copyKeys.map { [textArray($0)] } ?? [])).rows {
            let resource = row[0] ?? "", columns = try Column.decodeRow(bytea(row[1]))
            let key = (entitlement.keys[resource] ?? []).map { name in columns.first { $0.name == name } ?? Column(name, .null) }
            rows[resource, default: [:]][GoldenMerge.keyText(key)] = columns
        }
        return rows
    }

    /// `node`'s feedback stream: the changes of the discrepancies it is involved in after
    /// change number `after`, oldest first, each as the node may see it.
    public static func feedback(for node: String, after: Int64, limit: Int, on sql: PostgresConnection) async throws -> [DiscrepancyFeedback.View] {
        let rows = try await discrepancies(DiscrepancyQuery(node: node, afterChange: after, limit: limit), on: sql)
        guard !rows.isEmpty else { return [] }
        let entitlement = try await entitlement(of: node, on: sql)
        var sourceRows: DiscrepancyFeedback.SourceRows = [:]
        for (subject, group) in Dictionary(grouping: rows, by: \.subject) {
            let found = try await Self.sourceRows(for: entitlement, subject: subject, keys: Array(Set(group.map(\.key))), on: sql)
            sourceRows.merge(found) { old, new in old.merging(new) { first, _ in first } }
        }
        return rows.map { DiscrepancyFeedback.view($0, entitlement: entitlement, sourceRows: sourceRows) }
    }
}
