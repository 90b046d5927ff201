import Foundation
import GovexAPI
import GovexPostgres
import GovexWire

/// One act on the hub, as the audit trail holds it.
public struct AuditEntry: Sendable, Equatable {
    public var entry: UInt64
    /// RFC 3339 UTC with microseconds, as the database's clock gave it.
    public var at: String
    public var actor: String
    public var action: String
    public var subject: String
    /// Canonical JSON text (sorted keys), stored as text so its bytes never change.
    public var details: String
    public var previousDigest: [UInt8]
    public var digest: [UInt8]

    public init(entry: UInt64, at: String, actor: String, action: String, subject: String, details: String,
                previousDigest: [UInt8] = [], digest: [UInt8] = []) {
        self.entry = entry
        self.at = at
        self.actor = actor
        self.action = action
        self.subject = subject
        self.details = details
        self.previousDigest = previousDigest
        self.digest = digest
    }
}

/// The audit trail's hash chain, pure: each entry's digest covers its fields and the
/// previous entry's digest, so altering, removing or inserting an entry breaks every
/// digest after it; recomputing them all is caught by anchors (heads the hub signed into
/// receipts that agents keep).
public enum AuditChain {
    public static let genesis = [UInt8](repeating: 0, count: 32)

    /// SHA-256 over the previous digest and the entry's canonical form.
    public static func digest(of entry: AuditEntry, previous: [UInt8]) -> [UInt8] {
        let canonical = "[" + [String(entry.entry), BatchJSON.string(entry.at), BatchJSON.string(entry.actor), BatchJSON.string(entry.action),
                               BatchJSON.string(entry.subject), BatchJSON.string(entry.details)].joined(separator: ",") + "]"
        return DigestAlgorithm.sha256.hash(previous + Array(canonical.utf8))
    }

    /// A signed head: the hub said, in a receipt, that entry `entry` had digest `digest`.
    public struct Anchor: Sendable, Equatable {
        public var entry: UInt64
        public var digest: [UInt8]
        public var source: String

        public init(entry: UInt64, digest: [UInt8], source: String) {
            self.entry = entry
            self.digest = digest
            self.source = source
        }
    }

    public struct Problem: Error, Equatable, CustomStringConvertible {
        public let entry: UInt64
        public let reason: String
        public var description: String { "entry \(entry): \(reason)" }
    }

    /// Checks entries (in entry order) from the first, the stored head, and the anchors;
    /// names the first entry that does not hold.
    public static func verify(_ entries: [AuditEntry], head: (entry: UInt64, digest: [UInt8]), anchors: [Anchor] = []) -> Problem? {
        var previous = genesis
        var computed: [UInt64: [UInt8]] = [:]
        for (index, entry) in entries.enumerated() {
            let expected = UInt64(index + 1)
            guard entry.entry == expected else {
                return Problem(entry: expected, reason: entry.entry > expected ? "missing (the next stored entry is \(entry.entry))" : "appears twice")
            }
            guard entry.previousDigest == previous else {
                return Problem(entry: entry.entry, reason: "its previous digest does not match entry \(entry.entry - 1) (an entry before it was removed, added or rewritten)")
            }
            let digest = digest(of: entry, previous: previous)
            guard entry.digest == digest else {
                return Problem(entry: entry.entry, reason: "its content does not match its digest (altered: \(entry.action) \(entry.subject))")
            }
            computed[entry.entry] = digest
            previous = digest
        }
        let last = UInt64(entries.count)
        guard head.entry == last, head.digest == (last == 0 ? genesis : previous) else {
            return Problem(entry: min(head.entry, last + 1), reason: "the head (entry \(head.entry)) does not match the last entry (\(last)): entries were removed from the end")
        }
        for anchor in anchors.sorted(by: { $0.entry < $1.entry }) {
            guard let digest = computed[anchor.entry] else {
                return Problem(entry: anchor.entry, reason: "the hub signed this entry in \(anchor.source) but it is gone")
            }
            guard digest == anchor.digest else {
                return Problem(entry: anchor.entry, reason: "differs from what the hub signed in \(anchor.source): the chain was rewritten")
            }
        }
        return nil
    }
}

extension HubStore {
    /// Appends an entry inside the caller's transaction, under the head's row lock, so that
    /// concurrent hub replicas keep one chain. Returns the new head.
    @discardableResult
    public static func audit(_ action: String, subject: String, actor: String, details: [(String, String)] = [],
                             on sql: PostgresConnection) async throws -> (entry: UInt64, digest: [UInt8]) {
        let head = try await sql.query("""
            SELECT entry::text, digest, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM govex.audit_head FOR UPDATE
            """).rows[0]
        let previous = bytea(head[1])
        var entry = AuditEntry(entry: (UInt64(head[0] ?? "0") ?? 0) + 1, at: head[2] ?? "", actor: actor, action: action, subject: subject,
                               details: BatchJSON.object(details.sorted { $0.0 < $1.0 }), previousDigest: previous)
        entry.digest = AuditChain.digest(of: entry, previous: previous)
        try await sql.query("""
            INSERT INTO govex.audit_log (entry, at, actor, action, subject, details, previous_digest, digest)
            VALUES ($1, $2::timestamptz, $3, $4, $5, $6, $7::bytea, $8::bytea)
            """, [String(entry.entry), entry.at, actor, action, subject, entry.details, "\\x" + Hex.encode(previous), "\\x" + Hex.encode(entry.digest)])
        try await sql.query("UPDATE govex.audit_head SET entry = $1, digest = $2::bytea", [String(entry.entry), "\\x" + Hex.encode(entry.digest)])
        return (entry.entry, entry.digest)
    }

    /// The whole trail and its head, for `govex hub audit verify`.
    public static func auditTrail(on sql: PostgresConnection) async throws -> (entries: [AuditEntry], head: (entry: UInt64, digest: [UInt8])) {
        try await sql.transaction("REPEATABLE READ") {
            let entries = try await sql.query("""
                SELECT entry::text, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), actor, action, subject, details,
                       previous_digest, digest
                FROM govex.audit_log ORDER BY audit_log.entry  -- the column, not the text alias
                """).rows.map { row in
                AuditEntry(entry: UInt64(row[0] ?? "") ?? 0, at: row[1] ?? "", actor: row[2] ?? "", action: row[3] ?? "", subject: row[4] ?? "",
                           details: row[5] ?? "", previousDigest: bytea(row[6]), digest: bytea(row[7]))
            }
            let head = try await sql.query("SELECT entry::text, digest FROM govex.audit_head").rows[0]
            return (entries, (UInt64(head[0] ?? "0") ?? 0, bytea(head[1])))
        }
    }
}
