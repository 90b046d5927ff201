import Foundation
import GovexDiff
import GovexPostgres
import GovexWire

/// Finds exactly what differs between two tables in two databases, reading as little as it
/// can: one count-and-hash-sum per side first (equal tables stop there); then range-hash
/// bisection over key segments cut at sampled keys, every side's segments summarised by
/// one query per level; then only the rows of small differing segments are fetched, both
/// sides in key order, and merge-diffed. When differences are dense it streams both tables
/// whole instead, which is never slower than copying them.
public enum TableDiff {
    public struct Options: Sendable {
        /// A differing segment with at most this many rows is fetched, not split.
        public var fetchBelow = 1_000
        /// Segments a differing segment is split into at each level below the first.
        public var splitInto = 16
        /// At most this many segments on the first level.
        public var maxFirstLevel = 16_384
        /// When differing segments hold more than this share of the rows, stream them.
        public var denseShare = 0.5
        /// Tables smaller than this are streamed at once.
        public var streamBelow = 20_000
        /// Segments probed before anything else, to tell dense differences early.
        public var probeSegments = 32
        /// For the hash diff of keys the client cannot order, and its spill files.
        public var memoryBudget = 256 << 20
        public var spillDirectory = NSTemporaryDirectory()

        public init() {}
    }

    public struct Report: Sendable {
        public var shape: TableShape
        public var differences: [Difference]
        public var leftRows = 0
        public var rightRows = 0
        /// How the differences were found: "hash sums equal", "bisection, N levels", "streamed".
        public var method = ""
        public var levels = 0
        /// Rows read and hashed inside PostgreSQL (both sides), for the segment summaries.
        public var rowsHashed = 0
        /// Rows sent to the client (both sides), to be compared row by row.
        public var rowsFetched = 0
        public var bytesMoved = 0
        public var segmentsCompared = 0
    }

    public static func run(left: PostgresConnection, right: PostgresConnection, shape: TableShape, options: Options = Options(),
                           counters: DiffCounters = DiffCounters()) async throws -> Report {
        var report = Report(shape: shape, differences: [])
        func finish(_ method: String) -> Report {
            let seen = counters.snapshot
            report.method = method
            (report.rowsHashed, report.rowsFetched, report.bytesMoved, report.segmentsCompared) =
                (seen.rowsHashed, seen.rowsFetched, seen.bytesMoved, seen.segmentsCompared)
            return report
        }
        // The level queries carry a binary search over up to thousands of cut keys: compiling
        // that with LLVM takes seconds, evaluating it takes microseconds per row.
        _ = try await both(left, right) { sql, _ in try await sql.query("SET jit = off") }
        let whole = [Bisection.Segment(lower: nil, upper: nil)]
        func level0() async throws -> (Bisection.Summary, Bisection.Summary) {
            let totals = try await both(left, right) { sql, table in
                try await summaries(on: sql, table: table, shape: shape, counters: counters, segments: whole, sample: [])[0] ?? .empty
            }
            counters.add(segments: 1)
            (report.leftRows, report.rightRows) = (totals.0.rows, totals.1.rows)
            return totals
        }
        // Sizes from the statistics; tables never analysed are counted exactly first.
        let estimates = try await both(left, right) { sql, table in try await estimatedRows(on: sql, table: table ? shape.leftTable : shape.rightTable) }
        var totals: (Bisection.Summary, Bisection.Summary)?
        var total = max(estimates.0, estimates.1)
        if min(estimates.0, estimates.1) < 0 || total < options.streamBelow {
            let counted = try await level0()
            if counted.0 == counted.1 { return finish("hash sums equal") }
            totals = counted
            total = max(counted.0.rows, counted.1.rows)
        }
        if total < options.streamBelow {
            try await stream(left, right, shape: shape, segments: whole, sample: [], options: options, counters: counters, into: &report)
            return finish("streamed (small table)")
        }

        let leftHasRows = totals.map { $0.0.rows > 0 } ?? (estimates.0 > 0)
        let (fuller, fullerTable) = leftHasRows ? (left, shape.leftTable) : (right, shape.rightTable)
        let firstLevel = min(options.maxFirstLevel, max(options.splitInto, total / options.fetchBelow))

        let probing = totals == nil && firstLevel > options.probeSegments * 2
        if probing && !shape.keyOrderIndexed {
            // Without an index that reads keys in the diff's order each probed range would be
            // a scan of the whole table: level 0 (one scan) decides instead.
            let counted = try await level0()
            if counted.0 == counted.1 { return finish("hash sums equal") }
        } else if probing {
            // A probe of a few segments of about `fetchBelow` rows spread over the table:
            // differences everywhere mean streaming both tables at once (any narrowing would
            // read them again); differences anywhere mean the tables differ (no need for
            // level 0); none, that level 0 decides. It needs no sample of the whole key
            // space, which costs as much as a tenth of a table's scan: equal tables never take one.
            let probe = try await probeSegments(on: fuller, table: fullerTable, shape: shape, rows: total, count: options.probeSegments,
                                                rowsEach: options.fetchBelow)
            if !probe.segments.isEmpty {
                let found = try await both(left, right) { sql, table in
                    try await summaries(on: sql, table: table, shape: shape, counters: counters, segments: probe.segments, sample: probe.bounds)
                }
                counters.add(segments: probe.segments.count)
                let differing = probe.segments.indices.filter { (found.0[$0] ?? .empty) != (found.1[$0] ?? .empty) }.count
                if Double(differing) > options.denseShare * Double(probe.segments.count) {
                    try await stream(left, right, shape: shape, segments: whole, sample: [], options: options, counters: counters, into: &report)
                    return finish("streamed (\(differing) of \(probe.segments.count) probed segments differ)")
                }
                if differing == 0 {
                    let counted = try await level0()
                    if counted.0 == counted.1 { return finish("hash sums equal") }
                }
            }
        }

        // Cut points: keys sampled from the side with rows, in PostgreSQL's order.
        let sampled = try await sample(on: fuller, table: fullerTable, shape: shape, rows: total, wanted: firstLevel * 3)
        var segments = Bisection.split(Bisection.Segment(lower: nil, upper: nil), sampleCount: sampled.count, parts: firstLevel)
        var fetch: [Bisection.Segment] = []
        while !segments.isEmpty {
            report.levels += 1
            let level = segments
            let found = try await both(left, right) { sql, table in
                try await summaries(on: sql, table: table, shape: shape, counters: counters, segments: level, sample: sampled)
            }
            counters.add(segments: segments.count)
            if report.levels == 1 && totals == nil && report.leftRows == 0 && report.rightRows == 0 {
                (report.leftRows, report.rightRows) = (found.0.values.reduce(0) { $0 + $1.rows }, found.1.values.reduce(0) { $0 + $1.rows })
            }
            func listed(_ bySegment: [Int: Bisection.Summary]) -> [Bisection.Summary] {
                segments.indices.map { bySegment[$0] ?? .empty }
            }
            let step = Bisection.step(segments, left: listed(found.0), right: listed(found.1), sampleCount: sampled.count,
                                      fetchBelow: options.fetchBelow)
            if Double(step.differingRows) > options.denseShare * Double(total) {
                // Dense: narrowing further would read these rows again; read them once.
                fetch += step.fetch + step.refine
                break
            }
            fetch += step.fetch
            segments = step.refine.flatMap { Bisection.split($0, sampleCount: sampled.count, parts: options.splitInto) }
        }
        if !fetch.isEmpty {
            // In key order: a run of neighbouring segments (all of them, when dense) reads as one.
            let ordered = fetch.sorted { ($0.lower ?? -1) < ($1.lower ?? -1) }
            try await stream(left, right, shape: shape, segments: Self.merged(ordered), sample: sampled, options: options, counters: counters,
                             into: &report)
        }
        return finish("bisection, \(report.levels) level\(report.levels == 1 ? "" : "s"), \(fetch.count) segment\(fetch.count == 1 ? "" : "s") fetched")
    }

    /// Runs `body` with sequential scans discouraged when it reads ranges of the key: each
    /// range is a parameterised scan whose size the planner cannot know, and a sequential scan
    /// chosen for one would be repeated for every range (minutes on 10M rows).
    static func rangeScans<T>(_ ranges: Bool, on sql: PostgresConnection, _ body: () async throws -> T) async throws -> T {
        guard ranges else { return try await body() }
        try await sql.query("SET enable_seqscan = off")
        do {
            let result = try await body()
            try await sql.query("RESET enable_seqscan")
            return result
        } catch {
            _ = try? await sql.query("RESET enable_seqscan")
            throw error
        }
    }

    /// The planner's row estimate (-1 for a table never vacuumed or analysed).
    static func estimatedRows(on sql: PostgresConnection, table: String) async throws -> Int {
        Int(try await sql.query("SELECT reltuples::bigint::text FROM pg_catalog.pg_class WHERE oid = to_regclass($1)", [table])
            .rows.first?[0] ?? "-1") ?? -1
    }

    /// Neighbouring segments (in key order) as one.
    static func merged(_ segments: [Bisection.Segment]) -> [Bisection.Segment] {
        var runs: [Bisection.Segment] = []
        for segment in segments {
            if let last = runs.last, last.upper != nil, last.upper == segment.lower {
                runs[runs.count - 1].upper = segment.upper
            } else {
                runs.append(segment)
            }
        }
        return runs
    }

    /// The same work on both sides at once.
    static func both<T: Sendable>(_ left: PostgresConnection, _ right: PostgresConnection,
                                  _ body: @escaping @Sendable (PostgresConnection, Bool) async throws -> T) async throws -> (T, T) {
        async let l = body(left, true)
        async let r = body(right, false)
        return try await (l, r)
    }

    /// Per segment (the value of `segmentExpression`), its rows and hash sum.
    static func summaries(on sql: PostgresConnection, table isLeft: Bool, shape: TableShape, counters: DiffCounters,
                          segments: [Bisection.Segment], sample: [[String?]]) async throws -> [Int: Bisection.Summary] {
        let rows = shape.rows(in: segments, sample: sample, table: isLeft ? shape.leftTable : shape.rightTable,
                              columns: "\(shape.rowHash) AS govex_hash")
        var found: [Int: Bisection.Summary] = [:]
        for row in try await rangeScans(shape.scansRanges(segments), on: sql, { try await sql.query("""
            SELECT govex_segment, count(*)::text, coalesce(sum(govex_hash), 0)::text FROM (\(rows)) govex_rows GROUP BY 1
            """) }).rows {
            found[Int(row[0] ?? "") ?? 0] = Bisection.Summary(rows: Int(row[1] ?? "") ?? 0, hashSum: row[2] ?? "0")
        }
        counters.add(hashed: found.values.reduce(0) { $0 + $1.rows })
        return found
    }

    /// About `count` segments for the probe: each from a key on a random page to the key
    /// `rowsEach` rows further on in key order (found through the key's index), or to the
    /// end of the table. `bounds` holds the keys the segments' `lower` and `upper` point at.
    static func probeSegments(on sql: PostgresConnection, table: String, shape: TableShape, rows: Int, count: Int,
                              rowsEach: Int) async throws -> (segments: [Bisection.Segment], bounds: [[String?]]) {
        let starts = try await sample(on: sql, table: table, shape: shape, rows: rows, wanted: count)
        guard !starts.isEmpty else { return ([], []) }
        let keys = shape.keys.indices.map { "govex_start_\($0)" }
        let starting = starts.enumerated().map { "(\($0.offset), \(shape.literals($0.element)))" }.joined(separator: ", ")
        let start = keys.count == 1 ? "govex_starts.\(keys[0])" : "(" + keys.map { "govex_starts.\($0)" }.joined(separator: ", ") + ")"
        let ends = try await rangeScans(true, on: sql) { try await sql.query("""
            SELECT govex_end.* FROM (VALUES \(starting)) AS govex_starts (govex_index, \(keys.joined(separator: ", ")))
            LEFT JOIN LATERAL (SELECT true AS govex_found, \(shape.keys.map { SQLQuoting.identifier($0.name) }.joined(separator: ", ")) FROM \(table)
                               WHERE \(shape.keyRow) >= \(start) AND \(shape.filterCondition)
                               ORDER BY \(shape.orderBy) OFFSET \(rowsEach) LIMIT 1) AS govex_end ON true
            ORDER BY govex_starts.govex_index
            """).rows }
        var bounds: [[String?]] = []
        var segments: [Bisection.Segment] = []
        for (start, end) in zip(starts, ends) {
            bounds.append(start)
            let open = end.first != "t"
            segments.append(Bisection.Segment(lower: bounds.count - 1, upper: open ? nil : bounds.count))
            if !open { bounds.append(Array(end.dropFirst())) }
        }
        return (segments, bounds)
    }

    /// About `wanted` keys in key order (PostgreSQL's, under `COLLATE "C"`): one key from
    /// each of about `wanted` pages chosen at random, read by their row addresses (a TID
    /// scan: only those pages are read). Whole sampled pages would give runs of neighbouring
    /// keys, and segments cut at evenly spaced sample keys would be anything but even.
    static func sample(on sql: PostgresConnection, table: String, shape: TableShape, rows: Int, wanted: Int) async throws -> [[String?]] {
        let pages = Int(try await sql.query("SELECT greatest(pg_catalog.pg_relation_size(to_regclass($1)) / 8192, 1)::text", [table])
            .rows.first?[0] ?? "1") ?? 1
        let keys = shape.keys.map { SQLQuoting.identifier($0.name) }.joined(separator: ", ")
        func byRow() async throws -> [[String?]] {
            let percent = min(100, 100 * Double(wanted) / Double(max(rows, 1)))
            let method = percent >= 100 ? "" : "TABLESAMPLE BERNOULLI (\(String(format: "%.6f", percent)))"
            return try await sql.query("SELECT \(keys) FROM \(table) \(method) WHERE \(shape.filterCondition) ORDER BY \(shape.orderBy)").rows
        }
        // Fewer pages than keys wanted: reading them all is cheap.
        guard pages > wanted else { return try await byRow() }
        var generator = SystemRandomNumberGenerator()
        var chosen = Set<Int>()
        while chosen.count < wanted { chosen.insert(Int.random(in: 0..<pages, using: &generator)) }
        // The first few line pointers of each page: one of them holds a live row unless the page was emptied.
        let addresses = chosen.sorted().flatMap { page in (1...4).map { "\"(\(page),\($0))\"" } }
        let sampled = try await sql.query("""
            SELECT \(keys) FROM (SELECT DISTINCT ON ((ctid::text::point)[0]) \(keys) FROM \(table)
                                  WHERE ctid = ANY ($1::tid[]) AND \(shape.filterCondition)) s
            ORDER BY \(shape.orderBy)
            """, ["{" + addresses.joined(separator: ",") + "}"]).rows
        // Emptied pages (or a filter that keeps few rows): rows at random instead.
        return sampled.count >= min(wanted, rows) / 4 ? sampled : try await byRow()
    }

    /// Both sides' rows matching `condition`, streamed in key order and diffed as they come.
    static func stream(_ left: PostgresConnection, _ right: PostgresConnection, shape: TableShape, segments: [Bisection.Segment],
                       sample: [[String?]], options: Options, counters: DiffCounters, into report: inout Report) async throws {
        let types = try await left.valueTypes(of: try await left.query("SELECT \(shape.selectList) FROM \(shape.leftTable) WHERE false"))
        let ordered = zip(shape.keys, types).allSatisfy { KeyOrder.supports($0.1) }
        let queues = (ChunkQueue(), ChunkQueue())
        let chunkers = (CopyChunker(queue: queues.0, counters: counters), CopyChunker(queue: queues.1, counters: counters))
        let parser = CopyKeyParser(types: types, keyCount: shape.keys.count)
        func copy(_ table: String) -> String {
            let rows = shape.rows(in: segments, sample: sample, table: table, columns: shape.selectList)
            return "COPY (SELECT \(shape.selectList) FROM (\(rows)) govex_rows\(ordered ? " ORDER BY \(shape.orderBy)" : "")) TO STDOUT"
        }
        let ranges = shape.scansRanges(segments)
        @Sendable func produce(_ sql: PostgresConnection, _ statement: String, _ chunker: CopyChunker) async {
            do {
                _ = try await rangeScans(ranges, on: sql) { try await sql.copyOut(statement) { chunker.consume($0) } }
                chunker.flush()
                chunker.queue.finish(nil)
            } catch {
                chunker.queue.finish(error)
            }
        }
        let budget = options.memoryBudget, spillDirectory = options.spillDirectory
        async let leftDone: Void = produce(left, copy(shape.leftTable), chunkers.0)
        async let rightDone: Void = produce(right, copy(shape.rightTable), chunkers.1)
        let found = try await onOwnThread { () -> [Difference] in
            var found: [Difference] = []
            defer {
                queues.0.cancel()
                queues.1.cancel()
            }
            if ordered {
                try CopyMergeDiff(keyCount: shape.keys.count, fieldCount: types.count, parseKey: parser.key)
                    .run(left: queues.0, right: queues.1) { difference in
                        found.append(difference)
                        counters.add(differences: 1)
                    }
            } else {
                let rows = (DiffRowsOfChunks(queue: queues.0, parser: parser), DiffRowsOfChunks(queue: queues.1, parser: parser))
                var join = HashDiff(budget: budget, directory: spillDirectory)
                try join.run(left: IteratorSequence(rows.0), right: IteratorSequence(rows.1)) { difference in
                    found.append(difference)
                    counters.add(differences: 1)
                }
                if let failure = rows.0.failure ?? rows.1.failure { throw failure }
                found.sort { KeyOrder.compare($0.key, $1.key) < 0 }
            }
            return found
        }
        _ = await (leftDone, rightDone)
        if let error = queues.0.error ?? queues.1.error { throw error }
        report.differences += found
        if segments == [Bisection.Segment(lower: nil, upper: nil)] { (report.leftRows, report.rightRows) = (chunkers.0.rows, chunkers.1.rows) }
    }
}
