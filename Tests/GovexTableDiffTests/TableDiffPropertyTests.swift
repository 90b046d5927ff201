import Foundation
import GovexDiff
import GovexPostgres
import GovexTableDiff
import GovexTestSupport
import GovexWire
import Testing

/// Random pairs of tables on a real server — integer, 18-character text and composite keys
/// with gaps and skew; text with Unicode and trailing spaces, numeric scales, timestamps,
/// booleans, NULLs — mutated by inserts, deletes, single-column updates, NULL↔value and
/// value-preserving-looking edits; the bisection (with tiny segments, so that it goes
/// several levels deep, and sometimes finds the differences dense) must report exactly
/// what a brute-force comparison of the two tables reports.
/// `GOVEX_DIFF_CASES` sets the number of cases (default 2,000).
@Suite("Table diff against brute force")
struct TableDiffPropertyTests {
    enum KeyKind: CaseIterable { case integer, text, composite }

    static let cases = Int(ProcessInfo.processInfo.environment["GOVEX_DIFF_CASES"] ?? "") ?? 2_000

    struct Generated {
        var kind: KeyKind
        /// key texts → column texts (name, amount, seen_at, flag), nil = NULL.
        var rows: [[String]: [String?]]
    }

    static let names = ["张秀英", "李建国", "王 芳", "O'Brien", "tab\there", "back\\slash", "emoji 🙂", "", "ß", "é"]

    static func key(_ kind: KeyKind, _ ordinal: Int, _ random: inout SplitMix64) -> [String] {
        switch kind {
        case .integer: return [String(ordinal * 3 + Int(random.next() % 3) - 1_000)]
        case .text:
            let alphabet = Array("0123456789XYZxyz")
            let body = String(ordinal).leftPadded(to: 10)
            return [body + String((0..<8).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })]
        case .composite: return [String(ordinal % 5), "k" + String(ordinal * 7 % 1_000)]
        }
    }

    static func values(_ random: inout SplitMix64) -> [String?] {
        [
            random.next() % 9 == 0 ? nil : names[Int(random.next() % UInt64(names.count))],
            random.next() % 9 == 0 ? nil : ["1.5", "2", "0.10", "-7.25", "1000000.001"][Int(random.next() % 5)],
            random.next() % 9 == 0 ? nil : "2024-0\(1 + random.next() % 9)-1\(random.next() % 9) 0\(random.next() % 9):00:00+00",
            random.next() % 9 == 0 ? nil : (random.next() % 2 == 0 ? "t" : "f"),
        ]
    }

    /// A change that looks small but is a difference: a trailing space, another scale, NULL↔value, a neighbour value.
    static func mutate(_ values: [String?], _ random: inout SplitMix64) -> [String?] {
        var changed = values
        let column = Int(random.next() % 4)
        switch (column, values[column]) {
        case (_, nil): changed[column] = [names[0], "3.5", "2030-01-01 00:00:00+00", "t"][column]
        case (0, let name?): changed[0] = random.next() % 2 == 0 ? name + " " : nil
        case (1, let amount?): changed[1] = amount.contains(".") ? amount + "0" : amount + ".0"
        case (2, _): changed[2] = "1999-12-31 23:59:59.5+00"
        default: changed[column] = nil
        }
        return changed
    }

    static func ddl(_ kind: KeyKind, _ table: String) -> String {
        let key = switch kind {
        case .integer: "id bigint, PRIMARY KEY (id)"
        case .text: "id text, PRIMARY KEY (id)"
        case .composite: "region int, code varchar(8), PRIMARY KEY (region, code)"
        }
        return "CREATE TABLE \(table) (\(key), name text, amount numeric, seen_at timestamptz, flag boolean)"
    }

    static func keyColumns(_ kind: KeyKind) -> [String] { kind == .composite ? ["region", "code"] : ["id"] }

    static func insert(_ rows: [[String]: [String?]], into table: String, kind: KeyKind, on sql: PostgresConnection) async throws {
        guard !rows.isEmpty else { return }
        for chunk in stride(from: 0, to: rows.count, by: 500).map({ Array(rows.sorted { $0.key.lexicographicallyPrecedes($1.key) }[$0..<min($0 + 500, rows.count)]) }) {
            let tuples = chunk.map { key, values in
                "(" + (key + values).map { $0.map(SQLQuoting.literal) ?? "NULL" }.joined(separator: ", ") + ")"
            }
            try await sql.query("INSERT INTO \(table) VALUES \(tuples.joined(separator: ", "))")
        }
    }

    /// (key texts, kind, columns) as a brute-force comparison of the generated rows gives them.
    static func expected(_ left: [[String]: [String?]], _ right: [[String]: [String?]]) -> Set<String> {
        var found = Set<String>()
        let columns = ["name", "amount", "seen_at", "flag"]
        for (key, values) in left {
            if let other = right[key] {
                let changed = columns.indices.filter { values[$0] != other[$0] }.map { columns[$0] }
                if !changed.isEmpty { found.insert("\(key) changed \(changed)") }
            } else {
                found.insert("\(key) only_left []")
            }
        }
        for key in right.keys where left[key] == nil { found.insert("\(key) only_right []") }
        return found
    }

    @Test("bisection equals brute force over random table pairs")
    func randomPairs() async throws {
        // Alone among the heavy tests: its DDL storm (a table pair per case) slows every
        // logical WAL sender on the server, and the capture tests' deadlines with them.
        try await HeavyTestGate.shared.runAlone { try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { leftSQL in
                try await PostgresConnection.with(database.conninfo) { rightSQL in
                    var random = SplitMix64(state: 0x7AB1E)
                    var methods: [String: Int] = [:]
                    for index in 0..<Self.cases {
                        let kind = KeyKind.allCases[index % 3]
                        var left: [[String]: [String?]] = [:]
                        let count = Int(random.next() % 4 == 0 ? random.next() % 8 : random.next() % 260)
                        var ordinal = 0
                        while left.count < count {
                            ordinal += random.next() % 5 == 0 ? Int(random.next() % 50) : 1  // gaps, and runs
                            left[Self.key(kind, ordinal, &random)] = Self.values(&random)
                        }
                        var right = left
                        let mutations = random.next() % 3 == 0 ? 0 : Int(random.next() % UInt64(max(2, count / (random.next() % 2 == 0 ? 20 : 2))))
                        for _ in 0..<mutations {
                            let keys = Array(right.keys)
                            switch random.next() % 4 {
                            case 0 where !keys.isEmpty: right[keys[Int(random.next() % UInt64(keys.count))]] = nil
                            case 2 where keys.count >= 2 && random.next() % 3 == 0:
                                // Two rows swap one column's values: a row hash that combined columns
                                // linearly would sum to the same total.
                                let (a, b) = (keys[Int(random.next() % UInt64(keys.count))], keys[Int(random.next() % UInt64(keys.count))])
                                let column = Int(random.next() % 4)
                                (right[a]![column], right[b]![column]) = (right[b]![column], right[a]![column])
                            case 1:
                                ordinal += 1 + Int(random.next() % 3)
                                right[Self.key(kind, random.next() % 2 == 0 ? ordinal : -ordinal, &random)] = Self.values(&random)
                            default:
                                if !keys.isEmpty {
                                    let key = keys[Int(random.next() % UInt64(keys.count))]
                                    right[key] = Self.mutate(right[key]!, &random)
                                }
                            }
                        }
                        try await leftSQL.script("DROP TABLE IF EXISTS l, r; \(Self.ddl(kind, "l")); \(Self.ddl(kind, "r"))")
                        try await Self.insert(left, into: "l", kind: kind, on: leftSQL)
                        try await Self.insert(right, into: "r", kind: kind, on: leftSQL)
                        // Analysed tables take the probe first (their sizes come from the statistics).
                        if random.next() % 2 == 0 { try await leftSQL.query("ANALYZE l, r") }

                        var options = TableDiff.Options()
                        options.fetchBelow = 1 + Int(random.next() % 6)
                        options.splitInto = 2 + Int(random.next() % 4)
                        options.maxFirstLevel = 2 + Int(random.next() % 8)
                        options.streamBelow = random.next() % 5 == 0 ? 1_000 : 0
                        options.denseShare = random.next() % 4 == 0 ? 0.2 : 1.0
                        options.probeSegments = 1 + Int(random.next() % 3)
                        let shape = try await TableShape.resolve(left: leftSQL, right: rightSQL, leftTable: "l", rightTable: "r",
                                                                 keys: Self.keyColumns(kind), columns: nil, filter: nil)
                        let report = try await TableDiff.run(left: leftSQL, right: rightSQL, shape: shape, options: options)
                        let found = Set(report.differences.map { difference in
                            "\(difference.key.map { $0.postgresText ?? "NULL" }) \(difference.kind.rawValue) \(difference.columns.map { shape.compared[$0].name })"
                        })
                        let expected = Self.expected(left, right)
                        #expect(found == expected, "case \(index) (\(kind), \(count) rows, \(report.method)): missing \(expected.subtracting(found)), extra \(found.subtracting(expected))")
                        #expect(report.differences.count == found.count, "case \(index): each key once")
                        if found != expected { return }
                        methods[String(report.method.prefix { $0 != "," }), default: 0] += 1
                    }
                    // Every path was taken: equal sums, small-table streaming, a dense probe, bisection.
                    #expect(["hash sums equal", "bisection", "streamed (small table)"].allSatisfy(methods.keys.contains)
                            && methods.keys.contains { $0.hasSuffix("probed segments differ)") }, "\(methods)")
                }
            }
        } }
    }
}

/// Values that a type's own hash function takes as equal but that print differently are
/// differences; so are values of different types on the two sides that print alike only
/// in part. Small, never-analysed tables: the whole-table hash sums alone decide.
@Suite("Table diff hashing")
struct TableDiffHashingTests {
    @Test("numeric scale, -0, interval forms, jsonb numbers, char(n) widths, cross-type columns and values trading places are told apart by the hash sums")
    func printedDifferences() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                let cases: [(left: String, right: String, leftValue: String, rightValue: String)] = [
                    ("numeric", "numeric", "1.0", "1.00"),
                    ("float8", "float8", "0", "-0"),
                    ("interval", "interval", "1 day", "24 hours"),
                    ("jsonb", "jsonb", "1.0", "1.00"),
                    ("char(4)", "char(5)", "ab", "ab"),
                    ("timestamp", "timestamptz", "2024-01-01 00:00:00", "2024-01-01 00:00:00+00"),
                    ("date", "integer", "2000-01-02", "1"),
                    ("text", "text", "a", "a "),
                ]
                for (left, right, leftValue, rightValue) in cases {
                    try await sql.script("""
                        DROP TABLE IF EXISTS l, r; CREATE TABLE l (id int PRIMARY KEY, v \(left)); CREATE TABLE r (id int PRIMARY KEY, v \(right));
                        INSERT INTO l VALUES (1, \(SQLQuoting.literal(leftValue))), (2, NULL); INSERT INTO r VALUES (1, \(SQLQuoting.literal(rightValue))), (2, NULL)
                        """)
                    let shape = try await TableShape.lr(on: sql)
                    #expect(shape.typedHashes)
                    let report = try await TableDiff.run(left: sql, right: sql, shape: shape)
                    #expect(report.differences.map(\.kind) == [.changed], "\(left) \(leftValue) vs \(right) \(rightValue): \(report.method)")
                }
                // Values trading places between two columns of a row, or between two rows: each the only difference.
                for (left, right, expected) in [("(1, 'x', 'y'), (2, 'p', 'p')", "(1, 'y', 'x'), (2, 'p', 'p')", [[0, 1]]),
                                                ("(1, 'p', NULL), (2, 'q', NULL)", "(1, 'q', NULL), (2, 'p', NULL)", [[0], [0]])] {
                    try await sql.script("""
                        DROP TABLE IF EXISTS l, r; CREATE TABLE l (id int PRIMARY KEY, a text, b text); CREATE TABLE r (LIKE l INCLUDING ALL);
                        INSERT INTO l VALUES \(left); INSERT INTO r VALUES \(right)
                        """)
                    let shape = try await TableShape.lr(on: sql)
                    let report = try await TableDiff.run(left: sql, right: sql, shape: shape)
                    #expect(report.differences.map(\.columns) == expected, "\(left) vs \(right): \(report.method)")
                }
                // Equal tables of natively hashed types are equal by their sums.
                try await sql.script("""
                    DROP TABLE IF EXISTS l, r;
                    CREATE TABLE l (id bigint PRIMARY KEY, c char(3), t timestamptz, d date, u uuid, b bytea, s varchar(5), f boolean, n numeric);
                    INSERT INTO l VALUES (1, 'x', '2024-05-06 07:08:09.5+02', '2024-05-06', '00000000-0000-0000-0000-000000000001', '\\x00ff', 'é', true, 1.50),
                                         (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'NaN');
                    CREATE TABLE r AS TABLE l; ALTER TABLE r ADD PRIMARY KEY (id)
                    """)
                let shape = try await TableShape.lr(on: sql)
                #expect(shape.all.allSatisfy { $0.name == "n" ? $0.hashing == .numeric : ($0.name == "b") == ($0.hashing == .printed) })
                let report = try await TableDiff.run(left: sql, right: sql, shape: shape)
                #expect(report.method == "hash sums equal")
            }
        }
    }
}

/// The probe reads 32 key ranges; without an index that reads the key in the diff's order
/// each would be a scan of the whole table, so it is left out and one scan decides.
@Suite("Table diff key index")
struct TableDiffKeyIndexTests {
    @Test("a text key indexed under another collation is detected, and the diff is still exact")
    func otherCollation() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                for (collation, indexed) in [("\"C\"", true), ("\"und-x-icu\"", false)] {
                    try await sql.script("""
                        DROP TABLE IF EXISTS l, r;
                        CREATE TABLE l (id text COLLATE \(collation) PRIMARY KEY, v int);
                        INSERT INTO l SELECT 'k' || g, g FROM generate_series(1, 3000) g;
                        CREATE TABLE r (LIKE l INCLUDING ALL); INSERT INTO r SELECT * FROM l;
                        UPDATE r SET v = -1 WHERE id = 'k2000'; ANALYZE l, r
                        """)
                    let shape = try await TableShape.lr(on: sql)
                    #expect(shape.keyOrderIndexed == indexed, "\(collation)")
                    var options = TableDiff.Options()
                    (options.streamBelow, options.fetchBelow, options.probeSegments) = (0, 20, 4)
                    let report = try await TableDiff.run(left: sql, right: sql, shape: shape, options: options)
                    #expect(report.differences.map { $0.key.map(\.postgresText) } == [["k2000"]], "\(collation): \(report.method)")
                }
            }
        }
    }
}

extension TableShape {
    /// Tables `l` and `r` in one database, keyed by `id`, all columns compared.
    static func lr(on sql: PostgresConnection) async throws -> TableShape {
        try await resolve(left: sql, right: sql, leftTable: "l", rightTable: "r", keys: ["id"], columns: nil, filter: nil)
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
