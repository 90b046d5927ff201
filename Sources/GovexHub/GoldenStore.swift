import Foundation
import GovexAPI
import GovexPolicy
import GovexPostgres
import GovexWire

/// The golden subject records and their discrepancies in the hub's database, written in
/// the ingest transaction of every accepted batch that feeds a subject.
extension HubStore {
    /// The merge rules' view of a catalog subject (`RESOURCE.column` sources split, each with
    /// the node that provides the resource).
    public static func mergeSubject(_ subject: Catalog.Subject, providers: [String: String]) -> GoldenMerge.Subject {
        GoldenMerge.Subject(
            code: subject.code, keyKind: IdentifierCheck.Kind(rawValue: subject.keyKind) ?? .text,
            fields: subject.fields.map { field in
                GoldenMerge.Subject.Field(name: field.name, authority: field.authority, sources: field.sources.compactMap { source in
                    let parts = source.split(separator: ".", maxSplits: 1).map(String.init)
                    guard parts.count == 2, let provider = providers[parts[0]] else { return nil }
                    return GoldenMerge.Subject.Source(resource: parts[0], column: parts[1], node: provider)
                })
            })
    }

    /// The providers of the resources feeding `subjects`.
    static func sourceProviders(of subjects: [Catalog.Subject], on sql: PostgresConnection) async throws -> [String: String] {
        let resources = Set(subjects.flatMap { $0.fields.flatMap { $0.sources.map { String($0.prefix { $0 != "." }) } } })
        guard !resources.isEmpty else { return [:] }
        var providers: [String: String] = [:]
        for row in try await sql.query("SELECT code, provider FROM govex.catalog_resources WHERE code = ANY($1::text[])",
                                       [textArray(resources.sorted())]).rows {
            providers[row[0] ?? ""] = row[1] ?? ""
        }
        return providers
    }

    /// The golden table of a catalog subject, created or widened to its current layout.
    static func goldenTable(_ subject: Catalog.Subject, providers: [String: String]? = nil, on sql: PostgresConnection) async throws -> GoldenTable {
        let known = if let providers { providers } else { try await sourceProviders(of: [subject], on: sql) }
        let table = GoldenTable(mergeSubject(subject, providers: known))
        try await table.ensure(on: sql)
        return table
    }

    /// Merges batches into every subject their resources feed, as one change: the touched
    /// golden records fetched in one query per subject, merged by the pure rules, written
    /// back set-based (`GoldenTable.write`), and the discrepancy events applied set-based.
    /// The merger (`GoldenQueue`) hands it the batches waiting, in arrival order.
    public static func mergeSubjects(_ batches: [GoldenMerge.Batch], resources: [String], hubKey: SigningKey, on sql: PostgresConnection) async throws {
        let catalogSubjects = try await Catalog.subjects(fedBy: resources, on: sql)
        guard !catalogSubjects.isEmpty else { return }
        let providers = try await sourceProviders(of: catalogSubjects, on: sql)
        for catalogSubject in catalogSubjects {
            let subject = mergeSubject(catalogSubject, providers: providers)
            let fed = GoldenMerge.sourceResources(subject)
            guard batches.contains(where: { $0.records.contains { fed.contains($0.resource) } }) else { continue }
            let table = try await goldenTable(catalogSubject, providers: providers, on: sql)
            // One merge of a subject at a time: two merges touching the same keys would otherwise
            // each write back what they read, dropping what the other merged. (The merger runs
            // one at a time anyway; this also keeps a golden subscription's backfill from reading
            // a merge half-way.)
            try await lockSubject(subject.code, on: sql)
            var batches = batches
            // A truncate withdraws every key held, including those earlier batches of the group add.
            let held = batches.contains { GoldenMerge.truncatesSource($0.records, subject: subject) } ? Set(try await table.allKeys(on: sql)) : []
            var keys = Set<String>()
            for index in batches.indices {
                if GoldenMerge.truncatesSource(batches[index].records, subject: subject) {
                    batches[index].records = GoldenMerge.expandingTruncates(batches[index].records, subject: subject, keys: held.union(keys).sorted())
                }
                keys.formUnion(GoldenMerge.touchedKeys(batches[index].records, subject: subject))
            }
            guard !keys.isEmpty else { continue }
            let current = try await table.records(keys: Array(keys), on: sql)
            let result = await GoldenMerge.mergeInParallel(batches, subject: subject, current: current)
            try await table.write(result.records, before: current, on: sql)
            try await writeDiscrepancyEvents(result.events, subject: subject.code, on: sql)
            try await routeGolden(result.records, before: current, subject: catalogSubject, table: table, hubKey: hubKey, on: sql)
        }
    }

    static func lockSubject(_ code: String, on sql: PostgresConnection) async throws {
        try await sql.query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('govex.golden:' || $1, 0))", [code])
    }

    /// Applies a merge's discrepancy events: one statement over all of them.
    static func writeDiscrepancyEvents(_ events: [GoldenMerge.Event], subject: String, on sql: PostgresConnection) async throws {
        guard !events.isEmpty else { return }
        // COPY text, not a JSON document: a group carries thousands, and PostgreSQL reads COPY
        // rows several times faster than it parses JSON.
        var copy: [UInt8] = []
        copy.reserveCapacity(events.count * 160)
        var kinds = Set<String>()
        for event in events {
            let (state, discrepancy): (String, GoldenMerge.Discrepancy) = switch event {
            case .opened(let d): ("opened", d)
            case .updated(let d): ("updated", d)
            case .resolved(let d): ("resolved", d)
            }
            kinds.insert(state)
            for (index, field) in [state, discrepancy.identity, discrepancy.kind.rawValue, discrepancy.key, discrepancy.field, discrepancy.authority,
                                   discrepancy.authorityValue, discrepancy.reportingNode, discrepancy.reportedValue, discrepancy.reason].enumerated() {
                if index > 0 { copy.append(9) }
                CopyText.appendField(field, to: &copy)
            }
            copy.append(10)
        }
        // Change numbers must follow commit order, or a node's feed could pass over a change
        // committed late with a smaller number: the lock, held to commit, orders them.
        try await sql.query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('govex.discrepancy_changes'))")
        try await sql.query("""
            CREATE TEMPORARY TABLE govex_discrepancy_events (event text, identity text, kind text, key text, field text,
                authority text, authority_value text, reporting_node text, reported_value text, reason text) ON COMMIT DROP
            """)
        let bytes = copy
        _ = try await sql.copyIn("COPY pg_temp.govex_discrepancy_events FROM STDIN") { try $0.write(bytes) }
        // One statement over all the events, with a part only for the kinds present; the
        // updates look each event's discrepancy up by index.
        var parts = ["e AS (SELECT * FROM pg_temp.govex_discrepancy_events)"]
        if kinds.contains("resolved") {
            parts.append("""
                resolved AS (
                    UPDATE govex.discrepancies d SET status = 'resolved', resolved_at = now(), last_seen = now(),
                        change = nextval('govex.discrepancy_changes')
                    FROM e WHERE e.event = 'resolved' AND d.identity = e.identity AND d.status = 'open' RETURNING 1)
                """)
        }
        if kinds.contains("updated") {
            parts.append("""
                updated AS (
                    UPDATE govex.discrepancies d SET authority_value = e.authority_value, reported_value = e.reported_value, last_seen = now(),
                        change = nextval('govex.discrepancy_changes')
                    FROM e WHERE e.event = 'updated' AND d.identity = e.identity AND d.status = 'open' RETURNING 1)
                """)
        }
        let opened = kinds.contains("opened") ? """
            INSERT INTO govex.discrepancies (identity, subject, key, field, kind, authority, authority_value, reporting_node, reported_value, reason, change)
            SELECT identity, $1, key, field, kind, authority, authority_value, reporting_node, reported_value, reason, nextval('govex.discrepancy_changes')
            FROM e WHERE e.event = 'opened'
            ON CONFLICT (identity) WHERE status = 'open' DO UPDATE SET authority_value = EXCLUDED.authority_value,
                reported_value = EXCLUDED.reported_value, reason = EXCLUDED.reason, last_seen = now(), change = EXCLUDED.change
            """ : "SELECT $1::text"  // the updates above run all the same
        let statement = "WITH " + parts.joined(separator: ", ") + "\n" + opened
        if kinds.contains("resolved") || kinds.contains("updated") {
            _ = try await sql.withIndexScans { try await sql.query(statement, [subject]) }
        } else {
            try await sql.query(statement, [subject])
        }
        try await sql.query("DROP TABLE pg_temp.govex_discrepancy_events")
    }

    public struct DiscrepancyRow: Sendable, Equatable {
        public var id: Int64
        public var change: Int64
        public var subject, key, kind, reportingNode, status, firstSeen, lastSeen: String
        public var field, authority, authorityValue, reportedValue, reason, resolvedAt: String?

        public init(id: Int64, change: Int64, subject: String, key: String, kind: String, reportingNode: String, status: String, firstSeen: String,
                    lastSeen: String, field: String?, authority: String?, authorityValue: String?, reportedValue: String?, reason: String?,
                    resolvedAt: String?) {
            (self.id, self.change, self.subject, self.key, self.kind, self.reportingNode, self.status) = (id, change, subject, key, kind, reportingNode, status)
            (self.firstSeen, self.lastSeen, self.field, self.authority, self.authorityValue) = (firstSeen, lastSeen, field, authority, authorityValue)
            (self.reportedValue, self.reason, self.resolvedAt) = (reportedValue, reason, resolvedAt)
        }

        /// As the feedback stream shows it; `hidden` names values left out.
        public func view(hidden: Set<String> = []) -> DiscrepancyView {
            DiscrepancyView(id: id, change: change, subject: subject, key: key, kind: kind, field: field, authority: authority,
                            authorityValue: authorityValue, authorityValueShown: !hidden.contains("authority_value"), reportingNode: reportingNode,
                            reportedValue: reportedValue, reportedValueShown: !hidden.contains("reported_value"), reason: reason, status: status,
                            firstSeen: firstSeen, lastSeen: lastSeen, resolvedAt: resolvedAt)
        }

        /// As the CLI's `--json` shows it: the feed's form.
        public func json(hidden: Set<String> = []) -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return (try? encoder.encode(view(hidden: hidden))).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
    }

    public struct DiscrepancyQuery: Sendable {
        public var subject: String?
        public var status: String?
        /// Only those this node is involved in, as reporter or authority.
        public var node: String?
        public var id: Int64?
        /// The feed: changes after this number, oldest first (otherwise newest first).
        public var afterChange: Int64?
        public var limit: Int?

        public init(subject: String? = nil, status: String? = nil, node: String? = nil, id: Int64? = nil, afterChange: Int64? = nil, limit: Int? = nil) {
            self.subject = subject
            self.status = status
            self.node = node
            self.id = id
            self.afterChange = afterChange
            self.limit = limit
        }
    }

    public static func discrepancies(_ query: DiscrepancyQuery, on sql: PostgresConnection) async throws -> [DiscrepancyRow] {
        func time(_ column: String) -> String { "to_char(\(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')" }
        return try await sql.query("""
            SELECT id, change, subject, key, kind, reporting_node, status, \(time("first_seen")), \(time("last_seen")),
                   field, authority, authority_value, reported_value, reason, \(time("resolved_at"))
            FROM govex.discrepancies
            WHERE ($1::text IS NULL OR subject = $1) AND ($2::text IS NULL OR status = $2)
              AND ($3::text IS NULL OR reporting_node = $3 OR authority = $3) AND ($4::bigint IS NULL OR id = $4)
              AND ($5::bigint IS NULL OR change > $5)
            ORDER BY CASE WHEN $5::bigint IS NULL THEN -id ELSE change END
            LIMIT $6
            """, [query.subject, query.status, query.node, query.id.map(String.init), query.afterChange.map(String.init), query.limit.map(String.init)])
            .rows.map { row in
                DiscrepancyRow(id: Int64(row[0] ?? "") ?? 0, change: Int64(row[1] ?? "") ?? 0, subject: row[2] ?? "", key: row[3] ?? "", kind: row[4] ?? "",
                               reportingNode: row[5] ?? "", status: row[6] ?? "", firstSeen: row[7] ?? "", lastSeen: row[8] ?? "", field: row[9],
                               authority: row[10], authorityValue: row[11], reportedValue: row[12], reason: row[13], resolvedAt: row[14])
            }
    }
}
