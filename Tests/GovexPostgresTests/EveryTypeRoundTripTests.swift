import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// Every supported type's edge cases, stored in real PostgreSQL, read back through
/// libpq into change records, sealed into a batch, verified, decoded: exactly equal.
@Suite("Every type, through PostgreSQL and a batch")
struct EveryTypeRoundTripTests {
    static func createEdgeTable(_ connection: PostgresConnection, name: String) async throws {
        let columns = EdgeValues.rows[0].map { "\($0.name) \($0.sqlType)" + ($0.name == "id" ? " PRIMARY KEY" : "") }
        try await connection.query("CREATE TABLE \(name) (\(columns.joined(separator: ", ")))")
    }

    static func insertEdgeRows(_ connection: PostgresConnection, table: String) async throws {
        let columns = EdgeValues.rows[0]
        let placeholders = columns.indices.map { "$\($0 + 1)::\(columns[$0].sqlType)" }.joined(separator: ", ")
        for row in EdgeValues.rows {
            try await connection.query("INSERT INTO \(table) VALUES (\(placeholders))", row.map(\.text))
        }
    }

    /// A fresh database holding table `edge` with the edge rows; the connection is closed afterwards.
    static func withEdgeTable(_ body: (PostgresConnection) async throws -> Void) async throws {
        try await TestPostgres.withDatabase { database in
            let connection = try await database.connect()
            try await createEdgeTable(connection, name: "edge")
            try await insertEdgeRows(connection, table: "edge")
            try await body(connection)
            await connection.close()
        }
    }

    @Test("PostgreSQL's text forms read into the expected values")
    func readsEdgeValues() async throws {
        try await Self.withEdgeTable { connection in
            let result = try await connection.query("SELECT * FROM edge ORDER BY id")
            let rows = try await connection.values(of: result)
            #expect(rows.count == EdgeValues.rows.count)
            for (row, expected) in zip(rows, EdgeValues.rows) {
                for (value, column) in zip(row, expected) {
                    #expect(value == column.value, "column \(column.name): read \(value), expected \(column.value)")
                }
            }
        }
    }

    @Test("govex's text forms are what PostgreSQL reads back to the same value")
    func writesTextPostgresAccepts() async throws {
        try await TestPostgres.withDatabase { database in
            let connection = try await database.connect()
            for row in EdgeValues.rows {
                for column in row {
                    guard let ours = column.value.postgresText, let theirs = column.text else { continue }
                    let result = try await connection.query("SELECT $1::\(column.sqlType)::text = $2::\(column.sqlType)::text", [ours, theirs])
                    #expect(result.rows[0][0] == "t", "\(column.sqlType): govex wrote \(ours), PostgreSQL printed \(theirs)")
                }
            }
            await connection.close()
        }
    }

    @Test("rows read from PostgreSQL survive encode, compress, sign, verify, decode", arguments: SignatureAlgorithm.allCases)
    func batchRoundTrip(algorithm: SignatureAlgorithm) async throws {
        try await Self.withEdgeTable { connection in
            let result = try await connection.query("SELECT * FROM edge ORDER BY id")
            let rows = try await connection.values(of: result)
            let names = result.fields.map(\.name)

            var records: [ChangeRecord] = []
            for (index, row) in rows.enumerated() {
                let columns = zip(names, row).map { Column($0, $1) }
                records.append(ChangeRecord(operation: .insert, resource: "GA-RK-0001",
                                            position: SourcePosition(commit: 0x1_6B37_4800, ordinal: UInt32(index)),
                                            key: [columns[0]], values: Array(columns.dropFirst())))
        }
        var encoder = BatchBodyEncoder()
        for record in records { try encoder.append(record) }
        let key = try SigningKey.generate(algorithm)
        let file = try BatchSealer.seal(encoder, metadata: BatchMetadata(nodeID: "gongan", nodeEpoch: 7, sequence: 1,
                                                                          completeThrough: 0x1_6B37_4800, createdAt: 1_764_000_000_000_000), key: key)
        let batch = try BatchFile(bytes: file)
        try batch.verify(with: key.publicKey)
        #expect(try batch.records() == records)
        }
    }
}
