import ArgumentParser
import Foundation
import GovexDiff
import GovexHub
import GovexPolicy
import GovexPostgres
import GovexTestSupport
import GovexWire

/// The merger writing the hub's copy of a resource (each row with its reconcile digest,
/// RowDigest), against the floor of `psql` upserting the same encoded rows with one `COPY`
/// + `INSERT … ON CONFLICT`, same run, same server; and what the digests alone cost.
struct CopyBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "The merger's write of the hub's copy (with reconcile digests) against psql's COPY + INSERT … ON CONFLICT floor.",
        discussion: "Uses the server in GOVEX_TEST_PG (superuser conninfo) or starts a throwaway cluster.")

    @Option(help: "Rows written (inserts; then as many updates).")
    var records = 500_000

    @Option(help: "Records per batch.")
    var batch = 10_000

    func run() async throws {
        #if DEBUG
        print("warning: this is a debug build; run with `swift run -c release govex-bench copy` for real figures")
        #endif
        var generator = RealisticRows(seed: 0xC0B1)
        var batches: [[ChangeRecord]] = []
        var floorRows: [UInt8] = []
        for phase in 0..<2 {
            for start in stride(from: 0, to: records, by: batch) {
                var chunk: [ChangeRecord] = []
                for k in start..<min(start + batch, records) {
                    var record = generator.record(ordinal: chunk.count, commit: UInt64(phase * records + start + 1))
                    record.operation = phase == 0 ? .insert : .update
                    record.resource = "R-copy"
                    record.key = [Column("id", .int8(Int64(k)))]
                    chunk.append(record)
                    if phase == 0 {
                        CopyText.appendField(RowDigest.keyText(record.key), to: &floorRows)
                        floorRows.append(9)
                        CopyText.appendField("\\x" + Hex.encode(Column.rowEncoding(record.key + record.values)), to: &floorRows)
                        floorRows.append(10)
                    }
                }
                batches.append(chunk)
            }
        }
        // The digests alone, over every row written (as the merger computes them).
        let digestStart = ContinuousClock.now
        var checksum: UInt64 = 0
        for chunk in batches {
            for record in chunk {
                checksum &+= UInt64(RowDigest.bucket(keyText: RowDigest.keyText(record.key)))
                checksum &+= RowDigest.hash(row: record.key + record.values)
            }
        }
        let digests = ContinuousClock.now - digestStart

        try await TestPostgres.withDatabase { database in
            let columns = ["id", "name", "address", "employer_code", "amount", "birth_date", "updated_at", "status"]
            let catalog = "[[resource]]\ncode = \"R-copy\"\nname = \"copy\"\nprovider = \"gongan\"\nshare = \"unconditional\"\nkey = [\"id\"]\n"
                + "columns = [\(columns.map { "\"\($0)\"" }.joined(separator: ", "))]\n"
            let written: Duration = try await PostgresConnection.with(database.conninfo) { sql in
                try await HubSchema.migrate(sql)
                _ = try await Catalog.load(path: "bench.toml", text: catalog).apply(on: sql)
                let store = HubStore(hubKey: VectorKeys.hub, pendingMergeRecords: .max)
                let start = ContinuousClock.now
                for (index, records) in batches.enumerated() {
                    let digest = DigestAlgorithm.sha256.hash(Array("copy/\(index)".utf8))
                    let id = try await GoldenQueue.enqueue(node: "gongan", epoch: 1, sequence: UInt64(index + 1), digest: digest,
                                                           resources: ["R-copy"], recordCount: records.count, on: sql)
                    store.pendingMerges.keep(digest, queued: id, GoldenMerge.Batch(node: "gongan", records: records))
                }
                while try await GoldenQueue.drainGroup(store: store, groupRecords: batch, on: sql).batches > 0 {}
                return ContinuousClock.now - start
            }
            let floor = try await OneSourceBenchmark.floor(rows: floorRows + floorRows, table: "copy_floor", key: "key", columns: ["row_data"],
                                                           phases: 2, split: floorRows.count, conninfo: database.conninfo,
                                                           create: "CREATE TABLE copy_floor (key text PRIMARY KEY, row_data bytea)")
            let total = Double(records * 2)
            print("")
            print("govex copy benchmark: \(records) inserts then \(records) updates, batches of \(batch), \(ProcessInfo.processInfo.activeProcessorCount) cores (checksum \(checksum % 1000))")
            print(String(format: "  merger writing the hub's copy:           %9.0f rows/s  (%.2f s)", total / written.seconds, written.seconds))
            print(String(format: "  psql COPY + INSERT … ON CONFLICT floor:  %9.0f rows/s  (%.2f s)", total / floor.seconds, floor.seconds))
            print(String(format: "  ratio govex / floor:                     %.2f×", floor.seconds / written.seconds))
            print(String(format: "  of which reconcile digests (in-process): %.2f s, %.1f %% of the merger's time", digests.seconds, digests.seconds * 100 / written.seconds))
        }
    }
}
