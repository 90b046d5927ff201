import ArgumentParser
import Foundation
import GovexApply
import GovexPolicy
import GovexHub
import GovexPostgres
import GovexTestSupport
import GovexWire

/// The [5/6] hot paths against the set-based floor, same run, same server: (1) merging
/// records from three departments into a golden table (authority, reports, discrepancies)
/// vs `psql` upserting the same rows with one `COPY` + `INSERT … ON CONFLICT DO UPDATE`;
/// (2) a subscriber applying changes (half inserts, half updates) vs the same floor.
struct OneSourceBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "golden",
        abstract: "Golden-record merge and subscriber apply, each against psql's COPY + INSERT … ON CONFLICT floor.",
        discussion: "Uses the server in GOVEX_TEST_PG (superuser conninfo) or starts a throwaway cluster.")

    @Option(help: "Records merged (from three departments) and changes applied.")
    var records = 1_000_000

    @Option(help: "Records per batch (one transaction each).")
    var batch = 10_000

    @Option(help: "Records the golden merger takes at most into one group (one transaction).")
    var group = GoldenQueue.defaultGroupRecords

    static let fields = 10
    static let nodes = ["gongan", "minzheng", "zhujian"]

    func run() async throws {
        #if DEBUG
        print("warning: this is a debug build; run with `swift run -c release govex-bench golden` for real figures")
        #endif
        try await TestPostgres.withDatabase { database in
            let merge = try await mergeBenchmark(database)
            let apply = try await applyBenchmark(database)
            print("")
            print("govex golden benchmark: \(records) records, batches of \(batch), \(ProcessInfo.processInfo.activeProcessorCount) cores")
            for (name, result) in [("merge into the golden table (3 sources, 10 fields, 1 % mismatches)", merge),
                                   ("subscriber apply (half inserts, half updates)", apply)] {
                print(name)
                print(String(format: "  govex:                                   %9.0f records/s  (%.2f s)", Double(records) / result.govex.seconds, result.govex.seconds))
                print(String(format: "  psql COPY + INSERT … ON CONFLICT floor:  %9.0f records/s  (%.2f s)", Double(records) / result.floor.seconds, result.floor.seconds))
                print(String(format: "  ratio govex / floor:                     %.2f×", result.floor.seconds / result.govex.seconds))
            }
            print("  (merge: \(merge.detail))")
        }
    }

    struct Result {
        var govex: Duration
        var floor: Duration
        var detail = ""
    }

    /// Three departments each send every key with all ten fields; field i's authority is
    /// department i % 3; 1 % of the non-authoritative values differ.
    func mergeBenchmark(_ database: TestDatabase) async throws -> Result {
        let keysPerNode = records / Self.nodes.count
        progress("merge: generating \(keysPerNode) citizen IDs × \(Self.nodes.count) departments × \(Self.fields) fields")
        var generator = RealisticRows(seed: 0x601D)
        var seen = Set<String>()
        var keys: [String] = []
        while keys.count < keysPerNode {
            let id = generator.citizenID()
            if seen.insert(id).inserted { keys.append(id) }
        }
        var random = SplitMix64(state: 0x5EED)
        func truth(_ key: Int, _ field: Int) -> String { "v\(field)-\(key % 9973)-\(key)" }
        var batches: [(node: String, records: [ChangeRecord])] = []
        var floorRows: [UInt8] = []
        for start in stride(from: 0, to: keysPerNode, by: batch) {
            for (n, node) in Self.nodes.enumerated() {
                var chunk: [ChangeRecord] = []
                for k in start..<min(start + batch, keysPerNode) {
                    var values: [Column] = []
                    for f in 0..<Self.fields {
                        let mismatch = f % 3 != n && random.next() % 100 == 0
                        values.append(Column("c\(f)", .text(mismatch ? "x" + truth(k, f) : truth(k, f))))
                    }
                    chunk.append(ChangeRecord(operation: .insert, resource: "R-\(node)", position: SourcePosition(commit: UInt64(start + 1), ordinal: UInt32(chunk.count)),
                                              key: [Column("id_number", .text(keys[k]))], values: values))
                    CopyText.appendField(keys[k], to: &floorRows)
                    for value in values {
                        floorRows.append(9)
                        CopyText.appendField(value.value.postgresText, to: &floorRows)
                    }
                    floorRows.append(10)
                }
                batches.append((node, chunk))
            }
        }
        let columns = (0..<Self.fields).map { "c\($0)" }
        let catalog = Self.nodes.map { node in
            "[[resource]]\ncode = \"R-\(node)\"\nname = \"\(node)\"\nprovider = \"\(node)\"\nshare = \"unconditional\"\nkey = [\"id_number\"]\n"
                + "columns = [\"id_number\", \(columns.map { "\"\($0)\"" }.joined(separator: ", "))]\n"
        }.joined(separator: "\n") + "\n[[subject]]\ncode = \"person\"\nname = \"person\"\nkey_kind = \"citizen_id\"\n"
            + (0..<Self.fields).map { f in
                "[[subject.field]]\nname = \"f\(f)\"\nauthority = \"\(Self.nodes[f % 3])\"\nsources = [\(Self.nodes.map { "\"R-\($0).c\(f)\"" }.joined(separator: ", "))]\n"
            }.joined(separator: "\n")
        let merged: Duration = try await PostgresConnection.with(database.conninfo) { sql in
            try await HubSchema.migrate(sql)
            _ = try await Catalog.load(path: "bench.toml", text: catalog).apply(on: sql)
            progress("merge: \(batches.count) batches, queued as their ingests queue them, merged in groups of up to \(group) records")
            // As at a hub whose merger is behind its ingests (the throughput case): the batches
            // wait in the queue (their records kept in memory) and the merger takes them in groups.
            let store = HubStore(hubKey: VectorKeys.hub, pendingMergeRecords: .max)
            let start = ContinuousClock.now
            for (index, batch) in batches.enumerated() {
                let digest = DigestAlgorithm.sha256.hash(Array("\(batch.node)/\(index)".utf8))
                let id = try await GoldenQueue.enqueue(node: batch.node, epoch: 1, sequence: UInt64(index + 1), digest: digest,
                                                       resources: ["R-\(batch.node)"], recordCount: batch.records.count, copy: false, on: sql)
                store.pendingMerges.keep(digest, queued: id, GoldenMerge.Batch(node: batch.node, records: batch.records))
            }
            var merged = 0
            while merged < records {
                let drained = try await GoldenQueue.drainGroup(store: store, groupRecords: group, on: sql)
                guard drained.batches > 0 else { break }
                merged += drained.records
                progress("merge: \(merged) of \(records) records")
            }
            return ContinuousClock.now - start
        }
        let counts = try await PostgresConnection.with(database.conninfo) { sql in
            try await sql.query("SELECT (SELECT count(*) FROM govex_golden.person)::text, (SELECT count(*) FROM govex.discrepancies WHERE status = 'open')::text").rows[0]
        }
        let floor = try await Self.floor(rows: floorRows, table: "golden_floor", key: "id_number", columns: columns, phases: 1, conninfo: database.conninfo)
        return Result(govex: merged, floor: floor, detail: "\(counts[0] ?? "?") golden records, \(counts[1] ?? "?") open discrepancies")
    }

    /// Deliveries of `batch` changes: the first half inserts keys 0..<n/2, the second half
    /// updates them.
    func applyBenchmark(_ database: TestDatabase) async throws -> Result {
        let half = records / 2
        progress("apply: generating \(records) changes")
        var generator = RealisticRows(seed: 0xA991)
        var deliveries: [[ChangeRecord]] = []
        var phases: [[UInt8]] = [[], []]
        let valueColumns = ["name", "address", "employer_code", "amount", "birth_date", "updated_at", "status"]
        for phase in 0..<2 {
            for start in stride(from: 0, to: half, by: batch) {
                var chunk: [ChangeRecord] = []
                for k in start..<min(start + batch, half) {
                    var record = generator.record(ordinal: chunk.count, commit: UInt64(phase * half + start + 1))
                    record.operation = phase == 0 ? .insert : .update
                    record.resource = "R"
                    record.key = [Column("id", .int8(Int64(k)))]
                    chunk.append(record)
                    CopyText.appendField(String(k), to: &phases[phase])
                    for column in record.values {
                        phases[phase].append(9)
                        CopyText.appendField(column.value.postgresText, to: &phases[phase])
                    }
                    phases[phase].append(10)
                }
                deliveries.append(chunk)
            }
        }
        let ddl = "(id bigint PRIMARY KEY, name text, address text, employer_code text, amount numeric, birth_date date, updated_at timestamptz, status int2)"
        try await PostgresConnection.with(database.conninfo) { sql in
            try await sql.query("CREATE TABLE public.apply_target \(ddl)")
            try await sql.query("CREATE TABLE public.apply_floor \(ddl)")
        }
        let applied: Duration = try await DeliveryApplier.with(conninfo: database.conninfo, subscription: 1, resource: "R", schema: "public",
                                                                table: "apply_target") { applier in
            // As the agent's puller does when deliveries wait: consecutive ones applied together
            // (up to DeliveryApplier.groupRecords records), the next group planned while this one is applied.
            let groups = DeliveryApplier.groups(recordCounts: deliveries.map(\.count))
            progress("apply: \(deliveries.count) deliveries in \(groups.count) groups")
            let start = ContinuousClock.now
            func prepare(_ group: Range<Int>) -> Task<DeliveryApplier.Prepared, any Error> {
                Task { [records = Array(deliveries[group].joined())] in
                    try applier.prepare(records, sequence: UInt64(group.upperBound), origin: DeliveryOrigin(node: "bench", epoch: 1, sequence: UInt64(group.upperBound)),
                                        firstSequence: UInt64(group.lowerBound + 1))
                }
            }
            var next = prepare(groups[0])
            for index in groups.indices {
                let prepared = try await next.value
                if index + 1 < groups.count { next = prepare(groups[index + 1]) }
                _ = try await applier.apply(prepared)
            }
            return ContinuousClock.now - start
        }
        let floor = try await Self.floor(rows: phases[0] + phases[1], table: "apply_floor", key: "id", columns: valueColumns, phases: 2,
                                         split: phases[0].count, conninfo: database.conninfo)
        return Result(govex: applied, floor: floor)
    }

    /// `psql` upserting `rows` (COPY text: key, then `columns`) into `table`: one `\copy` into
    /// a staging table and one `INSERT … SELECT … ON CONFLICT DO UPDATE` per phase (a key may
    /// appear once per statement, so updates of keys inserted earlier are a second phase).
    static func floor(rows: [UInt8], table: String, key: String, columns: [String], phases: Int, split: Int = 0,
                      conninfo: String, create: String? = nil) async throws -> Duration {
        let directory = Subprocess.temporaryDirectory("govex-bench-golden")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let parts = phases == 1 ? [rows] : [Array(rows[..<split]), Array(rows[split...])]
        var script = create.map { $0 + ";\n" } ?? ""
        if table == "golden_floor" {
            script += "CREATE TABLE golden_floor (\(key) text PRIMARY KEY, \(columns.map { "\($0) text" }.joined(separator: ", ")));\n"
        }
        for (index, part) in parts.enumerated() {
            let path = directory + "/rows\(index).copy"
            FileManager.default.createFile(atPath: path, contents: Data(part))
            let names = ([key] + columns).joined(separator: ", ")
            script += """
                CREATE TEMP TABLE stage\(index) (LIKE \(table));
                \\copy stage\(index) (\(names)) FROM '\(path)'
                INSERT INTO \(table) (\(names)) SELECT DISTINCT ON (\(key)) \(names) FROM stage\(index) ORDER BY \(key)
                  ON CONFLICT (\(key)) DO UPDATE SET \(columns.map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", "));

                """
        }
        let path = directory + "/floor.sql"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let start = ContinuousClock.now
        try await Subprocess.checkAsync(["psql", conninfo, "-q", "-v", "ON_ERROR_STOP=1", "-f", path])
        return ContinuousClock.now - start
    }

    func progress(_ message: String) {
        FileHandle.standardError.write(Data("… \(message)\n".utf8))
    }
}
