import Foundation
import GovexPolicy
import GovexPostgres
import GovexWire

/// A subject's golden table at the hub, `govex_golden.<subject>`: one row per subject key,
/// one column per slot of the subject's layout — each field's authoritative value under the
/// field's name, and what every other providing node reported under `field@node` — so the
/// merge reads and writes plain columns and administrators can query it directly.
///
/// A NULL column is either "nothing received" or a received NULL; `govex_nulls` names the
/// columns that hold a received NULL. Columns of fields or reporters a catalog change
/// removed stay (unread) until an administrator drops them.
struct GoldenTable {
    static let schema = "govex_golden"
    static let nullsColumn = "govex_nulls"
    static let updatedColumn = "govex_updated_at"

    let subject: GoldenMerge.Subject
    let name: String
    let columns: [String]
    /// Column name → slot, to read `govex_nulls`.
    let slotOfColumn: [String: Int]

    init(_ subject: GoldenMerge.Subject) {
        self.subject = subject
        name = SQLQuoting.qualified(schema: Self.schema, name: subject.code)
        columns = subject.slots.indices.map(subject.columnName)
        slotOfColumn = Dictionary(columns.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }

    private var quotedColumns: String { columns.map(SQLQuoting.identifier).joined(separator: ", ") }

    /// Creates the table, or adds the columns a catalog change introduced; on creation takes
    /// over the subject's records from the jsonb table of earlier versions. Looks before it
    /// alters: `ALTER TABLE` locks the table even when it has nothing to do.
    func ensure(on sql: PostgresConnection) async throws {
        // PostgreSQL would silently cut longer names, and two columns could become one.
        if let long = ([subject.code] + columns).first(where: { $0.utf8.count > 63 }) {
            throw GoldenTableError(message: "golden table name or column '\(long)' of subject \(subject.code) is longer than 63 bytes: shorten the subject code, field name or node ID")
        }
        let existing = try await sql.query("""
            SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
            """, [name]).rows.compactMap { $0[0] }
        if existing.isEmpty {
            try await sql.query("CREATE SCHEMA IF NOT EXISTS \(Self.schema)")
            // Updated in place three times per key when three departments feed it: room on
            // each page lets PostgreSQL keep new versions beside old ones (HOT) without index writes.
            try await sql.query("""
                CREATE TABLE IF NOT EXISTS \(name) (
                    \(Catalog.Subject.keyColumn) text COLLATE "C" PRIMARY KEY,
                    \(columns.map { "\(SQLQuoting.identifier($0)) text" }.joined(separator: ",\n    "))\(columns.isEmpty ? "" : ",")
                    \(Self.nullsColumn) text[] NOT NULL DEFAULT '{}',
                    \(Self.updatedColumn) timestamptz NOT NULL DEFAULT now()
                ) WITH (fillfactor = 50)
                """)
            try await adoptLegacyRecords(on: sql)
        } else {
            for column in columns where !existing.contains(column) {
                try await sql.query("ALTER TABLE \(name) ADD COLUMN IF NOT EXISTS \(SQLQuoting.identifier(column)) text")
            }
        }
    }

    /// Moves the subject's rows of `govex.golden_records` (jsonb, before golden tables) here.
    private func adoptLegacyRecords(on sql: PostgresConnection) async throws {
        guard try await sql.query("SELECT to_regclass('govex.golden_records') IS NOT NULL").rows.first?[0] == "t" else { return }
        func source(_ slot: Int) -> String {
            let field = SQLQuoting.literal(subject.fields[subject.slots[slot].field].name)
            return subject.slots[slot].node.map { "g.reports->\(field)->\(SQLQuoting.literal($0))" } ?? "g.row_values->\(field)"
        }
        let values = subject.slots.indices.map { "(\(source($0)))#>>'{}'" }
        let nulls = subject.slots.indices.map { "CASE WHEN jsonb_typeof(\(source($0))) = 'null' THEN \(SQLQuoting.literal(columns[$0])) END" }
        try await sql.query("""
            INSERT INTO \(name) (\(Catalog.Subject.keyColumn), \(quotedColumns)\(columns.isEmpty ? "" : ", ")\(Self.nullsColumn))
            SELECT g.key, \(values.joined(separator: ", "))\(columns.isEmpty ? "" : ", ")
                   array_remove(ARRAY[\(nulls.isEmpty ? "NULL" : nulls.joined(separator: ", "))]::text[], NULL)
            FROM govex.golden_records g WHERE g.subject = $1
            """, [subject.code])
        try await sql.query("DELETE FROM govex.golden_records WHERE subject = $1", [subject.code])
    }

    private var selectList: String {
        "\(Catalog.Subject.keyColumn), \(quotedColumns)\(columns.isEmpty ? "" : ", ")\(Self.nullsColumn)"
    }

    /// The records of `keys`, in one query.
    func records(keys: [String], on sql: PostgresConnection) async throws -> [String: GoldenMerge.Record] {
        var records: [String: GoldenMerge.Record] = [:]
        records.reserveCapacity(keys.count)
        // Looked up by index, key by key: for thousands of keys the planner would scan the whole
        // table (growing with it) instead.
        for row in try await sql.withIndexScans({
            try await sql.query("SELECT \(selectList) FROM \(name) WHERE \(Catalog.Subject.keyColumn) = ANY($1::text[])",
                                [HubStore.textArray(keys)]).rows
        }) {
            let record = record(from: row)
            records[record.key] = record
        }
        return records
    }

    /// Every record, in key order (a golden subscription's backfill).
    func allRecords(on sql: PostgresConnection) async throws -> [GoldenMerge.Record] {
        try await sql.query("SELECT \(selectList) FROM \(name) ORDER BY \(Catalog.Subject.keyColumn)").rows.map(record(from:))
    }

    func allKeys(on sql: PostgresConnection) async throws -> [String] {
        try await sql.query("SELECT \(Catalog.Subject.keyColumn) FROM \(name)").rows.compactMap { $0[0] }
    }

    private func record(from row: [String?]) -> GoldenMerge.Record {
        var record = GoldenMerge.Record(key: row[0] ?? "", slotCount: columns.count)
        for slot in columns.indices {
            if let value = row[slot + 1] { record.slots[slot] = .some(value) }
        }
        let nulls = row[columns.count + 1] ?? "{}"
        if nulls != "{}" {
            for column in Self.arrayElements(nulls) {
                if let slot = slotOfColumn[column] { record.slots[slot] = .some(nil) }
            }
        }
        return record
    }

    /// Writes the records a merge changed (compared with `before`, read under the subject's
    /// lock in this transaction, so no other writer adds keys meanwhile): new keys by `COPY`
    /// straight into the table; changed ones by `COPY` of the columns any of them changed into
    /// a staging table and one `UPDATE`; records left with nothing are deleted. A department's
    /// batch changes only its own slots.
    func write(_ records: [GoldenMerge.Record], before: [String: GoldenMerge.Record], on sql: PostgresConnection) async throws {
        var changedSlots = Array(repeating: false, count: columns.count)
        var added: [GoldenMerge.Record] = [], changed: [GoldenMerge.Record] = []
        var emptied: [String] = []
        for record in records {
            guard let earlier = before[record.key] else {
                if !record.isEmpty { added.append(record) }
                continue
            }
            guard earlier.slots != record.slots else { continue }
            if record.isEmpty {
                emptied.append(record.key)
                continue
            }
            for slot in record.slots.indices where record.slots[slot] != earlier.slots[slot] { changedSlots[slot] = true }
            changed.append(record)
        }
        if !emptied.isEmpty {
            try await sql.query("DELETE FROM \(name) WHERE \(Catalog.Subject.keyColumn) = ANY($1::text[])", [HubStore.textArray(emptied)])
        }
        if !added.isEmpty {
            let table = self, slots = Array(columns.indices), records = added
            _ = try await sql.copyIn("COPY \(name) (\(columnList(slots))) FROM STDIN") { try table.copy(records, slots: slots, to: &$0) }
        }
        guard !changed.isEmpty else { return }
        let written = columns.indices.filter { changedSlots[$0] }
        let list = columnList(written)
        // Dropped at commit: a layout change between transactions must not meet an old copy.
        try await sql.query("CREATE TEMPORARY TABLE govex_golden_stage ON COMMIT DROP AS SELECT \(list) FROM \(name) WITH NO DATA")
        let table = self, records = changed
        _ = try await sql.copyIn("COPY pg_temp.govex_golden_stage FROM STDIN") { try table.copy(records, slots: written, to: &$0) }
        let key = Catalog.Subject.keyColumn
        try await sql.query("""
            UPDATE \(name) g SET \((written.map { SQLQuoting.identifier(columns[$0]) } + [Self.nullsColumn]).map { "\($0) = s.\($0)" }.joined(separator: ", ")),
                \(Self.updatedColumn) = now()
            FROM pg_temp.govex_golden_stage s WHERE g.\(key) = s.\(key)
            """)
        try await sql.query("DROP TABLE pg_temp.govex_golden_stage")
    }

    /// The key, the given slots' columns and `govex_nulls`, quoted, in that order.
    private func columnList(_ slots: [Int]) -> String {
        ([Catalog.Subject.keyColumn] + slots.map { SQLQuoting.identifier(columns[$0]) } + [Self.nullsColumn]).joined(separator: ", ")
    }

    /// Sends `records` as `COPY` text rows of `columnList(slots)`, in chunks as they are
    /// made: PostgreSQL reads one while the next is built.
    private func copy(_ records: [GoldenMerge.Record], slots: [Int], to writer: inout CopyInWriter) throws {
        let chunk = 256 << 10
        var copy: [UInt8] = []
        copy.reserveCapacity(chunk + 4096)
        var nulls: [UInt8] = []
        for record in records {
            if copy.count >= chunk {
                try writer.write(copy)
                copy.removeAll(keepingCapacity: true)
            }
            CopyText.appendField(record.key, to: &copy)
            for slot in slots {
                copy.append(9)
                if case .some(.some(let text)) = record.slots[slot] { CopyText.appendField(text, to: &copy) } else { copy.append(contentsOf: [0x5C, 0x4E]) }
            }
            copy.append(9)
            nulls.removeAll(keepingCapacity: true)
            nulls.append(UInt8(ascii: "{"))
            for slot in record.slots.indices {
                guard case .some(.none) = record.slots[slot] else { continue }
                if nulls.count > 1 { nulls.append(UInt8(ascii: ",")) }
                Self.appendArrayElement(columns[slot], to: &nulls)
            }
            nulls.append(UInt8(ascii: "}"))
            CopyText.appendField(bytes: nulls, to: &copy)
            copy.append(10)
        }
        try writer.write(copy)
    }

    /// An element of a PostgreSQL array literal, quoted.
    static func appendArrayElement(_ text: String, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { buffer.append(UInt8(ascii: "\\")) }
            buffer.append(byte)
        }
        buffer.append(UInt8(ascii: "\""))
    }

    /// The elements of a one-dimensional text array's output form (`{a,"b c"}`).
    static func arrayElements(_ literal: String) -> [String] {
        var elements: [String] = []
        var current: [UInt8] = []
        var quoted = false, escaped = false
        for byte in literal.utf8.dropFirst().dropLast() {
            if escaped {
                current.append(byte)
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                quoted.toggle()
            } else if byte == UInt8(ascii: ","), !quoted {
                elements.append(String(decoding: current, as: UTF8.self))
                current = []
            } else {
                current.append(byte)
            }
        }
        if !literal.utf8.dropFirst().dropLast().isEmpty { elements.append(String(decoding: current, as: UTF8.self)) }
        return elements
    }
}

struct GoldenTableError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
