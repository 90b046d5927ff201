import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// Real pgoutput bytes from PostgreSQL, read through the replication slot SQL
/// interface, parse into exactly the changes that were made.
@Suite("pgoutput from a real server")
struct PgOutputCaptureTests {
    @Test("inserts, updates (unchanged TOAST, key change), deletes, truncate and messages")
    func capturedSession() async throws {
        try await TestPostgres.withDatabase { database in
            let connection = try await database.connect()
            try await connection.query("CREATE TABLE residents (id_number text PRIMARY KEY, name text, photo text, age int)")
            // EXTERNAL storage keeps the large value out of line and uncompressed: a real TOASTed column.
            try await connection.query("ALTER TABLE residents ALTER photo SET STORAGE EXTERNAL")
            try await connection.query("CREATE TABLE unpublished (id int PRIMARY KEY)")
            try await connection.query("CREATE PUBLICATION govex_pub FOR TABLE residents")
            let slot = database.name + "_slot"
            try await connection.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot])

            let photo = String(repeating: "照", count: 5_000)
            try await connection.query("INSERT INTO residents VALUES ($1, $2, $3, $4)", ["11010519491231002X", "张三", photo, "30"])
            try await connection.query("UPDATE residents SET age = 31 WHERE id_number = '11010519491231002X'")
            try await connection.query("UPDATE residents SET id_number = '110105194912310038' WHERE id_number = '11010519491231002X'")
            try await connection.query("INSERT INTO unpublished VALUES (1)")
            try await connection.query("DELETE FROM residents WHERE id_number = '110105194912310038'")
            try await connection.query("TRUNCATE residents")
            try await connection.query("SELECT pg_logical_emit_message(true, 'govex', 'heartbeat')")

            let result = try await connection.query("""
                SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
                    'proto_version', '1', 'publication_names', 'govex_pub', 'messages', 'true')
                """, [slot])
            let messages = try result.rows.map { row in
                guard case .bytea(let bytes) = try Value(postgresText: row[0]!, type: .bytea) else { throw TestSupportError("not bytea") }
                return try PgOutputParser.parse(bytes)
            }
            let changes = messages.filter {
                switch $0 {
                case .begin, .commit, .relation: return false
                default: return true
                }
            }
            let text = { (s: String) in TupleValue.text(Array(s.utf8)) }
            #expect(changes.count == 6, "\(changes)")
            guard changes.count == 6 else { return }
            #expect(changes[0] == .insert(relation: relationID(messages), new: [text("11010519491231002X"), text("张三"), text(photo), text("30")]))
            #expect(changes[1] == .update(relation: relationID(messages), old: nil, new: [text("11010519491231002X"), text("张三"), .unchangedToast, text("31")]))
            #expect(changes[2] == .update(relation: relationID(messages), old: .key([text("11010519491231002X"), .null, .null, .null]),
                                          new: [text("110105194912310038"), text("张三"), .unchangedToast, text("31")]))
            #expect(changes[3] == .delete(relation: relationID(messages), old: .key([text("110105194912310038"), .null, .null, .null])))
            #expect(changes[4] == .truncate(relations: [relationID(messages)], cascade: false, restartIdentity: false))
            #expect(changes[5] == .message(transactional: true, lsn: lsn(of: changes[5]), prefix: "govex", content: Array("heartbeat".utf8)))

            let relations = messages.compactMap { message -> RelationDescription? in
                if case .relation(let description) = message { return description }
                return nil
            }
            #expect(relations.first?.name == "residents")
            #expect(relations.first?.columns.map(\.isKey) == [true, false, false, false])
            #expect(relations.first?.columns.map(\.typeOID) == [25, 25, 25, 23])
            // Every transaction is framed: as many begins as commits, and none for the unpublished table's.
            let begins = messages.filter { if case .begin = $0 { return true }; return false }.count
            let commits = messages.filter { if case .commit = $0 { return true }; return false }.count
            #expect(begins == commits && begins == 6)

            try await connection.dropSlot(slot)
            await connection.close()
        }
    }

    func relationID(_ messages: [PgOutputMessage]) -> UInt32 {
        for case .relation(let description) in messages { return description.id }
        return 0
    }

    func lsn(of message: PgOutputMessage) -> UInt64 {
        if case .message(_, let lsn, _, _) = message { return lsn }
        return 0
    }
}
