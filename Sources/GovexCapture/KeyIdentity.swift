import GovexPostgres
import GovexWire

/// Whether a mapped key identifies one row of its table: a unique index (not partial, not on
/// expressions) over key columns only, and every key column NOT NULL. Without both, two
/// source rows with one key become one row at the hub and at every subscriber, silently.
/// `govex check` reports the problems with their fix; capture refuses to start on them.
public enum KeyIdentity {
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public let message: String
        /// The DDL that fixes it.
        public let fix: String
        public var description: String { "\(message) (fix: \(fix))" }
    }

    /// The problems, from the table's unique indexes (each as its set of columns) and its
    /// nullable columns. `table` is the quoted, qualified name, for the fixes.
    public static func assess(key: [String], uniqueIndexes: [Set<String>], nullable: Set<String>, table: String) -> [Problem] {
        var problems: [Problem] = []
        let keySet = Set(key)
        if !uniqueIndexes.contains(where: { !$0.isEmpty && $0.isSubset(of: keySet) }) {
            problems.append(Problem(message: "key (\(key.joined(separator: ", "))) has no unique index: it may not identify one row",
                                    fix: "CREATE UNIQUE INDEX ON \(table) (\(key.map(SQLQuoting.identifier).joined(separator: ", ")))"))
        }
        for column in key where nullable.contains(column) {
            problems.append(Problem(message: "key column \(column) allows NULL",
                                    fix: "ALTER TABLE \(table) ALTER COLUMN \(SQLQuoting.identifier(column)) SET NOT NULL"))
        }
        return problems
    }

    /// The problems of `mapping`'s key in the database `sql` is connected to.
    public static func problems(_ mapping: TableMapping, on sql: PostgresConnection) async throws -> [Problem] {
        let table = SQLQuoting.qualified(schema: mapping.schema, name: mapping.table)
        guard try await sql.query("SELECT pg_catalog.to_regclass($1) IS NOT NULL", [table]).rows.first?[0] == "t" else {
            return [Problem(message: "table \(mapping.schema).\(mapping.table) does not exist", fix: "correct [[publish]] table, or create the table")]
        }
        let indexColumns = try await sql.query("""
            SELECT i.indexrelid::int8, a.attname FROM pg_catalog.pg_index i
            CROSS JOIN LATERAL unnest(i.indkey) AS k(attnum)
            JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
            """, [table]).rows
        var indexes: [String: Set<String>] = [:]
        for row in indexColumns { indexes[row[0] ?? "", default: []].insert(row[1] ?? "") }
        let nullable = try await sql.query("""
            SELECT a.attname FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND NOT a.attnotnull
            """, [table]).rows.compactMap { $0[0] }
        return assess(key: mapping.key, uniqueIndexes: Array(indexes.values), nullable: Set(nullable), table: table)
    }
}
