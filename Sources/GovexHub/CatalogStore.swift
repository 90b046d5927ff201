import Foundation
import GovexPostgres
import GovexWire

extension Catalog {
    /// The catalog as the hub holds it.
    public static func read(on sql: PostgresConnection) async throws -> Catalog {
        let resources = try await sql.query("""
            SELECT code, name, provider, share, legal_basis, array_to_json(key_columns)::text, array_to_json(columns)::text, update_frequency
            FROM govex.catalog_resources ORDER BY code
            """).rows.map { row in
            Resource(code: row[0] ?? "", name: row[1] ?? "", provider: row[2] ?? "", share: row[3] ?? "", legalBasis: row[4],
                     key: Self.stringArray(row[5]), columns: Self.stringArray(row[6]), updateFrequency: row[7])
        }
        return Catalog(resources: resources, subjects: try await subjects(where: "true", [], on: sql))
    }

    /// The subjects some field of which one of `resources` feeds: what an ingest merges,
    /// read with one small query rather than the whole catalog on every batch.
    static func subjects(fedBy resources: [String], on sql: PostgresConnection) async throws -> [Subject] {
        try await subjects(where: fedByCondition, [HubStore.textArray(resources)], on: sql)
    }

    /// Whether one of `resources` feeds a subject (every accepted batch asks; no subject is read).
    static func feedsSubject(_ resources: [String], on sql: PostgresConnection) async throws -> Bool {
        try await sql.query("SELECT EXISTS (SELECT 1 FROM govex.catalog_subjects WHERE \(fedByCondition))",
                            [HubStore.textArray(resources)]).rows.first?[0] == "t"
    }

    /// A subject row one of the resources in `$1` feeds.
    private static let fedByCondition = """
        EXISTS (SELECT 1 FROM jsonb_array_elements(fields) f, jsonb_array_elements_text(f->'sources') s
                WHERE split_part(s, '.', 1) = ANY($1::text[]))
        """

    static func subjects(where condition: String, _ parameters: [String?], on sql: PostgresConnection) async throws -> [Subject] {
        struct StoredField: Codable {
            let name: String
            let authority: String
            let sources: [String]
        }
        return try await sql.query("SELECT code, name, key_kind, fields::text FROM govex.catalog_subjects WHERE \(condition) ORDER BY code",
                                   parameters).rows.map { row in
            let fields = (try? JSONDecoder().decode([StoredField].self, from: Data((row[3] ?? "[]").utf8))) ?? []
            return Subject(code: row[0] ?? "", name: row[1] ?? "", keyKind: row[2] ?? "",
                           fields: fields.map { Field(name: $0.name, authority: $0.authority, sources: $0.sources) })
        }
    }

    /// Makes the hub's catalog exactly this one, in one transaction; returns the plan it
    /// carried out (empty when nothing changed). `dryRun` computes the plan only.
    public func apply(on sql: PostgresConnection, dryRun: Bool = false) async throws -> [String] {
        try await sql.transaction {
            try await sql.query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('govex.catalog'))")
            let current = try await Catalog.read(on: sql)
            let plan = Catalog.plan(from: current, to: self)
            guard !dryRun, !plan.isEmpty else { return plan }
            let store = HubStore.self
            for resource in resources { try await Catalog.upsert(resource, on: sql) }
            try await sql.query("DELETE FROM govex.catalog_resources WHERE NOT (code = ANY($1::text[]))", [store.textArray(resources.map(\.code))])
            for subject in subjects {
                let fields = "[" + subject.fields.map { field in
                    BatchJSON.object([("name", BatchJSON.string(field.name)), ("authority", BatchJSON.string(field.authority)),
                                      ("sources", BatchJSON.stringArray(field.sources))])
                }.joined(separator: ",") + "]"
                try await sql.query("""
                    INSERT INTO govex.catalog_subjects (code, name, key_kind, fields) VALUES ($1, $2, $3, $4::jsonb)
                    ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, key_kind = EXCLUDED.key_kind, fields = EXCLUDED.fields, updated_at = now()
                    """, [subject.code, subject.name, subject.keyKind, fields])
            }
            try await sql.query("DELETE FROM govex.catalog_subjects WHERE NOT (code = ANY($1::text[]))", [store.textArray(subjects.map(\.code))])
            let providers = Dictionary(resources.map { ($0.code, $0.provider) }, uniquingKeysWith: { first, _ in first })
            for subject in subjects { _ = try await HubStore.goldenTable(subject, providers: providers, on: sql) }
            try await HubStore.audit("catalog_applied", subject: "catalog", actor: SubscriptionRules.hubAdministrator,
                                     details: [("changes", BatchJSON.stringArray(plan))], on: sql)
            return plan
        }
    }

    /// Adds or replaces one resource (no plan, no removal): for tests and tools.
    public static func upsert(_ resource: Resource, on sql: PostgresConnection) async throws {
        try await sql.query("""
            INSERT INTO govex.catalog_resources (code, name, provider, share, legal_basis, key_columns, columns, update_frequency)
            VALUES ($1, $2, $3, $4, $5, $6::text[], $7::text[], $8)
            ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, provider = EXCLUDED.provider, share = EXCLUDED.share,
                legal_basis = EXCLUDED.legal_basis, key_columns = EXCLUDED.key_columns, columns = EXCLUDED.columns,
                update_frequency = EXCLUDED.update_frequency, updated_at = now()
            """, [resource.code, resource.name, resource.provider, resource.share, resource.legalBasis,
                  HubStore.textArray(resource.key), HubStore.textArray(resource.columns), resource.updateFrequency])
    }

    static func stringArray(_ json: String?) -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data((json ?? "[]").utf8))) ?? []
    }
}
