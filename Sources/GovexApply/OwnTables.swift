import GovexPostgres
import GovexWire

/// govex's own tables in a department's database (schema `govex`): delivery cursors, dead
/// letters, discrepancies fed back and their cursor. The agent creates the missing ones
/// once at start, under an advisory lock, so that concurrent creators (two subscriptions,
/// two agents on one database) never race into `pg_type_typname_nsp_index`; `govex check`
/// prints the same DDL for a DBA when the agent's role may not create them.
public enum OwnTables {
    public struct Table: Sendable {
        public let name: String
        public let statement: String
    }

    public static let schemaStatement = "CREATE SCHEMA IF NOT EXISTS govex"

    public static let deliveryCursors = Table(name: "govex.delivery_cursors", statement: """
        CREATE TABLE IF NOT EXISTS govex.delivery_cursors (subscription bigint PRIMARY KEY, resource text NOT NULL, \
        delivered_through numeric(20,0) NOT NULL, origin_node text, origin_epoch numeric(20,0), origin_sequence numeric(20,0), \
        applied_at timestamptz NOT NULL DEFAULT now())
        """)

    public static let deadLetters = Table(name: "govex.dead_letters", statement: """
        CREATE TABLE IF NOT EXISTS govex.dead_letters (id bigserial PRIMARY KEY, subscription bigint NOT NULL, resource text NOT NULL, \
        target text NOT NULL, delivery numeric(20,0) NOT NULL, origin_node text NOT NULL, origin_epoch numeric(20,0) NOT NULL, \
        origin_sequence numeric(20,0) NOT NULL, error text NOT NULL, attempts int NOT NULL, payload bytea NOT NULL, \
        status text NOT NULL DEFAULT 'dead' CHECK (status IN ('dead', 'replay', 'skip', 'replayed', 'skipped')), \
        dead_at timestamptz NOT NULL DEFAULT now(), resolved_at timestamptz, resolved_by text, reason text, UNIQUE (subscription, delivery))
        """)

    public static let discrepancies = Table(name: "govex.discrepancies", statement: """
        CREATE TABLE IF NOT EXISTS govex.discrepancies (id bigint PRIMARY KEY, change bigint NOT NULL, subject text NOT NULL, key text NOT NULL, \
        field text, kind text NOT NULL, role text NOT NULL CHECK (role IN ('reporter', 'authority')), authority text, authority_value text, \
        authority_value_shown boolean NOT NULL, reporting_node text NOT NULL, reported_value text, reported_value_shown boolean NOT NULL, \
        reason text, status text NOT NULL, first_seen timestamptz NOT NULL, last_seen timestamptz NOT NULL, resolved_at timestamptz, \
        received_at timestamptz NOT NULL DEFAULT now())
        """)

    public static let feedbackCursor = Table(name: "govex.feedback_cursor", statement: """
        CREATE TABLE IF NOT EXISTS govex.feedback_cursor (only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row), \
        through bigint NOT NULL, received_at timestamptz NOT NULL DEFAULT now())
        """)

    /// What applying deliveries needs.
    public static let forSubscriptions = [deliveryCursors, deadLetters]
    /// What keeping the discrepancies fed back needs.
    public static let forFeedback = [discrepancies, feedbackCursor]
    public static let all = forSubscriptions + forFeedback

    /// The DDL for `tables`, schema first: what a DBA runs when the agent may not.
    public static func ddl(_ tables: [Table]) -> [String] { [schemaStatement] + tables.map(\.statement) }

    /// What the agent's role needs on tables a DBA created for it.
    public static func grants(_ tables: [Table], to role: String) -> [String] {
        let quoted = SQLQuoting.identifier(role)
        return ["GRANT USAGE ON SCHEMA govex TO \(quoted)"]
            + tables.map { "GRANT SELECT, INSERT, UPDATE, DELETE ON \($0.name) TO \(quoted)" }
            + (tables.contains { $0.name == deadLetters.name } ? ["GRANT USAGE ON SEQUENCE govex.dead_letters_id_seq TO \(quoted)"] : [])
    }

    /// The tables of `tables` that do not exist yet.
    public static func missing(_ tables: [Table], in sql: PostgresConnection) async throws -> [Table] {
        var missing: [Table] = []
        for table in tables where try await sql.query("SELECT pg_catalog.to_regclass($1) IS NULL", [table.name]).rows[0][0] == "t" {
            missing.append(table)
        }
        return missing
    }

    /// Creates the missing ones of `tables` in one transaction, serialised with every other
    /// creator by a transaction-level advisory lock. Nothing to create takes no lock and
    /// needs no privilege. A role that may not create them gets an error naming the DDL.
    public static func prepare(_ tables: [Table], in sql: PostgresConnection) async throws {
        do {
            guard try await !missing(tables, in: sql).isEmpty else { return }
            try await sql.transaction {
                try await sql.query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('govex own tables'))")
                // After the lock: another creator may have made them meanwhile.
                let stillMissing = try await missing(tables, in: sql)
                guard !stillMissing.isEmpty else { return }
                for statement in ddl(stillMissing) { try await sql.query(statement) }
            }
        } catch let error as PostgresError where error.sqlState == "42501" {
            throw ApplyError(description: "cannot create or use \(tables.map(\.name).joined(separator: ", ")) (\(error.message)); "
                + "have the DBA run the DDL and grants `govex check` prints, or grant CREATE on the database")
        }
    }
}
