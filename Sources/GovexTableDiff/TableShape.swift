import GovexDiff
import GovexPostgres
import GovexWire

/// What is compared, and the SQL that reads it: the key and compared columns, resolved
/// against both tables, every identifier quoted.
public struct TableShape: Sendable {
    public struct Column: Sendable, Equatable {
        public var name: String
        /// `format_type` on the left side: what boundary literals are cast to.
        public var typeName: String
        /// Text-like: compared and ordered under `COLLATE "C"`.
        public var collatable: Bool
        /// How a row hash takes this column in.
        public var hashing = Hashing.printed
    }

    public enum Hashing: Sendable, Equatable {
        /// Through its text form.
        case printed
        /// By its type's own (seeded, 64-bit) hash function, after a cast when the type has
        /// none of its own: for the same type on both sides, and one whose hash tells apart
        /// exactly what its text does.
        case native(function: String, cast: String? = nil)
        /// By numeric's hash and its scale: the hash ignores the scale (`1.0` and `1.00`
        /// hash alike), which the text shows.
        case numeric
    }

    public var leftTable: String
    public var rightTable: String
    public var keys: [Column]
    public var compared: [Column]
    public var filter: String?
    /// Both servers have the seeded 64-bit hash functions (PostgreSQL 11 and later).
    public var typedHashes = false
    /// Both tables have a B-tree index that reads the key in the diff's order (its first
    /// column the first key column, text under `COLLATE "C"`): key ranges are index scans.
    public var keyOrderIndexed = false

    public var all: [Column] { keys + compared }

    /// A table name as `schema.table` or `table` (search path), quoted.
    public static func quotedTable(_ name: String) throws(TableDiffError) -> String {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else {
            throw TableDiffError("'\(name)' is not a table name: write TABLE or SCHEMA.TABLE")
        }
        return parts.map(SQLQuoting.identifier).joined(separator: ".")
    }

    /// Reads both tables' columns and checks the request against them.
    public static func resolve(left: PostgresConnection, right: PostgresConnection, leftTable: String, rightTable: String, keys: [String],
                               columns: [String]?, filter: String?) async throws -> TableShape {
        let quotedLeft = try quotedTable(leftTable), quotedRight = try quotedTable(rightTable)
        async let leftColumns = describe(quotedLeft, named: leftTable, side: "left", on: left)
        async let rightColumns = describe(quotedRight, named: rightTable, side: "right", on: right)
        let (l, r) = try await (leftColumns, rightColumns)
        guard !keys.isEmpty else { throw TableDiffError("--key names no column: give the key columns, e.g. --key id or --key region,id") }
        func find(_ name: String) throws(TableDiffError) -> Column {
            guard let column = l.first(where: { $0.name == name }) else {
                throw TableDiffError("left table \(leftTable) has no column \(name) (it has \(l.map(\.name).joined(separator: ", ")))")
            }
            guard r.contains(where: { $0.name == name }) else {
                throw TableDiffError("right table \(rightTable) has no column \(name) (it has \(r.map(\.name).joined(separator: ", ")))")
            }
            return column
        }
        func withHashing(_ column: Column) -> Column {
            var column = column
            column.hashing = r.first(where: { $0.name == column.name })?.typeName == column.typeName ? hashing(column.typeName) : .printed
            return column
        }
        let keyColumns = try keys.map(find).map(withHashing)
        let compared = try (columns ?? l.map(\.name)).filter { !keys.contains($0) }.map(find).map(withHashing)
        async let leftVersion = serverVersion(left)
        async let rightVersion = serverVersion(right)
        async let leftIndexed = hasKeyOrderIndex(quotedLeft, key: keyColumns[0].name, on: left)
        async let rightIndexed = hasKeyOrderIndex(quotedRight, key: keyColumns[0].name, on: right)
        var shape = TableShape(leftTable: quotedLeft, rightTable: quotedRight, keys: keyColumns, compared: compared, filter: filter)
        shape.typedHashes = try await min(leftVersion, rightVersion) >= 110_000
        let indexed = try await (leftIndexed, rightIndexed)
        shape.keyOrderIndexed = indexed.0 && indexed.1
        return shape
    }

    /// Whether a B-tree index on `table` starts with `key` and orders it as the diff does:
    /// not collatable, or under "C"/"POSIX" (or the database default when that is C).
    static func hasKeyOrderIndex(_ table: String, key: String, on sql: PostgresConnection) async throws -> Bool {
        try await sql.query("""
            SELECT EXISTS (
                SELECT 1 FROM pg_catalog.pg_index i
                JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
                JOIN pg_catalog.pg_am am ON am.oid = c.relam AND am.amname = 'btree'
                JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                LEFT JOIN pg_catalog.pg_collation co ON co.oid = i.indcollation[0]
                WHERE i.indrelid = to_regclass($1) AND a.attname = $2 AND i.indpred IS NULL
                  AND (i.indcollation[0] = 0 OR co.collname IN ('C', 'POSIX')
                       OR (co.collname = 'default'
                           AND (SELECT datcollate FROM pg_catalog.pg_database WHERE datname = current_database()) IN ('C', 'POSIX'))))
            """, [table, key]).rows.first?[0] == "t"
    }

    static func serverVersion(_ sql: PostgresConnection) async throws -> Int {
        Int(try await sql.query("SELECT current_setting('server_version_num')").rows.first?[0] ?? "") ?? 0
    }

    /// Types whose hash function separates exactly the values their output separates (under
    /// the pinned settings), numeric with its scale beside it. Not floats (`-0` and `0` hash
    /// alike), interval (`1 day` and `24 hours`), jsonb, arrays (their elements'), enums
    /// (hashed by OID, which differs between databases), nor any type this list does not name.
    static func hashing(_ typeName: String) -> Hashing {
        switch typeName {
        case "smallint", "integer": return .native(function: "pg_catalog.hashint4extended")
        case "boolean": return .native(function: "pg_catalog.hashint4extended", cast: "integer")
        case "bigint": return .native(function: "pg_catalog.hashint8extended")
        case "oid": return .native(function: "pg_catalog.hashoidextended")
        case "uuid": return .native(function: "pg_catalog.uuid_hash_extended")
        // A date is a whole day as a timestamp (infinite dates included).
        case "date": return .native(function: "pg_catalog.timestamp_hash_extended", cast: "timestamp")
        default: break
        }
        if typeName == "text" || typeName.wholeMatch(of: /character varying(\(\d+\))?/) != nil { return .native(function: "pg_catalog.hashtextextended") }
        // char(n) prints padded to n and hashes without the padding: alike when n is.
        if typeName.wholeMatch(of: /character\(\d+\)/) != nil { return .native(function: "pg_catalog.hashbpcharextended") }
        if typeName.wholeMatch(of: /numeric(\(\d+(,\d+)?\))?/) != nil { return .numeric }
        if typeName.wholeMatch(of: /time(\(\d\))? without time zone/) != nil { return .native(function: "pg_catalog.time_hash_extended") }
        if typeName.wholeMatch(of: /timestamp(\(\d\))? without time zone/) != nil { return .native(function: "pg_catalog.timestamp_hash_extended") }
        // timestamptz has no hash function of its own (its hash is timestamp's): as a
        // timestamp in the sessions' pinned UTC, one for one with the instant.
        if typeName.wholeMatch(of: /timestamp(\(\d\))? with time zone/) != nil {
            return .native(function: "pg_catalog.timestamp_hash_extended", cast: "timestamp")
        }
        return .printed
    }

    static func describe(_ quoted: String, named name: String, side: String, on sql: PostgresConnection) async throws -> [Column] {
        let rows = try await sql.query("""
            SELECT attname, pg_catalog.format_type(atttypid, atttypmod), attcollation <> 0
            FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum
            """, [quoted]).rows
        guard !rows.isEmpty else { throw TableDiffError("the \(side) database has no table \(name) (or no columns in it)") }
        return rows.map { Column(name: $0[0] ?? "", typeName: $0[1] ?? "text", collatable: $0[2] == "t") }
    }

    func ordered(_ column: Column) -> String {
        SQLQuoting.identifier(column.name) + (column.collatable ? " COLLATE \"C\"" : "")
    }

    var keyRow: String {
        keys.count == 1 ? ordered(keys[0]) : "(" + keys.map(ordered).joined(separator: ", ") + ")"
    }

    var orderBy: String { keys.map(ordered).joined(separator: ", ") }

    var selectList: String { all.map { SQLQuoting.identifier($0.name) }.joined(separator: ", ") }

    /// A row's 64-bit hash (summed as numeric, it does not overflow). Columns of types that
    /// hash as they print are hashed as themselves (text under `COLLATE "C"`, so by its
    /// bytes), the others together by their text form (sessions pin the settings that shape
    /// it, so both sides agree). Each column's hash has its own seed (and its own constant
    /// for NULL), so that values trading places between columns change the row's hash;
    /// their XOR is mixed once more before the sum, so that no structure of it survives
    /// into the sum (values trading places between rows). Cheaper than one
    /// `hash_record_extended` of the row, which first builds a record of every row.
    var rowHash: String {
        guard typedHashes else { return "pg_catalog.hashtextextended(ROW(\(selectList))::text, 0)" }
        var terms: [String] = []
        func term(_ function: String, _ argument: String) {
            let seed = terms.count + 1
            terms.append("coalesce(\(function)(\(argument), \(seed)), \(seed))")
        }
        for column in all {
            switch column.hashing {
            case let .native(function, cast): term(function, ordered(column) + (cast.map { "::" + $0 } ?? ""))
            case .numeric:
                term("pg_catalog.hash_numeric_extended", ordered(column))
                term("pg_catalog.hashint4extended", "pg_catalog.scale(\(SQLQuoting.identifier(column.name)))")
            case .printed: break
            }
        }
        let printed = all.filter { $0.hashing == .printed }
        if !printed.isEmpty { term("pg_catalog.hashtextextended", "ROW(\(printed.map { SQLQuoting.identifier($0.name) }.joined(separator: ", ")))::text") }
        return "pg_catalog.hashint8extended(\(terms.joined(separator: " # ")), 0)"
    }

    var filterCondition: String { filter.map { "(\($0))" } ?? "true" }

    /// A key as a row of typed literals (its columns' text forms).
    func literal(_ key: [String?]) -> String {
        keys.count == 1 ? literals(key) : "(" + literals(key) + ")"
    }

    /// The condition selecting one segment's keys.
    func condition(_ segment: Bisection.Segment, sample: [[String?]]) -> String {
        var parts: [String] = []
        if let lower = segment.lower { parts.append("\(keyRow) >= \(literal(sample[lower]))") }
        if let upper = segment.upper { parts.append("\(keyRow) < \(literal(sample[upper]))") }
        return parts.isEmpty ? "true" : parts.joined(separator: " AND ")
    }

    /// Whether `rows(in:)` reads `segments` as ranges (not one scan of the whole table).
    func scansRanges(_ segments: [Bisection.Segment]) -> Bool {
        !(segments.first?.lower == nil && segments.last?.upper == nil
          && zip(segments, segments.dropFirst()).allSatisfy { $0.upper != nil && $0.upper == $1.lower })
    }

    /// A query of the rows (of `table`, within the filter) in `segments`, each with its
    /// segment's index in `segments` as `govex_segment`, then `columns`.
    ///
    /// Segments that cover the whole key space, in order, are one scan with a binary search
    /// over the cuts. Others are a join of their bounds (a `VALUES` list) with the table, so
    /// that each range is an index range scan and each row is tested against its own range
    /// only — an `OR` of a thousand ranges would test every row against all of them.
    func rows(in segments: [Bisection.Segment], sample: [[String?]], table: String, columns: String) -> String {
        if !scansRanges(segments) {
            return "SELECT \(cutsBelow(Bisection.cuts(of: segments), sample: sample)) AS govex_segment, \(columns) FROM \(table) WHERE \(filterCondition)"
        }
        var parts: [String] = []
        var bounded: [String] = []
        for (index, segment) in segments.enumerated() {
            if let lower = segment.lower, let upper = segment.upper {
                bounded.append("(\(index), \(literals(sample[lower])), \(literals(sample[upper])))")
            } else {
                parts.append("SELECT \(index) AS govex_segment, \(columns) FROM \(table) WHERE \(filterCondition) AND \(condition(segment, sample: sample))")
            }
        }
        if !bounded.isEmpty {
            let lower = keys.indices.map { "govex_lower_\($0)" }, upper = keys.indices.map { "govex_upper_\($0)" }
            func row(_ names: [String]) -> String { names.count == 1 ? names[0] : "(" + names.joined(separator: ", ") + ")" }
            // LATERAL: each range is its own (index) scan. A plain join lets the planner scan
            // the table once and test every row against every range, minutes on 10M rows;
            // so does a LATERAL subquery the planner pulls up (`OFFSET 0` keeps it a subquery).
            parts.append("""
                SELECT govex_bounds.govex_seg AS govex_segment, govex_range.*
                FROM (VALUES \(bounded.joined(separator: ", "))) AS govex_bounds (govex_seg, \((lower + upper).joined(separator: ", ")))
                CROSS JOIN LATERAL (SELECT \(columns) FROM \(table)
                                    WHERE \(keyRow) >= \(row(lower.map { "govex_bounds." + $0 })) AND \(keyRow) < \(row(upper.map { "govex_bounds." + $0 }))
                                      AND \(filterCondition) OFFSET 0) AS govex_range
                """)
        }
        return parts.joined(separator: " UNION ALL ")
    }

    /// A key's typed literals, comma-separated.
    func literals(_ key: [String?]) -> String {
        zip(keys, key).map { column, text in
            text.map { "\(SQLQuoting.literal($0))::\(column.typeName)" } ?? "NULL::\(column.typeName)"
        }.joined(separator: ", ")
    }

    /// How many of `cuts` are at or below the row's key. A single key of a fixed-width type
    /// asks `width_bucket`, a binary search in C over an array; other keys get that search
    /// written as nested CASEs (log₂(cuts) comparisons, several times slower per row:
    /// `width_bucket` searches arrays of variable-width values from their start).
    func cutsBelow(_ cuts: [Int], sample: [[String?]]) -> String {
        if keys.count == 1, !cuts.isEmpty,
           keys[0].typeName.wholeMatch(of: /smallint|integer|bigint|date|uuid|timestamp(\(\d\))? with(out)? time zone/) != nil {
            return "pg_catalog.width_bucket(\(keyRow), ARRAY[\(cuts.map { literals(sample[$0]) }.joined(separator: ", "))])"
        }
        func tree(_ low: Int, _ high: Int) -> String {
            guard low < high else { return String(low) }
            let middle = (low + high + 1) / 2
            return "CASE WHEN \(keyRow) >= \(literal(sample[cuts[middle - 1]])) THEN \(tree(middle, high)) ELSE \(tree(low, middle - 1)) END"
        }
        return tree(0, cuts.count)
    }
}

public struct TableDiffError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
