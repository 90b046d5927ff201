import GovexPostgres
import GovexWire
import Synchronization

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
    /// The database refused the delivery itself (a constraint, a type, a missing table or
    /// column): trying again as it is will fail again. Otherwise (the connection, a
    /// deadlock, the server shutting down) it may well succeed.
    public let permanent: Bool
    /// What a log line may say: no values of rows (PostgreSQL's message and detail can quote
    /// them: `Failing row contains (…)`). The full description stays with the dead letter.
    public let loggable: String

    public init(description: String, permanent: Bool = true, loggable: String? = nil) {
        self.description = description
        self.permanent = permanent
        self.loggable = loggable ?? description
    }

    /// An error for a log line, without row data.
    public static func loggable(_ error: any Error) -> String {
        switch error {
        case let error as ApplyError: return error.loggable
        case let error as PostgresError: return error.loggable
        default: return "\(error)"
        }
    }

    /// SQLSTATE classes that say nothing about the delivery: connection exceptions,
    /// transaction rollbacks (serialization, deadlock), insufficient resources, operator
    /// intervention, system errors; and no SQLSTATE at all (the connection broke).
    public static func isTransient(_ error: PostgresError) -> Bool {
        guard let state = error.sqlState else { return true }
        return ["08", "40", "53", "57", "58"].contains(String(state.prefix(2))) || state == "55006" || state == "55P03"
    }
}

/// Applies one subscription's deliveries to its local table. Each delivery and the
/// subscription's cursor commit in one transaction: a redelivery finds the cursor past it
/// and changes nothing, and a delivery that is not the next one is refused. The session
/// runs under the replication origin `govex_apply_<database oid>_<subscription>`, which the capture
/// side skips, so applied rows are never captured back out (no echo loops).
public final class DeliveryApplier: Sendable {
    public static let originPrefix = "govex_apply"

    public enum Outcome: Sendable, Equatable {
        case applied(statements: Int)
        case alreadyApplied
    }

    let sql: PostgresConnection
    /// The target's columns the session's staging table holds; nil until it is created.
    let stagedColumns = Mutex<Set<String>?>(nil)
    static let stage = "pg_temp.govex_stage"
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

    /// Replication origins are shared by every database of a PostgreSQL cluster, and
    /// subscription numbers are only unique per hub: the database's oid keeps two agents on
    /// one cluster (or two hubs' subscription 1) from waiting on each other's origin.
    public static func originName(subscription: Int64, database: UInt32) -> String { "\(originPrefix)_\(database)_\(subscription)" }

    /// Runs `body` with an applier on its own connection, closed afterwards. A replication
    /// origin is held by one session at a time; after a crash the old session may hold it for
    /// a moment, so setting it up is retried for up to `originWait`.
    public static func with<T>(conninfo: String, subscription: Int64, resource: String, schema: String, table: String,
                               originWait: Duration = .seconds(60), _ body: (DeliveryApplier) async throws -> T) async throws -> T {
        try await PostgresConnection.with(conninfo, name: "govex-apply") { sql in
            try await OwnTables.prepare(OwnTables.forSubscriptions, in: sql)
            let databaseOID = UInt32(try await sql.query("SELECT oid::text FROM pg_catalog.pg_database WHERE datname = current_database()")
                .rows.first?[0] ?? "") ?? 0
            let origin = originName(subscription: subscription, database: databaseOID)
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

    /// Records a group of deliveries may hold: a subscriber that is behind applies the
    /// provider deliveries waiting in one transaction (one `COPY` and one statement per
    /// kind instead of one per delivery).
    public static let groupRecords = 50_000

    /// Consecutive deliveries (of `recordCounts[i]` records each) in groups of up to
    /// `groupRecords` records; one that may not join others (`joinable` false) stays alone.
    public static func groups(recordCounts: [Int], joinable: (Int) -> Bool = { _ in true }) -> [Range<Int>] {
        var groups: [Range<Int>] = []
        var start = 0, records = 0
        for index in recordCounts.indices {
            if index > start, !joinable(index) || !joinable(start) || records + recordCounts[index] > groupRecords {
                groups.append(start..<index)
                (start, records) = (index, 0)
            }
            records += recordCounts[index]
        }
        if !recordCounts.isEmpty { groups.append(start..<recordCounts.count) }
        return groups
    }

    /// A delivery made ready to apply: its steps, with each staged run's `COPY` text built.
    /// Pure work, apart from the database: a puller prepares the next delivery while the
    /// current one is being applied.
    public struct Prepared: Sendable {
        /// SQL and `COPY` text only: the planned rows are freed where they were planned, not
        /// on the apply's path.
        enum Step: Sendable {
            case statement(ApplyStatement)
            case staged(copy: String, text: [UInt8], statements: [String])
            /// Rows that are all new keys, by their look: copied straight into the table; if
            /// it holds one of the keys already, staged (`stagedCopy`, each line behind
            /// `linePrefix`) and applied with `statements` instead.
            case newRows(copy: String, text: [UInt8], keyFields: Int, stagedCopy: String, linePrefix: [UInt8], statements: [String])
        }
        let steps: [Step]
        let columns: Set<String>
        let context: String
        /// The deliveries it applies, `firstSequence...sequence` (several when a subscriber
        /// that is behind applies those waiting together).
        public let firstSequence: UInt64
        public let sequence: UInt64
        public let origin: DeliveryOrigin
    }

    /// Plans delivery `sequence` (its records of this applier's resource) for `table`.
    /// `firstSequence`: for consecutive deliveries through `sequence` applied as one (their
    /// records in order; `origin` is the last one's).
    public func prepare(_ records: [ChangeRecord], sequence: UInt64, origin: DeliveryOrigin, firstSequence: UInt64? = nil) throws(ApplyError) -> Prepared {
        let first = firstSequence ?? sequence
        let context = first == sequence
            ? "delivery \(sequence) (\(origin.node) batch \(origin.epoch)/\(origin.sequence)) into \(schema).\(table)"
            : "deliveries \(first)–\(sequence) (through \(origin.node) batch \(origin.epoch)/\(origin.sequence)) into \(schema).\(table)"
        let steps: [ApplyStep]
        do {
            steps = try ApplyPlan.steps(for: records.filter { $0.resource == resource }, schema: schema, table: table)
        } catch {
            throw ApplyError(description: "\(context): \(error.description)", loggable: "\(context): the delivery's records cannot be planned")
        }
        var columns = Set<String>()
        let target = SQLQuoting.qualified(schema: schema, name: table)
        let prepared = steps.map { step -> Prepared.Step in
            switch step {
            case .statement(let statement):
                return .statement(statement)
            case .newRows(let rows):
                let shape = rows.shape
                columns.formUnion(shape.keyNames + shape.columns)
                var text: [UInt8] = []
                rows.directCopyData { text += $0 }
                return .newRows(copy: shape.directCopyStatement(target: target), text: text, keyFields: shape.keyNames.count,
                                stagedCopy: shape.copyStatement(stage: Self.stage), linePrefix: shape.stagedLinePrefix,
                                statements: [shape.upsertStatement(presence: String(repeating: "1", count: shape.columns.count), target: target, stage: Self.stage)])
            case .staged(let changes):
                columns.formUnion(changes.keyNames + changes.columns)
                var text: [UInt8] = []
                if changes.onlyNewRows {
                    changes.directCopyData { text += $0 }
                    return .newRows(copy: changes.directCopyStatement(target: target), text: text, keyFields: changes.keyNames.count,
                                    stagedCopy: changes.copyStatement(stage: Self.stage), linePrefix: changes.stagedLinePrefix,
                                    statements: changes.statements(target: target, stage: Self.stage))
                }
                changes.copyData { text += $0 }
                return .staged(copy: changes.copyStatement(stage: Self.stage), text: text, statements: changes.statements(target: target, stage: Self.stage))
            }
        }
        return Prepared(steps: prepared, columns: columns, context: context, firstSequence: first, sequence: sequence, origin: origin)
    }

    /// Applies delivery number `sequence` of this subscription, unless it already was: each
    /// staged run copied into the session's staging table and applied set-based, in one
    /// transaction with the cursor.
    public func apply(_ records: [ChangeRecord], sequence: UInt64, origin: DeliveryOrigin) async throws -> Outcome {
        try await apply(try prepare(records, sequence: sequence, origin: origin))
    }

    public func apply(_ prepared: Prepared) async throws -> Outcome {
        let (context, sequence, origin) = (prepared.context, prepared.sequence, prepared.origin)
        try await prepareStage(columns: prepared.columns, context: context)
        do {
            return try await sql.transaction {
                let through = try await lockedCursor()
                if sequence <= through { return .alreadyApplied }
                guard prepared.firstSequence == through + 1 else {
                    throw ApplyError(description: "delivery \(prepared.firstSequence) of subscription \(subscription) arrived, but \(through + 1) is the next to apply",
                                     permanent: false)
                }
                var statements = 0
                var staged = 0
                for step in prepared.steps {
                    switch step {
                    case .statement(let statement):
                        try await sql.query(statement.sql, statement.parameters)
                        statements += 1
                    case .staged(let copy, let text, let runStatements):
                        if staged > 0 { try await sql.query("TRUNCATE \(Self.stage)") }
                        _ = try await sql.copyIn(copy) { writer in try writer.write(text) }
                        for statement in runStatements { try await sql.query(statement) }
                        statements += 1
                        staged += 1
                    case .newRows(let copy, let text, let keyFields, let stagedCopy, let linePrefix, let runStatements):
                        // Half the index work of an upsert, and no staging table.
                        statements += 1
                        if try await sql.recovering([PostgresConnection.uniqueViolation], {
                            _ = try await sql.copyIn(copy) { writer in try writer.write(text) }
                        }) {
                            continue
                        }
                        if staged > 0 { try await sql.query("TRUNCATE \(Self.stage)") }
                        let stagedText = StagedChanges.stagedText(fromDirect: text, linePrefix: linePrefix, keyFields: keyFields)
                        _ = try await sql.copyIn(stagedCopy) { writer in try writer.write(stagedText) }
                        for statement in runStatements { try await sql.query(statement) }
                        staged += 1
                    }
                }
                try await advanceCursor(to: sequence, origin: origin)
                return .applied(statements: statements)
            }
        } catch let error as PostgresError {
            // The DBA may be changing the table to fix this: the next try reads it again.
            stagedColumns.withLock { $0 = nil }
            throw ApplyError(description: "\(context): \(error.message)" + (error.detail.map { "; \($0)" } ?? ""),
                             permanent: !ApplyError.isTransient(error), loggable: "\(context): \(error.loggable)")
        }
    }

    /// The cursor, locked until the transaction ends (the row is made on first use).
    func lockedCursor() async throws -> UInt64 {
        try await sql.query("""
            INSERT INTO govex.delivery_cursors (subscription, resource, delivered_through) VALUES ($1, $2, 0)
            ON CONFLICT (subscription) DO NOTHING
            """, [String(subscription), resource])
        return UInt64(try await sql.query("""
            SELECT delivered_through::text FROM govex.delivery_cursors WHERE subscription = $1 FOR UPDATE
            """, [String(subscription)]).rows.first?[0] ?? "0") ?? 0
    }

    func advanceCursor(to sequence: UInt64, origin: DeliveryOrigin) async throws {
        try await sql.query("""
            UPDATE govex.delivery_cursors SET delivered_through = $2, origin_node = $3, origin_epoch = $4, origin_sequence = $5, applied_at = now()
            WHERE subscription = $1
            """, [String(subscription), String(sequence), origin.node, String(origin.epoch), String(origin.sequence)])
    }

    /// Creates the session's staging table with the target's columns and types (a domain's
    /// base type, so its constraints apply once, at the target), unless the one there already
    /// holds `columns`. `ON COMMIT DELETE ROWS` empties it after every delivery.
    func prepareStage(columns: Set<String>, context: String) async throws {
        if let known = stagedColumns.withLock({ $0 }), columns.isSubset(of: known) { return }
        let attributes: [[String?]]
        do {
            attributes = try await sql.query("""
                SELECT a.attname, CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) ELSE format_type(a.atttypid, a.atttypmod) END
                FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
                ORDER BY a.attnum
                """, [SQLQuoting.qualified(schema: schema, name: table)]).rows
        } catch let error as PostgresError {
            throw ApplyError(description: "\(context): \(error.message)", permanent: !ApplyError.isTransient(error), loggable: "\(context): \(error.loggable)")
        }
        let known = Set(attributes.compactMap { $0[0] })
        let missing = columns.subtracting(known).sorted()
        guard missing.isEmpty else {
            throw ApplyError(description: "\(context): the table has no column \(missing.joined(separator: ", ")) (add it, or narrow the subscription's columns)")
        }
        let definitions = [
            "\(StagedChanges.actionColumn) \"char\" NOT NULL", "\(StagedChanges.replacesColumn) boolean NOT NULL", "\(StagedChanges.presentColumn) text NOT NULL",
        ] + attributes.map { "\(SQLQuoting.identifier($0[0] ?? "")) \($0[1] ?? "text")" }
        try await sql.query("DROP TABLE IF EXISTS \(Self.stage)")
        try await sql.query("CREATE TEMPORARY TABLE govex_stage (\(definitions.joined(separator: ", "))) ON COMMIT DELETE ROWS")
        stagedColumns.withLock { $0 = known }
    }
}
