import GovexPostgres
import GovexWire

/// A delivery its subscriber could not apply after every try, kept (as the signed file it
/// arrived as) in the subscriber's `govex.dead_letters` with the error, until the DBA
/// replays it (after fixing the cause) or skips it. Later deliveries of the same
/// subscription wait behind it; other subscriptions keep flowing.
public struct DeadLetter: Sendable, Equatable {
    public enum Status: String, Sendable, CaseIterable {
        /// Waiting for the DBA.
        case dead
        /// Asked for: the agent applies it again.
        case replay
        /// Asked for: the agent moves the cursor past it without applying it.
        case skip
        case replayed, skipped
    }

    public var id: Int64
    public var subscription: Int64
    public var resource: String
    public var target: String
    public var delivery: UInt64
    public var origin: DeliveryOrigin
    public var error: String
    public var attempts: Int
    public var status: Status
    public var deadAt: String
    public var resolvedAt: String?
    public var resolvedBy: String?
    public var reason: String?
    public var payloadBytes: Int
}

public enum DeadLetters {
    static let columns = """
        id, subscription, resource, target, delivery::text, origin_node, origin_epoch::text, origin_sequence::text, error, attempts, status,
        to_char(dead_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), to_char(resolved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        resolved_by, reason, octet_length(payload)
        """

    static func parse(_ row: [String?]) -> DeadLetter {
        DeadLetter(id: Int64(row[0] ?? "") ?? 0, subscription: Int64(row[1] ?? "") ?? 0, resource: row[2] ?? "", target: row[3] ?? "",
                   delivery: UInt64(row[4] ?? "") ?? 0,
                   origin: DeliveryOrigin(node: row[5] ?? "", epoch: UInt64(row[6] ?? "") ?? 0, sequence: UInt64(row[7] ?? "") ?? 0),
                   error: row[8] ?? "", attempts: Int(row[9] ?? "") ?? 0, status: DeadLetter.Status(rawValue: row[10] ?? "") ?? .dead,
                   deadAt: row[11] ?? "", resolvedAt: row[12], resolvedBy: row[13], reason: row[14], payloadBytes: Int(row[15] ?? "") ?? 0)
    }

    /// Dead letters, newest first; `status` nil lists those not resolved yet.
    public static func list(status: DeadLetter.Status?, subscription: Int64? = nil, on sql: PostgresConnection) async throws -> [DeadLetter] {
        let statuses = status.map { [$0.rawValue] } ?? ["dead", "replay", "skip"]
        return try await sql.query("""
            SELECT \(columns) FROM govex.dead_letters WHERE status = ANY($1::text[]) AND ($2::bigint IS NULL OR subscription = $2) ORDER BY id DESC
            """, ["{" + statuses.joined(separator: ",") + "}", subscription.map(String.init)]).rows.map(parse)
    }

    public static func find(_ id: Int64, on sql: PostgresConnection) async throws -> DeadLetter? {
        try await sql.query("SELECT \(columns) FROM govex.dead_letters WHERE id = $1", [String(id)]).rows.first.map(parse)
    }

    public struct RequestError: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) { self.description = description }
    }

    /// Asks the agent to replay or skip dead letter `id` (only one still waiting can be).
    public static func request(_ action: DeadLetter.Status, id: Int64, by: String, reason: String?, on sql: PostgresConnection) async throws {
        precondition(action == .replay || action == .skip)
        let changed = try await sql.query("""
            UPDATE govex.dead_letters SET status = $2, resolved_by = $3, reason = $4 WHERE id = $1 AND status IN ('dead', 'replay', 'skip') RETURNING id
            """, [String(id), action.rawValue, by, reason]).rows.count
        guard changed == 1 else {
            guard let letter = try await find(id, on: sql) else { throw RequestError(description: "there is no dead letter \(id) (see govex deadletter list)") }
            throw RequestError(description: "dead letter \(id) is already \(letter.status.rawValue)\(letter.resolvedAt.map { " (\($0))" } ?? "")")
        }
    }
}

extension DeliveryApplier {
    /// Keeps a delivery that failed `attempts` times; returns the dead letter's id. A delivery
    /// dead-lettered before (after a restart, or a failed replay) keeps its row and id.
    public func deadLetter(_ payload: [UInt8], sequence: UInt64, origin: DeliveryOrigin, error: String, attempts: Int) async throws -> Int64 {
        let row = try await sql.query("""
            INSERT INTO govex.dead_letters (subscription, resource, target, delivery, origin_node, origin_epoch, origin_sequence, error, attempts, payload)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::bytea)
            ON CONFLICT (subscription, delivery) DO UPDATE SET error = EXCLUDED.error, attempts = govex.dead_letters.attempts + EXCLUDED.attempts,
                status = 'dead', resolved_at = NULL, dead_at = now()
            RETURNING id
            """, [String(subscription), resource, schema + "." + table, String(sequence), origin.node, String(origin.epoch), String(origin.sequence),
                  error, String(attempts), "\\x" + Hex.encode(payload)]).rows
        return Int64(row.first?[0] ?? "") ?? 0
    }

    /// The dead letter this subscription waits behind, if any, with its stored delivery.
    public func waitingDeadLetter() async throws -> (letter: DeadLetter, payload: [UInt8])? {
        guard let row = try await sql.query("""
            SELECT \(DeadLetters.columns), encode(payload, 'hex') FROM govex.dead_letters
            WHERE subscription = $1 AND status IN ('dead', 'replay', 'skip') ORDER BY delivery LIMIT 1
            """, [String(subscription)]).rows.first else { return nil }
        return (DeadLetters.parse(row), Hex.decode(row[16] ?? "") ?? [])
    }

    /// Records how a dead letter ended: `replayed` or `skipped`, or back to `dead` with the
    /// error of a replay that failed again.
    public func settleDeadLetter(_ id: Int64, as status: DeadLetter.Status, error: String? = nil) async throws {
        if status == .dead {
            try await sql.query("UPDATE govex.dead_letters SET status = 'dead', error = $2, attempts = attempts + 1 WHERE id = $1", [String(id), error])
        } else {
            try await sql.query("UPDATE govex.dead_letters SET status = $2, resolved_at = now() WHERE id = $1", [String(id), status.rawValue])
        }
    }

    /// Moves the cursor past delivery `sequence` without applying it (the DBA's `skip`).
    public func skip(sequence: UInt64, origin: DeliveryOrigin) async throws {
        try await sql.transaction {
            let through = try await lockedCursor()
            guard sequence == through + 1 else {
                if sequence <= through { return }
                throw ApplyError(description: "cannot skip delivery \(sequence) of subscription \(subscription): \(through + 1) is the next to apply", permanent: false)
            }
            try await advanceCursor(to: sequence, origin: origin)
        }
    }
}
