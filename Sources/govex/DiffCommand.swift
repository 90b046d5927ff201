import ArgumentParser
import Foundation
import GovexDiff
import GovexPostgres
import GovexTableDiff
import GovexWire

struct Diff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Find exactly which rows differ between two PostgreSQL tables (range-hash bisection, then a keyed diff).",
        discussion: """
        Both tables are read through their own connections, in parallel. Equal tables cost one
        count-and-hash-sum query per side; otherwise key segments are compared by hash sums and
        only the rows of differing segments are fetched (both tables are streamed whole when
        differences are dense). Values are compared by their PostgreSQL text forms under pinned
        session settings: numeric scale counts (1.0 differs from 1.00), timestamptz compares as
        an instant, NULL differs from '', trailing spaces are kept. Text keys are ordered and
        compared under COLLATE "C" on both sides.

        Exit status 0 when the tables hold the same rows, 1 when they differ, 2 on error.

        Examples:
          govex diff --left "host=db1 dbname=gongan" --right "host=hub dbname=copy" --table residents --key id_number
          govex diff --left … --right … --table public.orders --right-table archive.orders --key region,id --columns amount,status --json
        """
    )

    @Option(help: "The left database (libpq conninfo or URI).")
    var left: String

    @Option(help: "The right database (libpq conninfo or URI).")
    var right: String

    @Option(help: "The table (TABLE or SCHEMA.TABLE) on the left, and on the right unless --right-table names another.")
    var table: String

    @Option(help: "The table on the right, when its name differs.")
    var rightTable: String?

    @Option(help: "The key columns, comma-separated (unique on both sides: a primary key or unique index).")
    var key: String

    @Option(help: "The columns to compare, comma-separated (default: every non-key column of the left table).")
    var columns: String?

    @Option(name: .customLong("where"), help: "An SQL condition both sides are restricted to (your own SQL, run on both databases).")
    var condition: String?

    @Option(help: "Fetch a differing segment once it holds at most this many rows.")
    var segmentRows = 1_000

    @Option(help: "Memory for keys the client cannot order (numeric, float keys) before spilling to disk, in MiB.")
    var memoryMiB = 256

    @Flag(help: "Print the differences as JSON (each key, its kind, and a changed row's differing columns).")
    var json = false

    @Flag(help: "No progress lines on standard error.")
    var quiet = false

    @Option(name: .customLong("progress-every"), help: "Seconds between progress lines on standard error.")
    var progressEvery = 1.0

    func run() async throws {
        let names = { (list: String) in list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        let counters = DiffCounters()
        var options = TableDiff.Options()
        options.fetchBelow = max(1, segmentRows)
        options.memoryBudget = max(1, memoryMiB) << 20
        let started = ContinuousClock.now
        let progress = quiet ? nil : Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(max(0.01, progressEvery)))
                let seen = counters.snapshot
                printError("diff: \(seen.segmentsCompared) segments compared, \(seen.rowsHashed) rows hashed in PostgreSQL, "
                           + "\(seen.rowsFetched) rows fetched, \(seen.differences) differences, \(Self.megabytes(seen.bytesMoved)) moved")
            }
        }
        defer { progress?.cancel() }
        let report: TableDiff.Report
        do {
            report = try await PostgresConnection.with(left, name: "govex-diff") { leftSQL in
                try await PostgresConnection.with(right, name: "govex-diff") { rightSQL in
                    let shape = try await TableShape.resolve(left: leftSQL, right: rightSQL, leftTable: table, rightTable: rightTable ?? table,
                                                             keys: names(key), columns: columns.map(names), filter: condition)
                    return try await TableDiff.run(left: leftSQL, right: rightSQL, shape: shape, options: options, counters: counters)
                }
            }
        } catch {
            progress?.cancel()
            printError("\(error)")
            throw ExitStatus.failure
        }
        progress?.cancel()
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        if json {
            print(Self.json(report, seconds: seconds))
        } else {
            print(Self.text(report, seconds: seconds))
        }
        if !report.differences.isEmpty { throw ExitStatus.negative }
    }

    static func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }

    static func keyText(_ key: [Value], shape: TableShape) -> String {
        zip(shape.keys, key).map { "\($0.name)=\($1.postgresText ?? "NULL")" }.joined(separator: ", ")
    }

    static func text(_ report: TableDiff.Report, seconds: Double) -> String {
        var lines: [String] = []
        for difference in report.differences.prefix(1_000) {
            let key = keyText(difference.key, shape: report.shape)
            switch difference.kind {
            case .onlyLeft: lines.append("only left   \(key)")
            case .onlyRight: lines.append("only right  \(key)")
            case .changed: lines.append("changed     \(key): \(difference.columns.map { report.shape.compared[$0].name }.joined(separator: ", "))")
            }
        }
        if report.differences.count > 1_000 { lines.append("… and \(report.differences.count - 1_000) more (--json lists all)") }
        let counts = Dictionary(grouping: report.differences, by: \.kind).mapValues(\.count)
        lines.append(String(format: "%@: %d rows left, %d rows right; %d only left, %d only right, %d changed; %@; %d segments compared, %d rows hashed in PostgreSQL, %d rows fetched, %@ moved, %.2f s",
                            report.differences.isEmpty ? "equal" : "different", report.leftRows, report.rightRows, counts[.onlyLeft] ?? 0,
                            counts[.onlyRight] ?? 0, counts[.changed] ?? 0, report.method, report.segmentsCompared, report.rowsHashed, report.rowsFetched,
                            megabytes(report.bytesMoved), seconds))
        return lines.joined(separator: "\n")
    }

    static func json(_ report: TableDiff.Report, seconds: Double) -> String {
        var out: [UInt8] = []
        out.append(contentsOf: #"{"equal":\#(report.differences.isEmpty),"left_rows":\#(report.leftRows),"right_rows":\#(report.rightRows),"differences":["#.utf8)
        for (index, difference) in report.differences.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"key":"#.utf8)
            BatchJSON.appendStringObject(zip(report.shape.keys, difference.key).map { ($0.name, $1.postgresText) }, to: &out)
            out.append(contentsOf: #","kind":"\#(difference.kind.rawValue)""#.utf8)
            if difference.kind == .changed {
                out.append(contentsOf: #","columns":"#.utf8)
                out.append(contentsOf: BatchJSON.stringArray(difference.columns.map { report.shape.compared[$0].name }).utf8)
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: "],".utf8)
        out.append(contentsOf: #""method":"#.utf8)
        BatchJSON.appendString(report.method, to: &out)
        out.append(contentsOf: #","segments_compared":\#(report.segmentsCompared),"rows_hashed":\#(report.rowsHashed),"rows_fetched":\#(report.rowsFetched),"bytes_moved":\#(report.bytesMoved),"seconds":\#(String(format: "%.3f", seconds))}"#.utf8)
        return String(decoding: out, as: UTF8.self)
    }
}
