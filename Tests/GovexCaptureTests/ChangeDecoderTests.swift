import GovexCapture
import GovexPolicy
import GovexPostgres
import GovexWire
import Testing

/// The decoder on message sequences, no database: positions, mappings, TOAST, key changes, echo.
@Suite("Change decoder")
struct ChangeDecoderTests {
    static let residents = RelationDescription(id: 7, namespace: "public", name: "residents", replicaIdentity: UInt8(ascii: "d"), columns: [
        .init(isKey: true, name: "id_number", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "name", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "photo", typeOID: 17, typeModifier: -1),
        .init(isKey: false, name: "secret", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "born", typeOID: 1082, typeModifier: -1),
    ])
    static let unmapped = RelationDescription(id: 8, namespace: "public", name: "audit", replicaIdentity: UInt8(ascii: "d"), columns: [
        .init(isKey: true, name: "id", typeOID: 23, typeModifier: -1),
    ])
    static let mapping = TableMapping(resource: "GA-RK-0001", schema: "public", table: "residents", key: ["id_number"],
                                      columns: .excluding(["secret"]), rename: ["born": "birth_date"])

    static func t(_ s: String) -> TupleValue { .text(Array(s.utf8)) }

    static func decode(_ messages: [PgOutputMessage], skippedOrigins: Set<String> = []) throws -> [CaptureEvent] {
        var decoder = ChangeDecoder(mappings: [mapping], skippedOrigins: skippedOrigins)
        return try messages.flatMap { try decoder.consume($0) }
    }

    @Test("a transaction's changes are positioned by its commit LSN and ordinal; unmapped tables and excluded columns vanish")
    func positionsAndMapping() throws {
        let events = try Self.decode([
            .begin(finalLSN: 500, commitTime: 0, xid: 1),
            .relation(Self.residents), .relation(Self.unmapped),
            .insert(relation: 8, new: [Self.t("1")]),
            .insert(relation: 7, new: [Self.t("A1"), Self.t("张三"), Self.t("\\x01"), Self.t("hidden"), Self.t("1990-01-02")]),
            .insert(relation: 7, new: [Self.t("A2"), .null, .null, .null, .null]),
            .commit(flags: 0, commitLSN: 500, endLSN: 540, commitTime: 0),
        ])
        #expect(events == [
            .change(ChangeRecord(operation: .insert, resource: "GA-RK-0001", position: SourcePosition(commit: 500, ordinal: 0),
                                 key: [Column("id_number", .text("A1"))],
                                 values: [Column("name", .text("张三")), Column("photo", .bytea([1])), Column("birth_date", .date(-3651))])),
            .change(ChangeRecord(operation: .insert, resource: "GA-RK-0001", position: SourcePosition(commit: 500, ordinal: 1),
                                 key: [Column("id_number", .text("A2"))],
                                 values: [Column("name", .null), Column("photo", .null), Column("birth_date", .null)])),
            .commit(commitLSN: 500, endLSN: 540),
        ])
    }

    @Test("unchanged TOAST stays unchanged, or is filled from a full old row; key changes carry the old key")
    func updates() throws {
        let events = try Self.decode([
            .begin(finalLSN: 900, commitTime: 0, xid: 2), .relation(Self.residents), .relation(Self.unmapped),
            .update(relation: 7, old: nil, new: [Self.t("A1"), Self.t("李四"), .unchangedToast, Self.t("s"), .null]),
            .update(relation: 7, old: .full([Self.t("A1"), Self.t("李四"), Self.t("\\x0203"), Self.t("s"), .null]),
                    new: [Self.t("A1"), Self.t("王五"), .unchangedToast, Self.t("s"), .null]),
            .update(relation: 7, old: .key([Self.t("A1"), .null, .null, .null, .null]),
                    new: [Self.t("B1"), Self.t("王五"), .unchangedToast, Self.t("s"), .null]),
            .delete(relation: 7, old: .key([Self.t("B1"), .null, .null, .null, .null])),
            .truncate(relations: [8, 7], cascade: false, restartIdentity: false),
            .commit(flags: 0, commitLSN: 900, endLSN: 940, commitTime: 0),
        ])
        let records = events.compactMap { if case .change(let record) = $0 { return record } else { return nil } }
        #expect(records.count == 5)
        #expect(records[0].values[1] == Column("photo", .unchanged))
        #expect(records[1].values[1] == Column("photo", .bytea([2, 3])), "a full old row fills the unchanged value")
        #expect(records[1].oldKey == nil, "same key: no old key")
        #expect(records[2].key == [Column("id_number", .text("B1"))])
        #expect(records[2].oldKey == [Column("id_number", .text("A1"))])
        #expect(records[3].operation == .delete && records[3].key == [Column("id_number", .text("B1"))] && records[3].values.isEmpty)
        #expect(records[4].operation == .truncate && records[4].resource == "GA-RK-0001")
        #expect(records.map(\.position.ordinal) == [0, 1, 2, 3, 4])
        // The records make a valid batch body.
        var encoder = BatchBodyEncoder()
        for record in records { try encoder.append(record) }
        #expect(encoder.recordCount == 5)
    }

    @Test("transactions from our own replication origin produce nothing (no echo)")
    func echoSkipped() throws {
        let events = try Self.decode([
            .begin(finalLSN: 10, commitTime: 0, xid: 3), .origin(commitLSN: 9, name: "govex_apply"), .relation(Self.residents),
            .insert(relation: 7, new: [Self.t("A9"), .null, .null, .null, .null]),
            .message(transactional: true, lsn: 10, prefix: "x", content: []),
            .commit(flags: 0, commitLSN: 10, endLSN: 20, commitTime: 0),
            .begin(finalLSN: 30, commitTime: 0, xid: 4), .origin(commitLSN: 29, name: "someone_else"),
            .insert(relation: 7, new: [Self.t("A8"), .null, .null, .null, .null]),
            .commit(flags: 0, commitLSN: 30, endLSN: 40, commitTime: 0),
        ], skippedOrigins: ["govex_apply"])
        #expect(events.count == 2)
        #expect(events.last == .commit(commitLSN: 30, endLSN: 40))
    }

    @Test("protocol violations and bad values are errors, not guesses", arguments: [
        [PgOutputMessage.insert(relation: 7, new: [])],
        [.begin(finalLSN: 1, commitTime: 0, xid: 1), .insert(relation: 7, new: [])],
        [.begin(finalLSN: 1, commitTime: 0, xid: 1), .begin(finalLSN: 2, commitTime: 0, xid: 2)],
        [.commit(flags: 0, commitLSN: 1, endLSN: 2, commitTime: 0)],
        [.begin(finalLSN: 1, commitTime: 0, xid: 1), .relation(residents), .insert(relation: 7, new: [t("A1")])],
        [.begin(finalLSN: 1, commitTime: 0, xid: 1), .relation(residents), .insert(relation: 7, new: [.null, .null, .null, .null, .null])],
        [.begin(finalLSN: 1, commitTime: 0, xid: 1), .relation(residents), .insert(relation: 7, new: [t("A1"), .null, .null, .null, t("not a date")])],
        [.begin(finalLSN: 1, commitTime: 0, xid: 1), .relation(residents), .insert(relation: 7, new: [.text([0xFF]), .null, .null, .null, .null])],
    ])
    func errors(messages: [PgOutputMessage]) {
        #expect(throws: CaptureError.self) { _ = try Self.decode(messages) }
    }

    @Test("a mapping whose key column is not streamed is refused when the relation arrives")
    func keyMissing() {
        var decoder = ChangeDecoder(mappings: [TableMapping(resource: "R", schema: "public", table: "residents", key: ["nope"])])
        #expect(throws: CaptureError.self) { _ = try decoder.consume(.relation(Self.residents)) }
    }
}

@Suite("Change decoder with a row filter")
struct FilteredDecoderTests {
    static let table = RelationDescription(id: 3, namespace: "public", name: "cases", replicaIdentity: UInt8(ascii: "d"), columns: [
        .init(isKey: true, name: "id", typeOID: 23, typeModifier: -1),
        .init(isKey: false, name: "status", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "title", typeOID: 25, typeModifier: -1),
    ])

    @Test("rows outside the filter are not shipped; an update leaving the filter becomes a delete; the filter may read unpublished columns")
    func filtered() throws {
        let mapping = TableMapping(resource: "R", schema: "public", table: "cases", key: ["id"], columns: .only(["title"]),
                                   filter: try RowFilter.parse("status <> 'draft'"))
        var decoder = ChangeDecoder(mappings: [mapping])
        let t = { (s: String) in TupleValue.text(Array(s.utf8)) }
        let events = try [
            PgOutputMessage.begin(finalLSN: 100, commitTime: 0, xid: 1), .relation(Self.table),
            .insert(relation: 3, new: [t("1"), t("draft"), t("a")]),
            .insert(relation: 3, new: [t("2"), t("open"), t("b")]),
            .update(relation: 3, old: nil, new: [t("1"), t("open"), t("a")]),
            .update(relation: 3, old: nil, new: [t("2"), t("draft"), t("b")]),
            .commit(flags: 0, commitLSN: 100, endLSN: 120, commitTime: 0),
        ].flatMap { try decoder.consume($0) }
        let records = events.compactMap { if case .change(let record) = $0 { return record } else { return nil } }
        #expect(records.map(\.operation) == [.insert, .update, .delete])
        #expect(records.map { $0.key[0].value } == [.int4(2), .int4(1), .int4(2)])
        #expect(records[0].values == [Column("title", .text("b"))], "status is read by the filter but not published")
    }

    @Test("a filter on a column the table lacks is refused when the relation arrives")
    func unknownColumn() throws {
        var decoder = ChangeDecoder(mappings: [TableMapping(resource: "R", schema: "public", table: "cases", key: ["id"], filter: try RowFilter.parse("nope = 1"))])
        #expect(throws: CaptureError.self) { _ = try decoder.consume(.relation(Self.table)) }
    }
}
