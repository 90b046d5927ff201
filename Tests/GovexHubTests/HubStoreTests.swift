import Foundation
import GovexAPI
import GovexDiff
import GovexHub
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// The ingest transaction on a real PostgreSQL: receipts, replays, conflicts, gaps,
/// rejections, epochs, two replicas racing, and the hub's copy of the resources.
@Suite("Hub store")
struct HubStoreTests {
    static let store = HubStore(hubKey: VectorKeys.hub)

    /// A migrated hub database with node gongan, its key, and its two resources in the catalog.
    static func withHub(_ body: (TestDatabase, PostgresConnection) async throws -> Void) async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await HubSchema.migrate(sql)
                try await HubSchema.ensurePartitions(sql)
                try await HubStore.addNode("gongan", on: sql)
                try await HubStore.registerKey(VectorKeys.gongan.publicKey, for: "gongan", on: sql)
                try await Catalog.upsert(Catalog.Resource(code: "GA-RK-0001", name: "residents", provider: "gongan", share: "unconditional", key: ["id"], columns: EdgeValues.columnNames), on: sql)
                try await Catalog.upsert(Catalog.Resource(code: "MZ-HY-0003", name: "marriages", provider: "gongan", share: "conditional", key: ["id_number", "registered_on"], columns: ["id_number", "registered_on", "marital_status", "office"]), on: sql)
                try await body(database, sql)
            }
        }
    }

    static func batch(_ sequence: UInt64, epoch: UInt64 = 7, records: [ChangeRecord] = SampleBatches.mixedRecords()) throws -> [UInt8] {
        var metadata = SampleBatches.metadata(sequence: sequence)
        metadata.nodeEpoch = epoch
        return try SampleBatches.seal(records, key: VectorKeys.gongan, metadata: metadata)
    }

    static func receipt(_ outcome: HubStore.IngestOutcome) throws -> Receipt {
        try SignedReceipt(wire: outcome.body).verified(with: VectorKeys.hub.publicKey)
    }

    static func count(_ sql: PostgresConnection, _ query: String) async throws -> Int {
        Int(try await sql.query(query).rows[0][0] ?? "") ?? -1
    }

    @Test("migrations run once, even when two hubs start together")
    func migrations() async throws {
        try await TestPostgres.withDatabase { database in
            async let first = PostgresConnection.with(database.conninfo) { try await HubSchema.migrate($0) }
            async let second = PostgresConnection.with(database.conninfo) { try await HubSchema.migrate($0) }
            let applied = try await [first, second].sorted { $0.count < $1.count }
            #expect(applied == [[], HubSchema.migrations.map(\.version)])
            let (again, versions) = try await PostgresConnection.with(database.conninfo) { sql in
                (try await HubSchema.migrate(sql), try await Self.count(sql, "SELECT count(*) FROM govex.schema_migrations"))
            }
            #expect(again.isEmpty && versions == HubSchema.latestVersion)
        }
    }

    @Test("an older govex refuses a schema a newer one migrated, naming both versions; nothing is changed")
    func schemaTooNew() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await HubSchema.migrate(sql)
                let newer = HubSchema.latestVersion + 1
                try await sql.query("INSERT INTO govex.schema_migrations (version, description) VALUES ($1, 'from the future')", [String(newer)])
                await #expect {
                    try await HubSchema.migrate(sql)
                } throws: { error in
                    "\(error)".contains("schema version \(newer), newer than this govex knows (\(HubSchema.latestVersion))")
                }
                #expect(try await Self.count(sql, "SELECT count(*) FROM govex.schema_migrations") == HubSchema.latestVersion + 1)
            }
        }
    }

    @Test("migration 11 moves a version-10 hub copy (jsonb text forms and type tags) into typed binary rows, losing none")
    func hubCopyMigration() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await HubSchema.migrate(sql, through: 10)
                // 12,000 rows: more than one conversion page, written by two different batches.
                try await sql.script("""
                    INSERT INTO govex.resource_rows (resource, key, row_values, row_types, commit_position, ordinal, node_id, epoch, sequence)
                    SELECT 'GA-RK-0001', '["' || g || '"]', jsonb_build_object('id', g::text, 'name', 'n' || g, 'born', NULL),
                           '{"id": "int8", "name": "text", "born": "date"}', 0, 0, 'gongan', 1, 1 + g % 2
                    FROM generate_series(1, 12000) g;
                    INSERT INTO govex.resource_rows (resource, key, row_values, row_types, commit_position, ordinal, node_id, epoch, sequence)
                    VALUES ('MZ-HY-0003', '["x"]', '{"id": "x", "code": "A1", "born": "1990-01-01", "doc": "{\\"a\\": 1}"}',
                            '{"id": "int8", "code": "other:character(2)", "born": "date", "doc": "jsonb"}', 0, 0, 'minzheng', 2, 9)
                    """)
                #expect(try await HubSchema.migrate(sql, through: 11) == [11])
                let residents = try await HubCopy.rows(of: "GA-RK-0001", on: sql)
                #expect(residents.count == 12000)
                let row = try #require(residents.first { $0.key == "[\"4321\"]" })
                #expect(row.value(of: "id") == .int8(4321) && row.value(of: "name") == .text("n4321") && row.value(of: "born") == .null)
                let other = try #require(try await HubCopy.rows(of: "MZ-HY-0003", on: sql).first)
                #expect(other.value(of: "id") == .text("x"), "a text that does not read as its type stays text")
                #expect(other.value(of: "code") == .other(typeName: "character(2)", text: "A1"))
                #expect(other.value(of: "born") == .date(-3652) && other.value(of: "doc") == .jsonb("{\"a\": 1}"))
                let origins = try await sql.query("""
                    SELECT node_id, epoch::text, sequence::text, count(*) FROM govex.resource_rows GROUP BY 1, 2, 3 ORDER BY 1, 3
                    """).rows
                #expect(origins == [["gongan", "1", "1", "6000"], ["gongan", "1", "2", "6000"], ["minzheng", "2", "9", "1"]])
                #expect(try await Self.count(sql, "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'resource_rows_jsonb'") == 0)
            }
        }
    }

    @Test("accepted with a signed receipt; a replay gets the same receipt and is stored once; a gap and a conflict are refused")
    func ingest() async throws {
        try await Self.withHub { _, sql in
            let first = try await Self.store.ingest(try Self.batch(1), from: "gongan", on: sql)
            #expect(first.status == 200)
            let receipt = try Self.receipt(first)
            #expect(receipt.status == .accepted && receipt.sequence == "1" && receipt.node == "gongan")
            #expect(receipt.digest == Hex.encode(DigestAlgorithm.sha256.hash(try Self.batch(1))))

            let replay = try await Self.store.ingest(try Self.batch(1), from: "gongan", on: sql)
            #expect(replay.status == 200 && replay.body == first.body && replay.decision == "replay")
            #expect(try await Self.count(sql, "SELECT count(*) FROM govex.batch_index") == 1)
            #expect(try await Self.count(sql, "SELECT count(*) FROM govex.batches") == 1)

            let gap = try await Self.store.ingest(try Self.batch(3), from: "gongan", on: sql)
            #expect(gap.status == 409 && String(decoding: gap.body, as: UTF8.self).contains("expected sequence 2"))

            let conflicting = try Self.batch(1, records: Array(SampleBatches.mixedRecords().prefix(3)))
            let conflict = try await Self.store.ingest(conflicting, from: "gongan", on: sql)
            #expect(conflict.status == 409 && conflict.decision == "digest_conflict")
            #expect(try await Self.count(sql, "SELECT count(*) FROM govex.batch_index") == 1, "never stored twice")

            let unreadable = try await Self.store.ingest(Array(try Self.batch(2).dropLast(9)), from: "gongan", on: sql)
            #expect(unreadable.status == 400)
            let impostor = try await Self.store.ingest(try Self.batch(2), from: "minzheng", on: sql)
            #expect(impostor.status == 403 && impostor.decision == "unknown_node")
        }
    }

    @Test("a batch breaking a rule is stored as rejected, answered with a signed rejection, and the stream goes on")
    func rejection() async throws {
        try await Self.withHub { _, sql in
            try await Catalog.upsert(Catalog.Resource(code: "MZ-HY-0003", name: "marriages", provider: "minzheng", share: "conditional", key: ["id_number"], columns: []), on: sql)
            let rejected = try await Self.store.ingest(try Self.batch(1), from: "gongan", on: sql)
            #expect(rejected.status == 200)
            let receipt = try Self.receipt(rejected)
            #expect(receipt.status == .rejected && receipt.reason == "resource MZ-HY-0003 is provided by minzheng, not by this node")
            #expect(try await Self.count(sql, "SELECT count(*) FROM govex.resource_rows") == 0, "a rejected batch changes no state")
            let residentsOnly = SampleBatches.mixedRecords().filter { $0.resource == "GA-RK-0001" }
            let next = try await Self.store.ingest(try Self.batch(2, records: residentsOnly), from: "gongan", on: sql)
            #expect(try Self.receipt(next).status == .accepted)
        }
    }

    @Test("a new epoch is held until accepted; then its sequences start at 1")
    func newEpoch() async throws {
        try await Self.withHub { _, sql in
            _ = try await Self.store.ingest(try Self.batch(1), from: "gongan", on: sql)
            let reset = try await Self.store.ingest(try Self.batch(1, epoch: 8), from: "gongan", on: sql)
            #expect(reset.status == 409 && reset.decision == "new_epoch")
            #expect(try await sql.query("SELECT pending_epoch::text FROM govex.nodes WHERE node_id = 'gongan'").rows[0][0] == "8")
            #expect(try await HubStore.acceptEpoch(of: "gongan", on: sql) == 8)
            #expect(try await HubStore.acceptEpoch(of: "gongan", on: sql) == nil, "nothing waits any more")
            let restarted = try await Self.store.ingest(try Self.batch(1, epoch: 8), from: "gongan", on: sql)
            #expect(try restarted.status == 200 && Self.receipt(restarted).epoch == "8")
        }
    }

    @Test("two replicas racing on the same batch store it once")
    func race() async throws {
        try await Self.withHub { database, _ in
            let bytes = try Self.batch(1)
            let outcomes = try await withThrowingTaskGroup(of: HubStore.IngestOutcome.self) { group in
                for _ in 0..<4 {
                    group.addTask { try await PostgresConnection.with(database.conninfo) { try await Self.store.ingest(bytes, from: "gongan", on: $0) } }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.allSatisfy { $0.status == 200 })
            #expect(outcomes.filter { $0.decision == "accepted" }.count == 1)
            #expect(Set(outcomes.map(\.body)).count == 1, "every replica answers with the one receipt")
        }
    }

    @Test("the hub's copy: upserts, key changes, deletes, unchanged TOAST kept, truncate then insert")
    func resourceState() async throws {
        try await Self.withHub { _, sql in
            _ = try await Self.store.ingest(try Self.batch(1), from: "gongan", on: sql)
            #expect(try await HubCopy.rows(of: "GA-RK-0001", on: sql).isEmpty, "written by the merger, not by the ingest")
            #expect(try await GoldenQueue.drain(store: Self.store, on: sql).batches == 1)
            let residents = try await HubCopy.rows(of: "GA-RK-0001", on: sql)
            let expected = (0..<EdgeValues.rows.count).map { EdgeValues.rows[$0][0].value.postgresText ?? "" }
                .filter { $0 != "2" && $0 != "4" } + ["40"]
            #expect(Set(residents.map(\.key)) == Set(expected.map { "[\"\($0)\"]" }), "row 2 deleted, row 4 moved to 40")
            let marriages = try await HubCopy.rows(of: "MZ-HY-0003", on: sql)
            #expect(marriages.count == 1 && marriages[0].value(of: "marital_status") == .null, "truncated, then one insert: \(marriages)")
            // Row 1's update left docb and blob unchanged: they keep the inserted values, typed.
            let first = try #require(residents.first { $0.key == "[\"\(EdgeValues.rows[0][0].value.postgresText ?? "")\"]" })
            #expect(first.value(of: "blob") == .bytea([0x00, 0xff, 0x10]), "\(first)")
            let inserted = EdgeValues.rows[0]
            #expect(first.value(of: "docb") == inserted.first { $0.name == "docb" }?.value, "\(first)")
        }
    }

    @Test("the merger writes a batch of inserts into the hub's copy with a plain insert, and one holding a key it already has by upsert")
    func copyOfInserts() async throws {
        try await Self.withHub { _, sql in
            func inserts(_ ids: [Int64], name: String, commit: UInt64) -> [ChangeRecord] {
                ids.enumerated().map { ordinal, id in
                    ChangeRecord(operation: .insert, resource: "GA-RK-0001", position: SourcePosition(commit: commit, ordinal: UInt32(ordinal)),
                                 key: [Column("id", .int8(id))], values: [Column("name", .text("\(name)\(id)"))])
                }
            }
            #expect(try await Self.store.ingest(try Self.batch(1, records: inserts([1, 2, 3], name: "a", commit: 10)), from: "gongan", on: sql).decision == "accepted")
            // A snapshot sent again holds key 2 once more.
            #expect(try await Self.store.ingest(try Self.batch(2, records: inserts([4, 2], name: "b", commit: 20)), from: "gongan", on: sql).decision == "accepted")
            // Merged one group at a time (the second batch meets the first's rows).
            #expect(try await GoldenQueue.drain(store: Self.store, groupRecords: 1, on: sql).batches == 2)
            let rows = try await HubCopy.rows(of: "GA-RK-0001", on: sql)
            #expect(rows.map(\.key) == ["[\"1\"]", "[\"2\"]", "[\"3\"]", "[\"4\"]"])
            #expect(rows.map { $0.value(of: "name") } == [.text("a1"), .text("b2"), .text("a3"), .text("b4")])
        }
    }

    @Test("reconcile digests: what the merger stores with each row of the copy is RowDigest of the row, and the summaries at every prefix length agree")
    func rowDigests() async throws {
        try await Self.withHub { _, sql in
            _ = try await Self.store.ingest(try Self.batch(1), from: "gongan", on: sql)
            let more = (100..<300).map { id in
                ChangeRecord(operation: .insert, resource: "GA-RK-0001", position: SourcePosition(commit: 50, ordinal: UInt32(id)),
                             key: [Column("id", .int8(Int64(id)))], values: [Column("name", id % 7 == 0 ? .null : .text("名\(id)"))])
            }
            _ = try await Self.store.ingest(try Self.batch(2, records: more), from: "gongan", on: sql)
            let update = [ChangeRecord(operation: .update, resource: "GA-RK-0001", position: SourcePosition(commit: 60, ordinal: 0),
                                       key: [Column("id", .int8(150))], values: [Column("name", .text("renamed"))])]
            _ = try await Self.store.ingest(try Self.batch(3, records: update), from: "gongan", on: sql)
            _ = try await GoldenQueue.drain(store: Self.store, groupRecords: 1, on: sql)
            let rows = try await HubCopy.rows(of: "GA-RK-0001", on: sql)
            #expect(rows.count == 203, "the edge rows and 200 more")
            try await Self.expectDigests(of: rows, on: sql)
        }
    }

    /// The digests stored with `rows` are theirs, and the summaries are their sums.
    static func expectDigests(of rows: [HubCopy.Row], on sql: PostgresConnection) async throws {
        let stored = try await sql.query("SELECT key, key_bucket, row_hash FROM govex.resource_rows WHERE resource = 'GA-RK-0001'").rows
        for row in rows {
            let match = try #require(stored.first { $0[0] == row.key })
            #expect(UInt32(match[1] ?? "") == RowDigest.bucket(keyText: row.key), "\(row.key)")
            #expect(Int64(match[2] ?? "").map { UInt64(bitPattern: $0) } == RowDigest.hash(row: row.columns), "\(row.key)")
        }
        for bits in [0, 1, 4, 32] {
            var expected: [UInt32: RowDigest.Summary] = [:]
            for row in rows { expected[RowDigest.prefix(RowDigest.bucket(keyText: row.key), bits: bits), default: .init()].add(RowDigest.hash(row: row.columns)) }
            #expect(try await HubCopy.summaries(of: "GA-RK-0001", bits: bits, on: sql) == expected, "\(bits) bits")
        }
    }

    @Test("migration 16 fills the digests of the rows stored before it")
    func digestMigration() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await HubSchema.migrate(sql, through: 15)
                let rows = (1...20).map { HubCopy.Row(key: RowDigest.keyText([Column("id", .int4(Int32($0)))]),
                                                      columns: [Column("id", .int4(Int32($0))), Column("name", .text("n\($0)"))]) }
                try await sql.query("""
                    INSERT INTO govex.resource_rows (resource, key, row_data, node_id, epoch, sequence)
                    SELECT 'GA-RK-0001', u.key, u.row_data, 'gongan', 1, 1 FROM unnest($1::text[], $2::bytea[]) AS u(key, row_data)
                    """, binding: [.textArray(rows.map(\.key)), .byteaArray(rows.map { Column.rowEncoding($0.columns) })])
                #expect(try await HubSchema.migrate(sql) == [16])
                try await Self.expectDigests(of: rows, on: sql)
            }
        }
    }

    @Test("batch partitions are made ahead, and dropped once past the retention")
    func partitions() async throws {
        try await Self.withHub { _, sql in
            try await HubSchema.ensurePartitions(sql, around: "'2020-01-15 00:00:00+00'")
            func names() async throws -> [String] {
                try await sql.query("""
                    SELECT c.relname FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'govex.batches'::regclass ORDER BY 1
                    """).rows.compactMap { $0[0] }
            }
            #expect(try await names().count == 4)
            // A batch of January 2020 that still waits for the merger keeps its partition.
            try await sql.query("""
                INSERT INTO govex.batches (node_id, epoch, sequence, received_at, kind, record_count, bytes)
                VALUES ('gongan', 1, 1, '2020-01-20 00:00:00+00', 'changes', 1, '\\x00')
                """)
            _ = try await GoldenQueue.enqueue(node: "gongan", epoch: 1, sequence: 1, digest: [1], resources: ["GA-RK-0001"], recordCount: 1, on: sql)
            #expect(try await HubSchema.dropExpiredPartitions(sql, retentionDays: 30) == ["batches_2020_02"])
            try await sql.query("DELETE FROM govex.golden_queue")
            #expect(try await HubSchema.dropExpiredPartitions(sql, retentionDays: 30) == ["batches_2020_01"], "merged: dropped")
            #expect(try await names().count == 2, "this month's and next month's stay")
        }
    }

    @Test("the merger holds back while pushes keep coming, and merges once the hub is quiet or the backlog is due")
    func mergerPacing() async throws {
        try await Self.withHub { database, sql in
            _ = try await Self.store.ingest(try Self.batch(1), from: "gongan", on: sql)
            let pool = ConnectionPool(conninfo: database.conninfo, size: 2)
            func queued() async throws -> Int { try await Self.count(sql, "SELECT count(*) FROM govex.golden_queue") }
            // Pushes "keep coming" (a quiet period far longer than the test): nothing is merged.
            let patient = GoldenMerger(quiet: .seconds(600))
            patient.wake()
            let holding = Task { await patient.run(store: Self.store, pool: pool) { _, _ in } }
            try await Task.sleep(for: .seconds(2))
            #expect(try await queued() == 1, "held back while the hub is busy")
            holding.cancel()
            await holding.value
            // The same, but the backlog is due: merged although pushes keep coming.
            let due = GoldenMerger(quiet: .seconds(600), backlogRecords: 1)
            due.wake()
            let merging = Task { await due.run(store: Self.store, pool: pool) { _, _ in } }
            #expect(try await eventually { try await queued() == 0 })
            merging.cancel()
            await merging.value
            #expect(try await HubCopy.rows(of: "GA-RK-0001", on: sql).isEmpty == false)
            await pool.close()
        }
    }
}
