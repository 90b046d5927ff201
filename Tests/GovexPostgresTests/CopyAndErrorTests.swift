import GovexPostgres
import GovexTestSupport
import GovexWire
import Synchronization
import Testing

@Suite("libpq layer: COPY, errors, settings, threads")
struct CopyAndErrorTests {
    /// A thread-safe byte sink for COPY chunks handed over from the connection's thread.
    final class Sink: Sendable {
        let bytes = Mutex<[UInt8]>([])
        let chunks = Atomic<Int>(0)
        func append(_ chunk: UnsafeRawBufferPointer) {
            bytes.withLock { $0.append(contentsOf: chunk) }
            chunks.add(1, ordering: .relaxed)
        }
    }

    static func tableDigest(_ connection: PostgresConnection, _ table: String) async throws -> String? {
        try await connection.query("SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM \(table) t").rows[0][0]
    }

    @Test("COPY streams out and back in, text and binary, and the tables match", arguments: ["text", "binary"])
    func copyRoundTrip(format: String) async throws {
        try await TestPostgres.withDatabase { database in
            let connection = try await database.connect()
            try await EveryTypeRoundTripTests.createEdgeTable(connection, name: "source")
            try await EveryTypeRoundTripTests.insertEdgeRows(connection, table: "source")
            try await connection.query("INSERT INTO source (id, name) SELECT g, repeat('数据', g % 50) FROM generate_series(10, 20000) g")
            try await EveryTypeRoundTripTests.createEdgeTable(connection, name: "target")

            let sink = Sink()
            let copiedOut = try await connection.copyOut("COPY source TO STDOUT (FORMAT \(format))") { sink.append($0) }
            #expect(copiedOut == 20_000 - 10 + 1 + EdgeValues.rows.count)
            #expect(sink.chunks.load(ordering: .relaxed) > 1, "COPY must stream in chunks, not one buffer")
            let data = sink.bytes.withLock { $0 }
            let copiedIn = try await connection.copyIn("COPY target FROM STDIN (FORMAT \(format))") { writer in
                // Odd-sized pieces prove chunk boundaries do not matter to the server.
                var offset = 0
                while offset < data.count {
                    let end = min(offset + 7919, data.count)
                    try data[offset..<end].withUnsafeBytes { try writer.write($0) }
                    offset = end
                }
            }
            #expect(copiedIn == copiedOut)
            let sourceDigest = try await Self.tableDigest(connection, "source")
            let targetDigest = try await Self.tableDigest(connection, "target")
            #expect(sourceDigest == targetDigest)
            await connection.close()
        }
    }

    struct ProducerFailed: Error {}

    @Test("a COPY in whose producer fails stores nothing")
    func abortedCopyStoresNothing() async throws {
        try await TestPostgres.withDatabase { database in
            let connection = try await database.connect()
            try await connection.query("CREATE TABLE t (id int PRIMARY KEY, v text)")
            await #expect(throws: ProducerFailed.self) {
                try await connection.copyIn("COPY t FROM STDIN") { writer in
                    try writer.write(Array("1\tone\n2\ttwo\n".utf8))
                    throw ProducerFailed()
                }
            }
            #expect(try await connection.query("SELECT count(*) FROM t").rows[0][0] == "0")
            // The connection is still usable afterwards.
            try await connection.query("INSERT INTO t VALUES (1, 'x')")
            await connection.close()
        }
    }

    @Test("errors carry SQLSTATE and the server's message", arguments: [
        ("SELEKT 1", "42601"),
        ("SELECT * FROM no_such_table", "42P01"),
        ("SELECT 1/0", "22012"),
    ])
    func errorsCarrySQLState(sql: String, sqlState: String) async throws {
        try await TestPostgres.withDatabase { database in
            let connection = try await database.connect()
            do {
                try await connection.query(sql)
                Issue.record("\(sql) should have failed")
            } catch let error as PostgresError {
                #expect(error.sqlState == sqlState)
                #expect(!error.message.isEmpty)
            }
            await connection.close()
        }
    }

    @Test("a bad conninfo fails with libpq's reason and no password in it")
    func badConninfo() async throws {
        do {
            _ = try await PostgresConnection.connect("host=127.0.0.1 port=1 user=nobody password=s3cret-value connect_timeout=2")
            Issue.record("connecting to port 1 should fail")
        } catch let error as PostgresError {
            #expect(error.description.contains("connecting"))
            #expect(!error.description.contains("s3cret-value"))
        }
    }

    @Test("sessions pin the settings that make text forms canonical")
    func pinnedSettings() async throws {
        try await TestPostgres.withDatabase { database in
            let connection = try await database.connect()
            let result = try await connection.query("SELECT current_setting('TimeZone'), current_setting('DateStyle'), current_setting('extra_float_digits'), current_setting('client_encoding'), current_setting('bytea_output')")
            #expect(result.rows[0] == ["UTC", "ISO, YMD", "3", "UTF8", "hex"])
            await connection.close()
        }
    }

    @Test("blocking libpq calls do not occupy Swift's cooperative threads")
    func blockingCallsStayOffTheCooperativePool() async throws {
        try await TestPostgres.withDatabase { database in
            var connections: [PostgresConnection] = []
            for _ in 0..<6 { connections.append(try await database.connect()) }
            let observer = try await database.connect()
            // Six sleeps at once. Were each blocking a cooperative thread (two on this machine),
            // at most two could be running, and the observer could not even run its query
            // until they finished; so all six seen sleeping together is the proof, at any speed.
            let mostSeen = try await withThrowingTaskGroup(of: Int.self) { group in
                for connection in connections {
                    group.addTask { try await connection.query("SELECT pg_sleep(4)"); return 0 }
                }
                group.addTask {
                    var most = 0
                    for _ in 0..<60 where most < 6 {
                        let sleeping = try await observer.query("""
                            SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(4)' AND state = 'active'
                            """).rows[0][0].flatMap { Int($0) } ?? 0
                        most = max(most, sleeping)
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    return most
                }
                return try await group.reduce(0) { max($0, $1) }
            }
            #expect(mostSeen == 6)
            for connection in connections + [observer] { await connection.close() }
        }
    }
}

@Suite("LISTEN/NOTIFY")
struct NotificationTests {
    @Test("a NOTIFY from another session wakes the listener; without one the wait times out")
    func notify() async throws {
        try await TestPostgres.withDatabase { database in
            let listener = try await database.connect()
            let sender = try await database.connect()
            try await listener.listen("govex deliveries \"x\"")
            #expect(try await listener.nextNotification(timeout: .milliseconds(200)) == nil)
            async let received = listener.nextNotification(timeout: .seconds(20))
            try await Task.sleep(for: .milliseconds(200))
            try await sender.query("SELECT pg_notify($1, $2)", ["govex deliveries \"x\"", "subscription 7"])
            let notification = try await received
            #expect(notification?.channel == "govex deliveries \"x\"" && notification?.payload == "subscription 7")
            await listener.close()
            await sender.close()
        }
    }
}
