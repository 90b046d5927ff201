import GovexApply
import GovexCapture
import GovexPolicy
import GovexPostgres
import GovexWire

/// `govex check`: compares an agent configuration with the live database and
/// says what is wrong, why, and the exact SQL that fixes it.
public struct ConfigurationCheck: Sendable {
    public struct Finding: Sendable, Equatable {
        public enum Severity: String, Sendable { case error, warning, ok }
        public let severity: Severity
        public let subject: String
        public let message: String
        /// SQL a DBA can run to fix it (identifiers quoted), if any.
        public let fix: String?
    }

    public let findings: [Finding]

    public init(findings: [Finding]) { self.findings = findings }

    public var errors: [Finding] { findings.filter { $0.severity == .error } }
    public var fixes: [String] {
        var seen = Set<String>()
        return findings.compactMap(\.fix).filter { seen.insert($0).inserted }
    }

    /// `catalog`: the hub's catalog entries of subscribed resources, when the hub could be asked.
    public static func run(_ configuration: AgentConfiguration, catalog: [String: SubscribedResource]? = nil) async throws -> ConfigurationCheck {
        try await PostgresConnection.with(configuration.conninfo, name: "govex-check") { sql in
            var findings = configuration.publish.isEmpty ? [] : try await checkPublications(configuration, sql: sql)
            findings += try await checkSubscriptions(configuration, catalog: catalog, sql: sql)
            findings += try await checkOwnTables(AgentRunner.ownTables(configuration), sql: sql)
            return ConfigurationCheck(findings: findings)
        }
    }

    /// govex's own tables this configuration needs: each missing one is fine when the role may
    /// create it (the agent does at start), an error with its DDL when it may not.
    static func checkOwnTables(_ tables: [OwnTables.Table], sql: PostgresConnection) async throws -> [Finding] {
        guard !tables.isEmpty else { return [] }
        let user = try await sql.query("SELECT current_user").rows[0][0] ?? "current_user"
        let schemaUsable = try await sql.query("""
            SELECT n.oid IS NULL OR pg_catalog.has_schema_privilege(n.oid, 'USAGE')
            FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = 'govex'
            """).rows[0][0] == "t"
        guard schemaUsable else {
            return OwnTables.grants(tables, to: user).map {
                Finding(severity: .error, subject: "schema govex", message: "exists but role \(user) may not use it", fix: $0)
            }
        }
        let missing = try await OwnTables.missing(tables, in: sql)
        guard !missing.isEmpty else { return [Finding(severity: .ok, subject: "govex's own tables", message: "present", fix: nil)] }
        let mayCreate = try await sql.query("""
            SELECT CASE WHEN n.oid IS NULL THEN pg_catalog.has_database_privilege(current_database(), 'CREATE')
                        ELSE pg_catalog.has_schema_privilege(n.oid, 'CREATE') END
            FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = 'govex'
            """).rows[0][0] == "t"
        guard !mayCreate else {
            return missing.map { Finding(severity: .ok, subject: $0.name, message: "missing; the agent creates it at start", fix: nil) }
        }
        return OwnTables.ddl(missing).enumerated().map { index, statement in
            Finding(severity: .error, subject: index == 0 ? "schema govex" : missing[index - 1].name,
                    message: "does not exist and role \(user) may not create it (a DBA can)", fix: statement)
        } + OwnTables.grants(missing, to: user).map {
            Finding(severity: .error, subject: "role \(user)", message: "needs these rights on govex's tables a DBA creates", fix: $0)
        }
    }

    private static func checkPublications(_ configuration: AgentConfiguration, sql: PostgresConnection) async throws -> [Finding] {
        var findings: [Finding] = []
        func add(_ severity: Finding.Severity, _ subject: String, _ message: String, fix: String? = nil) {
            findings.append(Finding(severity: severity, subject: subject, message: message, fix: fix))
        }

        let settings = try await sql.query("""
            SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int,
                   (SELECT count(*) FROM pg_catalog.pg_replication_slots)::int, current_setting('max_wal_senders')::int,
                   (SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
                   current_user, current_setting('server_encoding')
            """).rows[0]
        if settings[0] != "logical" {
            add(.error, "server", "wal_level is \(settings[0] ?? "?"); logical decoding needs wal_level = logical (then restart PostgreSQL)",
                fix: "ALTER SYSTEM SET wal_level = logical")
        }
        let slotExists = try await sql.query("SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", [configuration.slot]).rows.isEmpty == false
        if let maximum = settings[1].flatMap({ Int($0) }), let used = settings[2].flatMap({ Int($0) }), !slotExists, used >= maximum {
            add(.error, "server", "all \(maximum) replication slots are in use; raise max_replication_slots (then restart)",
                fix: "ALTER SYSTEM SET max_replication_slots = \(maximum + 2)")
        }
        let user = settings[5] ?? "current_user"
        if settings[4] != "t" {
            add(.error, "role \(user)", "lacks the REPLICATION attribute needed to stream changes", fix: "ALTER ROLE \(SQLQuoting.identifier(user)) REPLICATION")
        }
        if settings[6] != "UTF8" {
            add(.error, "server", "the database encoding is \(settings[6] ?? "?"); this release of govex needs UTF8")
        }
        if configuration.heartbeat != nil {
            let allowed = try await sql.query("""
                SELECT pg_catalog.has_function_privilege('pg_catalog.pg_logical_emit_message(boolean, text, text)', 'EXECUTE')
                """).rows[0][0]
            if allowed != "t" {
                add(.error, "role \(user)", "may not call pg_logical_emit_message, which [source] heartbeat needs",
                    fix: "GRANT EXECUTE ON FUNCTION pg_catalog.pg_logical_emit_message(boolean, text, text) TO \(SQLQuoting.identifier(user))")
            }
        }

        let publication = SQLQuoting.identifier(configuration.publication)
        let publicationExists = try await sql.query("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1", [configuration.publication]).rows.isEmpty == false
        var missingFromPublication: [String] = []

        for entry in configuration.publish {
            let mapping = entry.mapping
            let subject = "\(mapping.resource) (\(mapping.schema).\(mapping.table))"
            let table = SQLQuoting.qualified(schema: mapping.schema, name: mapping.table)
            if entry.share == "none" {
                add(.ok, subject, "share = none: never captured")
                continue
            }
            let relation = try await sql.query("""
                SELECT c.oid::int8, c.relreplident::text FROM pg_catalog.pg_class c
                WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'p')
                """, [table])
            guard let row = relation.rows.first, let oid = row[0] else {
                add(.error, subject, "table \(mapping.schema).\(mapping.table) does not exist (or is not a table)")
                continue
            }
            let columnRows = try await sql.query("""
                SELECT a.attname, a.attnotnull, t.typstorage::text, pg_catalog.format_type(a.atttypid, a.atttypmod)
                FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
                """, [oid]).rows
            let names = columnRows.map { $0[0] ?? "" }
            var referenced = mapping.key + Array(mapping.rename.keys)
            switch mapping.columns {
            case .only(let list), .excluding(let list): referenced += list
            case .all: break
            }
            referenced += Array(mapping.filter?.columns ?? [])
            for column in Set(referenced) where !names.contains(column) {
                add(.error, subject, "column \(column) is named in the mapping but not in the table; columns are: \(names.joined(separator: ", "))")
            }

            // The key must identify rows (KeyIdentity); the replica identity below needs the key's own index.
            let indexes = try await sql.query("""
                SELECT i.indisprimary, i.indisreplident, ARRAY(SELECT a.attname FROM unnest(i.indkey) k JOIN pg_catalog.pg_attribute a
                       ON a.attrelid = i.indrelid AND a.attnum = k ORDER BY a.attname)::text
                FROM pg_catalog.pg_index i WHERE i.indrelid = $1::oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
                """, [oid]).rows
            let keyList = "{" + mapping.key.sorted().joined(separator: ",") + "}"
            let keyIndex = indexes.first { $0[2] == keyList }
            for problem in try await KeyIdentity.problems(mapping, on: sql) {
                add(.error, subject, problem.message, fix: problem.fix)
            }

            // The replica identity must carry the key in UPDATE and DELETE records.
            let identity = row[1] ?? "d"
            let identityCoversKey: Bool
            switch identity {
            case "f": identityCoversKey = true
            case "d": identityCoversKey = indexes.contains { $0[0] == "t" && $0[2] == keyList }
            case "i": identityCoversKey = indexes.contains { $0[1] == "t" && $0[2] == keyList }
            default: identityCoversKey = false
            }
            let toastable = columnRows.filter { row in
                guard let name = row[0], mapping.includes(name) || (mapping.filter?.columns.contains(name) ?? false) else { return false }
                return row[2] != "p"
            }.compactMap { $0[0] }
            if !identityCoversKey {
                add(.error, subject, "the replica identity (\(Self.describe(identity))) does not carry the key, so updates and deletes could not be shipped",
                    fix: keyIndex?[0] == "t" ? "ALTER TABLE \(table) REPLICA IDENTITY DEFAULT" : "ALTER TABLE \(table) REPLICA IDENTITY FULL")
            } else if mapping.filter != nil && identity != "f" {
                add(.error, subject, "a filtered resource needs REPLICA IDENTITY FULL, so that a row entering the filter can be shipped whole",
                    fix: "ALTER TABLE \(table) REPLICA IDENTITY FULL")
            } else if !toastable.isEmpty && identity != "f" {
                add(.warning, subject, "columns \(toastable.joined(separator: ", ")) can be TOASTed: updates that leave them unchanged ship an 'unchanged' marker; REPLICA IDENTITY FULL ships their values instead",
                    fix: nil)
            }
            let unmodelled = columnRows.filter { row in
                guard let name = row[0], mapping.includes(name) else { return false }
                return ["interval", "money", "xml", "inet", "cidr", "point"].contains { (row[3] ?? "").hasPrefix($0) }
            }
            for column in unmodelled {
                add(.ok, subject, "column \(column[0] ?? "") (\(column[3] ?? "")) travels as its text form")
            }

            let privilege = try await sql.query("SELECT pg_catalog.has_table_privilege($1::oid, 'SELECT')", [oid]).rows[0][0]
            if privilege != "t" {
                add(.error, subject, "role \(user) cannot SELECT from it (needed for the initial snapshot)",
                    fix: "GRANT SELECT ON \(table) TO \(SQLQuoting.identifier(user))")
            }
            if publicationExists {
                let published = try await sql.query("SELECT 1 FROM pg_catalog.pg_publication_rel r JOIN pg_catalog.pg_publication p ON p.oid = r.prpubid WHERE p.pubname = $1 AND r.prrelid = $2::oid",
                                                    [configuration.publication, oid]).rows.isEmpty == false
                let allTables = try await sql.query("SELECT puballtables FROM pg_catalog.pg_publication WHERE pubname = $1", [configuration.publication]).rows.first?[0] == "t"
                if !published && !allTables {
                    add(.error, subject, "not in publication \(configuration.publication)", fix: "ALTER PUBLICATION \(publication) ADD TABLE \(table)")
                }
            } else {
                missingFromPublication.append(table)
            }
            if !findings.contains(where: { $0.subject == subject && $0.severity == .error }) {
                add(.ok, subject, "ready to capture")
            }
        }
        if !publicationExists && !missingFromPublication.isEmpty {
            add(.error, "publication \(configuration.publication)", "does not exist",
                fix: "CREATE PUBLICATION \(publication) FOR TABLE \(missingFromPublication.joined(separator: ", "))")
        }
        return findings
    }

    static func describe(_ identity: String) -> String {
        switch identity {
        case "d": return "DEFAULT, the primary key"
        case "n": return "NOTHING"
        case "f": return "FULL"
        case "i": return "USING INDEX"
        default: return identity
        }
    }

    /// Runs the fixes, in order, in one transaction where PostgreSQL allows it.
    public static func apply(_ fixes: [String], conninfo: String) async throws {
        try await PostgresConnection.with(conninfo, name: "govex-check") { sql in
            for statement in fixes { try await sql.query(statement) }
        }
    }
}
