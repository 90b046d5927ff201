import GovexApply
import GovexCapture
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// Applies into a real PostgreSQL table: in order, once, and never captured back out.
@Suite("Delivery applier")
struct DeliveryApplierTests {
    static let origin = DeliveryOrigin(node: "gongan", epoch: 1, sequence: 1)

    func upsert(_ id: Int32, _ name: Value, amount: Value = .numeric(try! Numeric("1.50")), ordinal: UInt32 = 0) -> ChangeRecord {
        ChangeRecord(operation: .insert, resource: "GA-RK-0001", position: SourcePosition(commit: 1, ordinal: ordinal),
                     key: [Column("id", .int4(id))],
                     values: [Column("name", name), Column("amount", amount), Column("seen", .timestamptz(0)), Column("photo", .bytea([0, 255]))])
    }

    @Test("deliveries apply in order with the cursor; a redelivery changes nothing; a gap is refused; values keep their types")
    func orderedOnce() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await sql.query("CREATE SCHEMA shared")
                try await sql.query("CREATE TABLE shared.residents (id int PRIMARY KEY, name text, amount numeric(10,2), seen timestamptz, photo bytea)")
                try await DeliveryApplier.with(conninfo: database.conninfo, subscription: 5, resource: "GA-RK-0001", schema: "shared", table: "residents") { (applier: DeliveryApplier) async throws in
                    #expect(try await applier.cursor() == 0)
                    let first = [upsert(1, .text("张三")), upsert(2, .null), upsert(3, .text("x"))]
                    #expect(try await applier.apply(first, sequence: 1, origin: Self.origin) == .applied(statements: 1))
                    let second = [
                        ChangeRecord(operation: .update, resource: "GA-RK-0001", position: SourcePosition(commit: 2, ordinal: 0),
                                     key: [Column("id", .int4(30))], values: [Column("name", .unchanged), Column("amount", .numeric(try! Numeric("2")))],
                                     oldKey: [Column("id", .int4(3))]),
                        ChangeRecord(operation: .delete, resource: "GA-RK-0001", position: SourcePosition(commit: 2, ordinal: 1), key: [Column("id", .int4(2))]),
                        ChangeRecord(operation: .insert, resource: "OTHER", position: SourcePosition(commit: 2, ordinal: 2), key: [Column("id", .int4(99))]),
                    ]
                    #expect(try await applier.apply(second, sequence: 2, origin: Self.origin) != .alreadyApplied)
                    #expect(try await applier.apply(first, sequence: 1, origin: Self.origin) == .alreadyApplied, "a redelivery is a no-op")
                    #expect(try await applier.apply(second, sequence: 2, origin: Self.origin) == .alreadyApplied)
                    await #expect(throws: ApplyError.self) { try await applier.apply(first, sequence: 4, origin: Self.origin) }
                    #expect(try await applier.cursor() == 2)
                }
                let rows = try await sql.query("SELECT id, name, amount::text, seen AT TIME ZONE 'UTC', encode(photo, 'hex') FROM shared.residents ORDER BY id").rows
                #expect(rows == [["1", "张三", "1.50", "2000-01-01 00:00:00", "00ff"], ["30", "x", "2.00", "2000-01-01 00:00:00", "00ff"]])
            }
        }
    }

    @Test("consecutive deliveries applied as one: the cursor moves to the last; a group not starting after the cursor is refused; one already applied is a no-op")
    func groupedDeliveries() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await sql.query("CREATE TABLE public.t (id int PRIMARY KEY, name text, amount numeric(10,2), seen timestamptz, photo bytea)")
                try await DeliveryApplier.with(conninfo: database.conninfo, subscription: 8, resource: "GA-RK-0001", schema: "public", table: "t") { (applier: DeliveryApplier) async throws in
                    #expect(try await applier.apply([upsert(1, .text("a"))], sequence: 1, origin: Self.origin) == .applied(statements: 1))
                    // Deliveries 2–4: an insert, its update, then a delete of another row, in order.
                    let records = [upsert(2, .text("b")), upsert(3, .text("c"), ordinal: 1), upsert(2, .text("b2"), ordinal: 2),
                                   ChangeRecord(operation: .delete, resource: "GA-RK-0001", position: SourcePosition(commit: 4, ordinal: 0), key: [Column("id", .int4(1))])]
                    let last = DeliveryOrigin(node: "gongan", epoch: 1, sequence: 4)
                    await #expect(throws: ApplyError.self, "delivery 3 is not next") {
                        try await applier.apply(try applier.prepare(records, sequence: 5, origin: last, firstSequence: 3))
                    }
                    let grouped = try applier.prepare(records, sequence: 4, origin: last, firstSequence: 2)
                    #expect(try await applier.apply(grouped) != .alreadyApplied)
                    #expect(try await applier.cursor() == 4)
                    #expect(try await applier.apply(grouped) == .alreadyApplied, "a redelivered group is a no-op")
                }
                #expect(try await sql.query("SELECT id, name FROM public.t ORDER BY id").rows == [["2", "b2"], ["3", "c"]])
                #expect(try await sql.query("SELECT origin_sequence::text FROM govex.delivery_cursors WHERE subscription = 8").rows == [["4"]],
                        "the cursor names the last delivery's origin")
            }
        }
    }

    @Test("deliveries group while their records fit the budget; one that may not join stays alone")
    func grouping() {
        let limit = DeliveryApplier.groupRecords
        #expect(DeliveryApplier.groups(recordCounts: []) == [])
        #expect(DeliveryApplier.groups(recordCounts: [limit / 2, limit / 2, 1, limit + 1, 3]) == [0..<2, 2..<3, 3..<4, 4..<5])
        #expect(DeliveryApplier.groups(recordCounts: [1, 1, 1, 1], joinable: { $0 != 2 }) == [0..<2, 2..<3, 3..<4])
    }

    @Test("a failed statement rolls the whole delivery back, cursor included, and names the table")
    func atomic() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await sql.query("CREATE TABLE public.t (id int PRIMARY KEY, name text NOT NULL, amount numeric, seen timestamptz, photo bytea)")
                try await DeliveryApplier.with(conninfo: database.conninfo, subscription: 6, resource: "GA-RK-0001", schema: "public", table: "t") { (applier: DeliveryApplier) async throws in
                    let bad = [upsert(1, .text("ok")), upsert(2, .null, ordinal: 1)]
                    await #expect {
                        try await applier.apply(bad, sequence: 1, origin: Self.origin)
                    } throws: { error in
                        "\(error)".contains("public.t") && "\(error)".contains("null value")
                    }
                    #expect(try await applier.cursor() == 0)
                }
                #expect(try await sql.query("SELECT count(*) FROM public.t").rows[0][0] == "0")
            }
        }
    }

    @Test("applied rows carry the replication origin, so capture in the same database skips them (no echo)")
    func noEcho() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await sql.query("CREATE TABLE public.t (id int PRIMARY KEY, name text, amount numeric, seen timestamptz, photo bytea)")
                try await sql.query("CREATE PUBLICATION echo FOR TABLE public.t")
                let slot = database.name + "_echo"
                try await sql.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot])
                try await DeliveryApplier.with(conninfo: database.conninfo, subscription: 7, resource: "GA-RK-0001", schema: "public", table: "t") { (applier: DeliveryApplier) async throws in
                    _ = try await applier.apply([upsert(1, .text("applied"))], sequence: 1, origin: Self.origin)
                }
                try await sql.query("INSERT INTO public.t (id, name) VALUES (2, 'local')")
                let result = try await sql.query("""
                    SELECT data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', 'echo')
                    """, [slot])
                var decoder = ChangeDecoder(mappings: [TableMapping(resource: "R", schema: "public", table: "t", key: ["id"])],
                                            skippedOrigins: ["govex_apply"])
                var captured: [Int32] = []
                var sawOrigin = false
                for row in result.rows {
                    guard case .bytea(let bytes) = try Value(postgresText: row[0]!, type: .bytea) else { continue }
                    let message = try PgOutputParser.parse(bytes)
                    if case .origin(_, let name) = message { sawOrigin = name.hasPrefix("govex_apply_") && name.hasSuffix("_7") }
                    for case .change(let record) in try decoder.consume(message) {
                        if case .int4(let id) = record.key[0].value { captured.append(id) }
                    }
                }
                #expect(sawOrigin, "the apply's transaction names its origin")
                #expect(captured == [2], "only the local change is captured")
                try await sql.query("SELECT pg_drop_replication_slot($1)", [slot])
            }
        }
    }

    @Test("inserts of new keys are copied straight in; an insert meeting a key the table holds falls back to the upsert, in the same transaction")
    func newRowsStraightIn() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await sql.query("CREATE TABLE public.residents (id int PRIMARY KEY, name text, amount numeric(10,2), seen timestamptz, photo bytea, note text DEFAULT 'kept')")
                try await DeliveryApplier.with(conninfo: database.conninfo, subscription: 9, resource: "GA-RK-0001", schema: "public", table: "residents") { (applier: DeliveryApplier) async throws in
                    let first = (1...3).map { upsert(Int32($0), .text("a\t\\\($0)\n")) }
                    #expect(try await applier.apply(first, sequence: 1, origin: Self.origin) == .applied(statements: 1))
                    try await sql.query("UPDATE public.residents SET note = 'local' WHERE id = 2")
                    // Key 2 again (a snapshot sent once more): the straight copy fails on it and the upsert takes over.
                    let second = [upsert(4, .text("d")), upsert(2, .text("b again"), ordinal: 1), upsert(5, .null, ordinal: 2)]
                    #expect(try await applier.apply(second, sequence: 2, origin: Self.origin) == .applied(statements: 1))
                    // Key 6 twice in one delivery: the straight copy fails on itself, the upsert folds it.
                    let third = [upsert(6, .text("first")), upsert(7, .text("g"), ordinal: 1), upsert(6, .text("second"), ordinal: 2)]
                    #expect(try await applier.apply(third, sequence: 3, origin: Self.origin) == .applied(statements: 1))
                    #expect(try await applier.cursor() == 3)
                }
                let rows = try await sql.query("SELECT id, name, note FROM public.residents ORDER BY id").rows
                #expect(rows == [["1", "a\t\\1\n", "kept"], ["2", "b again", "local"], ["3", "a\t\\3\n", "kept"], ["4", "d", "kept"], ["5", nil, "kept"],
                                 ["6", "second", "kept"], ["7", "g", "kept"]])
            }
        }
    }

    @Test("random batches applied set-based leave the table as applying their records one by one would")
    func matchesSequentialOrder() async throws {
        var generator = SplitMix64(state: 0x5E7)
        var oracle: [Int32: (name: String?, note: String?)] = [:]
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await sql.query("CREATE TABLE public.t (id int PRIMARY KEY, name text, note text DEFAULT 'default')")
                try await DeliveryApplier.with(conninfo: database.conninfo, subscription: 8, resource: "R", schema: "public", table: "t") { (applier: DeliveryApplier) async throws in
                    for sequence in 1...30 {
                        var records: [ChangeRecord] = []
                        for ordinal in 0..<150 {
                            let id = Int32(generator.next() % 40)
                            let name: Value = generator.next() % 5 == 0 ? .null : (generator.next() % 4 == 0 ? .unchanged : .text("n\(generator.next() % 1000)\t\\"))
                            let note: Value = generator.next() % 3 == 0 ? .unchanged : .text("note \(ordinal)")
                            let position = SourcePosition(commit: UInt64(sequence), ordinal: UInt32(ordinal))
                            func carried(_ value: Value, _ old: String?) -> String? {
                                if case .unchanged = value { return old }
                                return value.postgresText
                            }
                            switch generator.next() % 20 {
                            case 0..<9:
                                records.append(ChangeRecord(operation: .update, resource: "R", position: position, key: [Column("id", .int4(id))],
                                                            values: [Column("name", name), Column("note", note)]))
                                let old = oracle[id] ?? (nil, "default")
                                oracle[id] = (carried(name, old.name), carried(note, old.note))
                            case 9..<14:
                                records.append(ChangeRecord(operation: .delete, resource: "R", position: position, key: [Column("id", .int4(id))]))
                                oracle[id] = nil
                            case 14..<19:
                                let from = Int32(generator.next() % 40)
                                records.append(ChangeRecord(operation: .update, resource: "R", position: position, key: [Column("id", .int4(id))],
                                                            values: [Column("name", name), Column("note", note)], oldKey: [Column("id", .int4(from))]))
                                if case .unchanged = name {} else if case .unchanged = note {} else {
                                    oracle[from] = nil
                                    oracle[id] = (name.postgresText, note.postgresText)
                                    continue
                                }
                                let old = from == id ? oracle[id] : oracle.removeValue(forKey: from)
                                let base = old ?? (id != from ? (nil, "default") : (nil, "default"))
                                if from != id { oracle[id] = nil }
                                oracle[id] = (carried(name, base.name), carried(note, base.note))
                            default:
                                if generator.next() % 3 == 0 {
                                    records.append(ChangeRecord(operation: .truncate, resource: "R", position: position, key: []))
                                    oracle = [:]
                                }
                            }
                        }
                        _ = try await applier.apply(records, sequence: UInt64(sequence), origin: Self.origin)
                        let rows = try await sql.query("SELECT id, name, note FROM public.t ORDER BY id").rows
                        let expected = oracle.keys.sorted().map { [String($0), oracle[$0]!.name, oracle[$0]!.note] }
                        #expect(rows == expected, "after delivery \(sequence)")
                        if rows != expected { return }
                    }
                }
            }
        }
    }

    @Test("a missing table, a missing column and a value of the wrong type are permanent errors naming what to fix")
    func permanentErrors() async throws {
        try await TestPostgres.withDatabase { database in
            try await PostgresConnection.with(database.conninfo) { sql in
                try await sql.query("CREATE TABLE public.t (id int PRIMARY KEY, name text, amount numeric, seen timestamptz)")
                try await DeliveryApplier.with(conninfo: database.conninfo, subscription: 9, resource: "GA-RK-0001", schema: "public", table: "missing") { (applier: DeliveryApplier) async throws in
                    await #expect { try await applier.apply([upsert(1, .text("a"))], sequence: 1, origin: Self.origin) } throws: { error in
                        (error as? ApplyError)?.permanent == true && "\(error)".contains("public.missing") && "\(error)".contains("does not exist")
                    }
                }
                try await DeliveryApplier.with(conninfo: database.conninfo, subscription: 10, resource: "GA-RK-0001", schema: "public", table: "t") { (applier: DeliveryApplier) async throws in
                    await #expect { try await applier.apply([upsert(1, .text("a"))], sequence: 1, origin: Self.origin) } throws: { error in
                        (error as? ApplyError)?.permanent == true && "\(error)".contains("no column photo")
                    }
                    try await sql.query("ALTER TABLE public.t ADD COLUMN photo bytea, ALTER COLUMN amount TYPE int USING 0")
                    await #expect { try await applier.apply([upsert(1, .text("a"))], sequence: 1, origin: Self.origin) } throws: { error in
                        (error as? ApplyError)?.permanent == true && "\(error)".contains("integer")
                    }
                    try await sql.query("ALTER TABLE public.t ALTER COLUMN amount TYPE numeric")
                    #expect(try await applier.apply([upsert(1, .text("a"))], sequence: 1, origin: Self.origin) == .applied(statements: 1),
                            "after the DBA's fix the same delivery applies")
                }
            }
        }
    }
}
