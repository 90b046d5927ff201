import GovexAPI
import GovexApply
import GovexPostgres
import GovexWire

/// The catalog's word on a subscribed resource: its key and columns, for the table DDL.
/// A resource a [[subscribe]] names, as the hub's catalog describes it (`GET /v1/catalog`).
public typealias SubscribedResource = CatalogEntry

extension ConfigurationCheck {
    /// For each `[[subscribe]]`: the local table exists with the delivered columns, a unique
    /// index on the key (the apply's conflict target) and the privileges an apply needs; the
    /// cursor table and the replication origin can be used. When the table is missing, the
    /// DDL printed takes the key and columns from the hub's catalog (`catalog`, when the hub
    /// could be asked) with `text` types for the DBA to adjust.
    static func checkSubscriptions(_ configuration: AgentConfiguration, catalog: [String: SubscribedResource]?,
                                   sql: PostgresConnection) async throws -> [Finding] {
        guard !configuration.subscribe.isEmpty else { return [] }
        var findings: [Finding] = []
        func add(_ severity: Finding.Severity, _ subject: String, _ message: String, fix: String? = nil) {
            findings.append(Finding(severity: severity, subject: subject, message: message, fix: fix))
        }
        let user = try await sql.query("SELECT current_user").rows[0][0] ?? "current_user"
        let quotedUser = SQLQuoting.identifier(user)

        for entry in configuration.subscribe {
            let subject = "[[subscribe]] \(entry.resource) (\(entry.qualifiedTable))"
            let table = SQLQuoting.qualified(schema: entry.schema, name: entry.table)
            let resource = catalog?[entry.resource]
            if let catalog, resource == nil {
                add(.error, subject, "\(entry.resource) is not in the hub's catalog (\(catalog.count) resources are)")
            }
            let columns = resource.map { resource in
                entry.columns.isEmpty ? resource.columns : resource.columns.filter { entry.columns.contains($0) || resource.key.contains($0) }
            } ?? entry.columns
            // A schema the role may not use hides its tables (to_regclass would fail): say so first.
            let schemaUsable = try await sql.query("""
                SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE') FROM pg_catalog.pg_namespace n WHERE n.nspname = $1
                """, [entry.schema]).rows.first?[0]
            if schemaUsable == "f" {
                add(.error, subject, "role \(user) may not use schema \(entry.schema)",
                    fix: "GRANT USAGE ON SCHEMA \(SQLQuoting.identifier(entry.schema)) TO \(quotedUser)")
                continue
            }
            let oid = try await sql.query("""
                SELECT c.oid::int8 FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'p')
                """, [table]).rows.first?[0] ?? nil
            guard let oid else {
                let key = resource?.key ?? []
                let definitions = columns.map { SQLQuoting.identifier($0) + " text" + (key.contains($0) ? " NOT NULL" : "") }
                    + (key.isEmpty ? [] : ["PRIMARY KEY (" + key.map(SQLQuoting.identifier).joined(separator: ", ") + ")"])
                let ddl = definitions.isEmpty ? nil
                    : "CREATE TABLE \(table) (\(definitions.joined(separator: ", ")))"
                let schemaExists = try await sql.query("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", [entry.schema]).rows.isEmpty == false
                if !schemaExists, ddl != nil {
                    add(.error, subject, "schema \(entry.schema) does not exist", fix: "CREATE SCHEMA \(SQLQuoting.identifier(entry.schema))")
                }
                add(.error, subject, "table \(entry.qualifiedTable) does not exist"
                    + (ddl == nil ? "; list its columns in [[subscribe]] columns, or let govex check reach the hub, to get its DDL"
                                  : "; the DDL below uses text for every column: give each the provider's type"), fix: ddl)
                continue
            }
            let names = try await sql.query("""
                SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
                """, [oid]).rows.compactMap { $0[0] }
            for column in columns where !names.contains(column) {
                add(.error, subject, "column \(column) is delivered but not in the table", fix: "ALTER TABLE \(table) ADD COLUMN \(SQLQuoting.identifier(column)) text")
            }
            if let key = resource?.key {
                let keyList = "{" + key.sorted().joined(separator: ",") + "}"
                let unique = try await sql.query("""
                    SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = $1::oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
                      AND ARRAY(SELECT a.attname FROM unnest(i.indkey) k JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k
                                ORDER BY a.attname)::text = $2
                    """, [oid, keyList]).rows.isEmpty == false
                if !unique {
                    add(.error, subject, "no unique index on the key (\(key.joined(separator: ", "))): applies upsert on it",
                        fix: "CREATE UNIQUE INDEX ON \(table) (\(key.map(SQLQuoting.identifier).joined(separator: ", ")))")
                }
            }
            for privilege in ["INSERT", "UPDATE", "DELETE", "SELECT"] {
                let granted = try await sql.query("SELECT pg_catalog.has_table_privilege($1::oid, $2)", [oid, privilege]).rows[0][0]
                if granted != "t" { add(.error, subject, "role \(user) lacks \(privilege)", fix: "GRANT \(privilege) ON \(table) TO \(quotedUser)") }
            }
            if !findings.contains(where: { $0.subject == subject && $0.severity == .error }) { add(.ok, subject, "ready to apply") }
        }

        let superuser = try await sql.query("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").rows.first?[0] == "t"
        for function in ["pg_replication_origin_create(text)", "pg_replication_origin_session_setup(text)", "pg_replication_origin_oid(text)"] where !superuser {
            let allowed = try await sql.query("SELECT pg_catalog.has_function_privilege($1, 'EXECUTE')", ["pg_catalog." + function]).rows[0][0]
            if allowed != "t" {
                add(.error, "role \(user)", "may not call \(function), which marks applies so they are not captured back out",
                    fix: "GRANT EXECUTE ON FUNCTION pg_catalog.\(function) TO \(quotedUser)")
            }
        }
        return findings
    }
}
