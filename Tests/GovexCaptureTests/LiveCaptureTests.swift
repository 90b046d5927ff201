import GovexCapture
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// Real changes, streamed by a real server, decoded into records and sealed into a verified batch.
@Suite("Capture from a real server")
struct LiveCaptureTests {
    @Test("inserts, updates with and without REPLICA IDENTITY FULL, key change, delete, truncate; unmapped and excluded data never appear",
          arguments: [false, true])
    func capture(replicaIdentityFull: Bool) async throws {
        try await TestPostgres.withDatabase { database in
            let sql = try await database.connect()
            try await sql.query("CREATE TABLE residents (id_number text PRIMARY KEY, name text, photo text, secret text, born date)")
            try await sql.query("ALTER TABLE residents ALTER photo SET STORAGE EXTERNAL")
            if replicaIdentityFull { try await sql.query("ALTER TABLE residents REPLICA IDENTITY FULL") }
            try await sql.query("CREATE TABLE audit (id int PRIMARY KEY)")
            try await sql.query("CREATE PUBLICATION govex FOR TABLE residents, audit")

            let stream = try await ReplicationConnection.connect(database.conninfo)
            let slot = try await stream.createSlot(database.name + "_slot", temporary: true, exportSnapshot: false)
            try await stream.startReplication(slot: slot.name, from: 0, publications: ["govex"])

            let photo = String(repeating: "像", count: 4_000)
            try await sql.query("INSERT INTO residents VALUES ('A1', '张三', $1, 'do not share', '1990-01-02')", [photo])
            try await sql.query("INSERT INTO audit VALUES (1)")
            try await sql.query("UPDATE residents SET name = '李四' WHERE id_number = 'A1'")
            try await sql.query("UPDATE residents SET id_number = 'B1' WHERE id_number = 'A1'")
            try await sql.query("DELETE FROM residents WHERE id_number = 'B1'")
            try await sql.query("TRUNCATE residents")

            let messages = try await ReplicationTestStream.collect(stream) { ReplicationTestStream.commitCount($0) >= 6 }
            let mapping = TableMapping(resource: "GA-RK-0001", schema: "public", table: "residents", key: ["id_number"],
                                       columns: .excluding(["secret"]), rename: ["born": "birth_date"])
            var decoder = ChangeDecoder(mappings: [mapping])
            let events = try messages.flatMap { try decoder.consume($0) }
            let records = events.compactMap { if case .change(let record) = $0 { return record } else { return nil } }

            #expect(records.map(\.operation) == [.insert, .update, .update, .delete, .truncate])
            #expect(Set(records.map(\.resource)) == ["GA-RK-0001"])
            #expect(records[0].values == [Column("name", .text("张三")), Column("photo", .text(photo)), Column("birth_date", .date(-3651))])
            let expectedPhoto: Value = replicaIdentityFull ? .text(photo) : .unchanged
            #expect(records[1].values.first { $0.name == "photo" }?.value == expectedPhoto)
            #expect(records[2].key == [Column("id_number", .text("B1"))])
            #expect(records[2].oldKey == [Column("id_number", .text("A1"))])
            #expect(records[3].key == [Column("id_number", .text("B1"))])
            for record in records {
                #expect(!(record.values.map(\.name).contains("secret")))
            }
            // Positions strictly increase across transactions, and the records make a verified batch.
            #expect(zip(records, records.dropFirst()).allSatisfy { $0.position < $1.position })
            var encoder = BatchBodyEncoder()
            for record in records { try encoder.append(record) }
            let key = try SigningKey.generate(.ed25519)
            let batch = try BatchFile(bytes: try BatchSealer.seal(encoder, metadata: SampleBatches.metadata(), key: key))
            try batch.verify(with: key.publicKey)
            #expect(try batch.records() == records)
            await stream.close()
            await sql.close()
        }
    }
}
