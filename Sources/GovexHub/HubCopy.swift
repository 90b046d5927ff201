import Foundation
import GovexDiff
import GovexPostgres
import GovexWire

/// The hub's copy of each resource (`govex.resource_rows`): the current row of every key,
/// kept for backfill. Rows are stored in `Column.rowEncoding` (names and typed values as a
/// batch carries them), so that the ingest of every accepted batch writes its rows with
/// binary parameters and no text or JSON is built or parsed on either side.
public enum HubCopy {
    /// A stored row: its canonical key text and its columns.
    public struct Row: Sendable, Equatable {
        public var key: String
        public var columns: [Column]

        public init(key: String, columns: [Column]) {
            self.key = key
            self.columns = columns
        }

        public func value(of name: String) -> Value? { columns.first { $0.name == name }?.value }
    }

    /// Writes a batch's effect: truncates, then one statement for all deletes and upserts.
    /// Rows missing unchanged TOAST columns are first completed from their stored rows.
    /// The merger calls it for each queued batch, in queue order (see `GoldenQueue`).
    static func apply(_ changes: ResourceStateChanges, node: String, epoch: String, sequence: String, on sql: PostgresConnection) async throws {
        if !changes.truncated.isEmpty {
            try await sql.query("DELETE FROM govex.resource_rows WHERE resource = ANY($1)", binding: [.textArray(changes.truncated)])
        }
        guard !changes.upserts.isEmpty || !changes.deletes.isEmpty else { return }
        let rows = try await completeRows(changes.upserts, on: sql)
        let (resources, keys, encoded) = (changes.upserts.map(\.resource), changes.upserts.map(\.key), rows.map(Column.rowEncoding))
        let (buckets, hashes) = digests(keys: keys, rows: encoded)
        // New keys go in with a plain INSERT: half the index work of an upsert, which first
        // probes the index and takes a speculative-insertion lock for every row.
        if changes.onlyInserts, try await sql.recovering([PostgresConnection.uniqueViolation], {
            try await sql.query("""
                INSERT INTO govex.resource_rows (resource, key, row_data, node_id, epoch, sequence, key_bucket, row_hash)
                SELECT u.resource, u.key, u.row_data, $4, $5, $6, u.key_bucket, u.row_hash
                FROM unnest($1::text[], $2::text[], $3::bytea[], $7::int8[], $8::int8[]) AS u(resource, key, row_data, key_bucket, row_hash)
                """, binding: [.textArray(resources), .textArray(keys), .byteaArray(encoded), .text(node), .text(epoch), .text(sequence),
                               .int8Array(buckets), .int8Array(hashes)])
        }) {
            return
        }
        try await write(resources: resources, keys: keys, rows: encoded, buckets: buckets, hashes: hashes, deletes: changes.deletes,
                        node: node, epoch: epoch, sequence: sequence, on: sql)
    }

    /// Each row's reconcile digest (RowDigest), as the copy stores it: the bucket unsigned, the
    /// hash as its bit pattern.
    static func digests(keys: [String], rows: [[UInt8]]) -> (buckets: [Int64], hashes: [Int64]) {
        (keys.map { Int64(RowDigest.bucket(keyText: $0)) }, rows.map { Int64(bitPattern: RowDigest.hash(rowEncoding: $0)) })
    }

    static func write(resources: [String], keys: [String], rows: [[UInt8]], buckets: [Int64], hashes: [Int64],
                      deletes: [(resource: String, key: String)] = [],
                      node: String, epoch: String, sequence: String, on sql: PostgresConnection) async throws {
        try await sql.query("""
            WITH removed AS (
                DELETE FROM govex.resource_rows r USING unnest($4::text[], $5::text[]) AS d(resource, key)
                WHERE r.resource = d.resource AND r.key = d.key
            )
            INSERT INTO govex.resource_rows (resource, key, row_data, node_id, epoch, sequence, key_bucket, row_hash)
            SELECT u.resource, u.key, u.row_data, $6, $7, $8, u.key_bucket, u.row_hash
            FROM unnest($1::text[], $2::text[], $3::bytea[], $9::int8[], $10::int8[]) AS u(resource, key, row_data, key_bucket, row_hash)
            ON CONFLICT (resource, key) DO UPDATE SET row_data = EXCLUDED.row_data,
                node_id = EXCLUDED.node_id, epoch = EXCLUDED.epoch, sequence = EXCLUDED.sequence,
                key_bucket = EXCLUDED.key_bucket, row_hash = EXCLUDED.row_hash
            """, binding: [.textArray(resources), .textArray(keys), .byteaArray(rows),
                           .textArray(deletes.map(\.resource)), .textArray(deletes.map(\.key)),
                           .text(node), .text(epoch), .text(sequence), .int8Array(buckets), .int8Array(hashes)])
    }

    /// The summary of each range of `bits` bits (0…32) holding rows of `resource` in the
    /// copy, from the digests stored with them: an aggregate, no row is read whole.
    public static func summaries(of resource: String, bits: Int, on sql: PostgresConnection) async throws -> [UInt32: RowDigest.Summary] {
        precondition((0...32).contains(bits))
        var summaries: [UInt32: RowDigest.Summary] = [:]
        for row in try await sql.query("""
            SELECT (key_bucket >> (32 - $2::int4))::text, count(*)::text,
                   (((sum(row_hash::numeric) % 18446744073709551616) + 18446744073709551616) % 18446744073709551616)::text
            FROM govex.resource_rows WHERE resource = $1 GROUP BY 1
            """, [resource, String(bits)]).rows {
            guard let prefix = row[0].flatMap({ UInt32($0) }), let count = row[1].flatMap({ Int($0) }), let sum = row[2].flatMap({ UInt64($0) }) else { continue }
            summaries[prefix] = RowDigest.Summary(count: count, sum: sum)
        }
        return summaries
    }

    /// Part of migration 16: the digests of the rows stored before it, page by page.
    static func digestStoredRows(on sql: PostgresConnection) async throws {
        var after: (resource: String, key: String)? = nil
        while true {
            let page = try await sql.query("""
                SELECT resource, key, row_data FROM govex.resource_rows WHERE $1::text IS NULL OR (resource, key) > ($1, $2)
                ORDER BY resource, key LIMIT 5000
                """, [after?.resource, after?.key]).rows
            guard let last = page.last else { return }
            let keys = page.map { $0[1] ?? "" }
            let (buckets, hashes) = digests(keys: keys, rows: try page.map { try HubStore.bytea($0[2]) })
            try await sql.query("""
                UPDATE govex.resource_rows r SET key_bucket = u.key_bucket, row_hash = u.row_hash
                FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[]) AS u(resource, key, key_bucket, row_hash)
                WHERE r.resource = u.resource AND r.key = u.key
                """, binding: [.textArray(page.map { $0[0] ?? "" }), .textArray(keys), .int8Array(buckets), .int8Array(hashes)])
            after = (last[0] ?? "", last[1] ?? "")
        }
    }

    /// Each upsert's whole row: its own columns over those of its base row (read in one query).
    static func completeRows(_ upserts: [ResourceStateChanges.Upsert], on sql: PostgresConnection) async throws -> [[Column]] {
        let partial = upserts.filter { $0.baseKey != nil }
        guard !partial.isEmpty else { return upserts.map(\.columns) }
        struct Slot: Hashable {
            let resource: String
            let key: String
        }
        var stored: [Slot: [Column]] = [:]
        for row in try await sql.query("""
            SELECT s.resource, s.key, s.row_data FROM govex.resource_rows s
            JOIN unnest($1::text[], $2::text[]) AS b(resource, key) ON s.resource = b.resource AND s.key = b.key
            """, binding: [.textArray(partial.map(\.resource)), .textArray(partial.map { $0.baseKey ?? "" })]).rows {
            stored[Slot(resource: row[0] ?? "", key: row[1] ?? "")] = try Column.decodeRow(HubStore.bytea(row[2]))
        }
        return upserts.map { upsert in
            guard let baseKey = upsert.baseKey, let base = stored[Slot(resource: upsert.resource, key: baseKey)] else { return upsert.columns }
            return completed(upsert, base: base)
        }
    }

    /// What `apply` does to the copy, done to one resource's rows in memory (key text →
    /// columns; `changes` only of that resource): for
    /// backfill, which adds the changes still waiting in the merge queue to the stored rows.
    /// Partial rows complete from the rows as they were before the batch, as in `apply`.
    public static func replay(_ changes: ResourceStateChanges, onto rows: inout [String: [Column]]) {
        if !changes.truncated.isEmpty { rows = [:] }
        let before = rows
        for delete in changes.deletes { rows[delete.key] = nil }
        for upsert in changes.upserts {
            guard let baseKey = upsert.baseKey, let base = before[baseKey] else {
                rows[upsert.key] = upsert.columns
                continue
            }
            rows[upsert.key] = completed(upsert, base: base)
        }
    }

    /// An upsert's columns over its base row's: the base's order, then columns it lacked.
    static func completed(_ upsert: ResourceStateChanges.Upsert, base: [Column]) -> [Column] {
        base.map { column in upsert.columns.first { $0.name == column.name } ?? column }
            + upsert.columns.filter { column in !base.contains { $0.name == column.name } }
    }

    /// A resource's stored rows in key order (bytewise: the key is `COLLATE "C"`).
    public static func rows(of resource: String, on sql: PostgresConnection) async throws -> [Row] {
        try await sql.query("SELECT key, row_data FROM govex.resource_rows WHERE resource = $1 ORDER BY key", [resource]).rows.map { row in
            Row(key: row[0] ?? "", columns: try Column.decodeRow(HubStore.bytea(row[1])))
        }
    }

    // MARK: The copy of schema version 10 and before

    /// Moves the rows of the version-10 copy (jsonb text forms, with type tags) into the
    /// binary copy, page by page, then drops the old table. Part of migration 11: it runs in
    /// the migration's transaction, so a hub either has the old copy or the whole new one.
    static func convertJSONBCopy(on sql: PostgresConnection) async throws {
        struct Stored: Decodable {
            let values: [String: String?]
            let types: [String: String]
        }
        var after: (resource: String, key: String)? = nil
        while true {
            let page = try await sql.query("""
                SELECT resource, key, json_build_object('values', row_values, 'types', row_types)::text, node_id, epoch::text, sequence::text
                FROM govex.resource_rows_jsonb WHERE $1::text IS NULL OR (resource, key) > ($1, $2)
                ORDER BY resource, key LIMIT 5000
                """, [after?.resource, after?.key]).rows
            guard let last = page.last else { break }
            // Rows of one page may come from different batches: written in groups that share one.
            var groups: [String: [(resource: String, key: String, row: [UInt8])]] = [:]
            var origins: [String: (node: String, epoch: String, sequence: String)] = [:]
            for row in page {
                let stored = try JSONDecoder().decode(Stored.self, from: Data((row[2] ?? "{}").utf8))
                let columns = stored.values.keys.sorted().map { name in
                    Column(name, Self.value(stored.values[name] ?? nil, typeTag: stored.types[name]))
                }
                let origin = "\(row[3] ?? "")/\(row[4] ?? "0")/\(row[5] ?? "0")"
                origins[origin] = (row[3] ?? "", row[4] ?? "0", row[5] ?? "0")
                groups[origin, default: []].append((row[0] ?? "", row[1] ?? "", Column.rowEncoding(columns)))
            }
            for (origin, rows) in groups {
                let (node, epoch, sequence) = origins[origin]!
                try await sql.query("""
                    INSERT INTO govex.resource_rows (resource, key, row_data, node_id, epoch, sequence)
                    SELECT u.resource, u.key, u.row_data, $4, $5, $6 FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(resource, key, row_data)
                    """, binding: [.textArray(rows.map(\.resource)), .textArray(rows.map(\.key)), .byteaArray(rows.map(\.row)),
                                   .text(node), .text(epoch), .text(sequence)])
            }
            after = (last[0] ?? "", last[1] ?? "")
        }
        try await sql.query("DROP TABLE govex.resource_rows_jsonb")
    }

    /// A stored text form as the value its type tag names; a text that does not read as its
    /// type stays text (PostgreSQL, at a subscriber, converts text into the column's type).
    static func value(_ text: String?, typeTag: String?) -> Value {
        guard let text else { return .null }
        return (try? Value(postgresText: text, type: ValueTypeTag.type(of: typeTag))) ?? .text(text)
    }
}

/// A value's type as the version-10 hub copy recorded it beside the text form: the value model's
/// type name, or `other:` and PostgreSQL's own name for a type govex does not model.
enum ValueTypeTag {
    static func type(of tag: String?) -> ValueType {
        switch tag ?? "text" {
        case "bool": return .bool
        case "int2": return .int2
        case "int4": return .int4
        case "int8": return .int8
        case "float4": return .float4
        case "float8": return .float8
        case "numeric": return .numeric
        case "bytea": return .bytea
        case "date": return .date
        case "time": return .time
        case "timestamp": return .timestamp
        case "timestamptz": return .timestamptz
        case "uuid": return .uuid
        case "json": return .json
        case "jsonb": return .jsonb
        case let other where other.hasPrefix("other:"): return .other(String(other.dropFirst(6)))
        default: return .text
        }
    }
}
