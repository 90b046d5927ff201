import GovexPostgres
import GovexWire

/// Where a delivery came from, recorded beside the cursor for the DBA.
public struct DeliveryOrigin: Sendable, Equatable {
    public var node: String
    public var epoch: UInt64
    public var sequence: UInt64

    public init(node: String, epoch: UInt64, sequence: UInt64) {
        self.node = node
        self.epoch = epoch
        self.sequence = sequence
    }
}

public struct ApplyError: Error, CustomStringConvertible {
    public let description: String
}

/// Applies one subscription's deliveries to its local table. Each delivery and the
/// subscription's cursor commit in one transaction: a redelivery finds the cursor past it
/// and changes nothing, and a delivery that is not the next one is refused. The session
/// runs under the replication origin `govex_apply_<subscription>`, which the capture
/// side skips, so applied rows are never captured back out (no echo loops).
public final class DeliveryApplier: Sendable {
    public static let originPrefix = "govex_apply"

    /// What a subscriber's database needs besides its tables; `govex check` prints it.
    public static let cursorStatements = [
        "CREATE SCHEMA IF NOT EXISTS govex",
        """
        CREATE TABLE IF NOT EXISTS govex.delivery_cursors (subscription bigint PRIMARY KEY, resource text NOT NULL, \
        delivered_through numeric(20,0) NOT NULL, origin_node text, origin_epoch numeric(20,0), origin_sequence numeric(20,0), \
        applied_at timestamptz NOT NULL DEFAULT now())
        """,
    ]

    public enum Outcome: Sendable, Equatable {
        case applied(statements: Int)
        case alreadyApplied
    }

    let sql: PostgresConnection
    public let subscription: Int64
    public let resource: String
    public let schema: String
    public let table: String

    init(sql: PostgresConnection, subscription: Int64, resource: String, schema: String, table: String) {
        self.sql = sql
        self.subscription = subscription
        self.resource = resource
        self.schema = schema
        self.table = table
    }

    public static func originName(subscription: Int64) -> String { "\(originPrefix)_\(subscription)" }

    /// Runs `body` with an applier on its own connection, closed afterwards. A replication
    /// origin is held by one session at a time; after a crash the old session may hold it for
    /// a moment, so setting it up is retried for up to `originWait`.
    public static func with<T>(conninfo: String, subscription: Int64, resource: String, schema: String, table: String,
                               originWait: Duration = .seconds(60), _ body: (DeliveryApplier) async throws -> T) async throws -> T {
        try await PostgresConnection.with(conninfo, name: "govex-apply") { sql in
            do {
                do {
                    for statement in cursorStatements { try await sql.query(statement) }
                } catch let error as PostgresError where error.sqlState == "23505" {
                    for statement in cursorStatements { try await sql.query(statement) }  // another applier created it at the same moment
                }
            } catch let error as PostgresError where error.sqlState == "42501" {
                throw ApplyError(description: "cannot create govex.delivery_cursors (\(error.message)); have the DBA run the DDL `govex check` prints")
            }
            let origin = originName(subscription: subscription)
            do {
                try await sql.query("SELECT pg_catalog.pg_replication_origin_create($1) WHERE pg_catalog.pg_replication_origin_oid($1) IS NULL", [origin])
            } catch let error as PostgresError where error.sqlState == "23505" {
                // Created by another session meanwhile.
            }
            let deadline = ContinuousClock.now + originWait
            while true {
                do {
                    try await sql.query("SELECT pg_catalog.pg_replication_origin_session_setup($1)", [origin])
                    break
                } catch let error as PostgresError where error.sqlState == "55006" && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(250))
                } catch let error as PostgresError where error.sqlState == "42501" {
                    throw ApplyError(description: "may not use replication origins (\(error.message)); `govex check` prints the GRANTs needed")
                }
            }
            return try await body(DeliveryApplier(sql: sql, subscription: subscription, resource: resource, schema: schema, table: table))
        }
    }

    /// The last delivery applied (0 before the first).
    public func cursor() async throws -> UInt64 {
        UInt64(try await sql.query("SELECT delivered_through::text FROM govex.delivery_cursors WHERE subscription = $1",
                                   [String(subscription)]).rows.first?[0] ?? "0") ?? 0
    }

    /// Applies delivery number `sequence` of this subscription, unless it already was.
    public func apply(_ records: [ChangeRecord], sequence: UInt64, origin: DeliveryOrigin) async throws -> Outcome {
        let statements = try ApplyPlan.statements(for: records.filter { $0.resource == resource }, schema: schema, table: table)
        return try await sql.transaction {
            try await sql.query("""
                INSERT INTO govex.delivery_cursors (subscription, resource, delivered_through) VALUES ($1, $2, 0)
                ON CONFLICT (subscription) DO NOTHING
                """, [String(subscription), resource])
            let through = UInt64(try await sql.query("""
                SELECT delivered_through::text FROM govex.delivery_cursors WHERE subscription = $1 FOR UPDATE
                """, [String(subscription)]).rows.first?[0] ?? "0") ?? 0
            if sequence <= through { return .alreadyApplied }
            guard sequence == through + 1 else {
                throw ApplyError(description: "delivery \(sequence) of subscription \(subscription) arrived, but \(through + 1) is the next to apply")
            }
            for statement in statements {
                do {
                    try await sql.query(statement.sql, statement.parameters)
                } catch let error as PostgresError {
                    throw ApplyError(description: "delivery \(sequence) (\(origin.node) batch \(origin.epoch)/\(origin.sequence)) into \(schema).\(table): \(error.message)"
                                     + (error.detail.map { "; \($0)" } ?? ""))
                }
            }
            try await sql.query("""
                UPDATE govex.delivery_cursors SET delivered_through = $2, origin_node = $3, origin_epoch = $4, origin_sequence = $5, applied_at = now()
                WHERE subscription = $1
                """, [String(subscription), String(sequence), origin.node, String(origin.epoch), String(origin.sequence)])
            return .applied(statements: statements.count)
        }
    }
}
