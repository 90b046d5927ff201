import GovexCapture
import GovexPostgres
import GovexTestSupport
import GovexWire
import Synchronization
import Testing

/// The initial snapshot and the stream that follows it hold every row exactly once,
/// even while the table takes writes during the copy.
@Suite("Initial snapshot")
struct SnapshotTests {
    final class Collected: Sendable {
        let records = Mutex<[ChangeRecord]>([])
        let progress = Mutex<[SnapshotProgress]>([])
    }

    @Test("snapshot + stream under concurrent writes equals the table, each insert once")
    func snapshotPlusStream() async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            try await sql.query("CREATE TABLE residents (id int PRIMARY KEY, name text, secret text)")
            try await sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(1, 20000) g")
            try await sql.query("ANALYZE residents")
            try await sql.query("CREATE PUBLICATION govex FOR TABLE residents")
            let mapping = TableMapping(resource: "GA-RK-0001", schema: "public", table: "residents", key: ["id"], columns: .excluding(["secret"]))

            let stream = try await ReplicationConnection.connect(database.conninfo)
            let slot = try await stream.createSlot(database.name + "_slot", temporary: true, exportSnapshot: true)

            // Writes while the snapshot is copied: inserts, updates of copied rows, deletes.
            let writer = try await database.connect()
            let writes = Task {
                for round in 0..<20 {
                    try await writer.query("INSERT INTO residents SELECT g, 'w' || g, 's' FROM generate_series(\(20001 + round * 50), \(20050 + round * 50)) g")
                    try await writer.query("UPDATE residents SET name = 'u\(round)' WHERE id % 997 = \(round)")
                    try await writer.query("DELETE FROM residents WHERE id = \(round * 13 + 1)")
                }
            }
            let collected = Collected()
            try await InitialSnapshot.copy(conninfo: database.conninfo, snapshotName: slot.snapshotName!, consistentPoint: slot.consistentPoint,
                                           mappings: [mapping], limits: .init(maxRecords: 3000, maxBytes: 1 << 20, maxAge: .seconds(1)),
                                           emit: { body, _ in
                                               let file = try BatchSealer.seal(body, metadata: BatchMetadata(nodeID: "gongan", nodeEpoch: 1, sequence: 1, kind: .snapshot,
                                                                                                            completeThrough: 0, createdAt: 0), key: VectorKeys.gongan)
                                               let records = try BatchFile(bytes: file).records()
                                               collected.records.withLock { $0 += records }
                                           },
                                           progress: { report in collected.progress.withLock { $0.append(report) } })
            try await writes.value
            // A last row marks the end of the writes (WAL positions are cluster-wide, and other tests write too).
            try await writer.query("INSERT INTO residents VALUES (999999, 'marker', 's')")

            try await stream.startReplication(slot: slot.name, from: 0, publications: ["govex"])
            let marker = Array("999999".utf8)
            let messages = try await ReplicationTestStream.collect(stream) { messages in
                messages.contains { if case .insert(_, let values) = $0, values.first == .text(marker) { return true } else { return false } }
            }
            var decoder = ChangeDecoder(mappings: [mapping])
            let streamed = try messages.flatMap { try decoder.consume($0) }.compactMap { event -> ChangeRecord? in
                if case .change(let record) = event { return record } else { return nil }
            }
            let snapshot = collected.records.withLock { $0 }
            #expect(snapshot.count <= 20000 && snapshot.count >= 19_000)
            #expect(streamed.allSatisfy { $0.position.commit > slot.consistentPoint }, "the stream starts after the snapshot")
            #expect(!snapshot.contains { $0.values.contains { $0.name == "secret" } })

            // Replay snapshot then stream, as a consumer would.
            var table: [Value: Value] = [:]
            var inserted: [Value: Int] = [:]
            for record in snapshot + streamed {
                let id = record.key[0].value
                switch record.operation {
                case .insert:
                    inserted[id, default: 0] += 1
                    table[id] = record.values[0].value
                case .update: table[id] = record.values[0].value
                case .delete: table[id] = nil
                case .truncate: table = [:]
                }
            }
            #expect(inserted.values.allSatisfy { $0 == 1 }, "no row arrives twice")
            let actual = try await sql.query("SELECT id, name FROM residents")
            let expected = Dictionary(uniqueKeysWithValues: actual.rows.map { (Value.int4(Int32($0[0]!)!), Value.text($0[1]!)) })
            #expect(table == expected)
            let reports = collected.progress.withLock { $0 }
            #expect(reports.last?.rows == snapshot.count)
            #expect(reports.last?.percent != nil)
            await stream.close()
            await writer.close()
            await sql.close()
        }
    }
}
