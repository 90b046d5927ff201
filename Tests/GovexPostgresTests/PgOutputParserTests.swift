import GovexPostgres
import Testing

/// The pgoutput parser on hand-built messages, edge cases and mutations: no database.
@Suite("pgoutput parser")
struct PgOutputParserTests {
    /// Builds protocol bytes the way the server writes them (big-endian, NUL-terminated names).
    struct Bytes {
        var bytes: [UInt8] = []
        mutating func u8(_ v: UInt8) { bytes.append(v) }
        mutating func char(_ c: Character) { bytes.append(c.asciiValue!) }
        mutating func i16(_ v: Int16) { append(UInt16(bitPattern: v)) }
        mutating func u32(_ v: UInt32) { append(v) }
        mutating func i32(_ v: Int32) { append(UInt32(bitPattern: v)) }
        mutating func u64(_ v: UInt64) { append(v) }
        mutating func name(_ s: String) { bytes += Array(s.utf8) + [0] }
        mutating func append<I: FixedWidthInteger>(_ v: I) { withUnsafeBytes(of: v.bigEndian) { bytes += $0 } }
        mutating func text(_ s: String) {
            char("t")
            i32(Int32(s.utf8.count))
            bytes += Array(s.utf8)
        }
    }

    static func relation() -> [UInt8] {
        var b = Bytes()
        b.char("R"); b.u32(16_384); b.name("public"); b.name("居民"); b.char("d"); b.i16(3)
        b.u8(1); b.name("id_number"); b.u32(25); b.i32(-1)
        b.u8(0); b.name("name"); b.u32(1043); b.i32(68)
        b.u8(0); b.name("photo"); b.u32(17); b.i32(-1)
        return b.bytes
    }

    static func update() -> [UInt8] {
        var b = Bytes()
        b.char("U"); b.u32(16_384)
        b.char("K"); b.i16(3); b.text("11010519491231002X"); b.char("n"); b.char("n")
        b.char("N"); b.i16(3); b.text("110105194912310038"); b.text("张三"); b.char("u")
        return b.bytes
    }

    static var validMessages: [[UInt8]] {
        var begin = Bytes(); begin.char("B"); begin.u64(0x1_6B37_4800); begin.u64(817_000_000_000_000); begin.u32(731)
        var commit = Bytes(); commit.char("C"); commit.u8(0); commit.u64(0x1_6B37_4800); commit.u64(0x1_6B37_4830); commit.u64(817_000_000_000_000)
        var insert = Bytes(); insert.char("I"); insert.u32(16_384); insert.char("N"); insert.i16(3); insert.text("1"); insert.char("n"); insert.char("b"); insert.i32(2); insert.u8(0xDE); insert.u8(0xAD)
        var delete = Bytes(); delete.char("D"); delete.u32(16_384); delete.char("O"); delete.i16(1); delete.text("1")
        var truncate = Bytes(); truncate.char("T"); truncate.u32(2); truncate.u8(3); truncate.u32(16_384); truncate.u32(16_390)
        var message = Bytes(); message.char("M"); message.u8(1); message.u64(99); message.name("govex"); message.i32(3); message.bytes += [1, 2, 3]
        var origin = Bytes(); origin.char("O"); origin.u64(5); origin.name("gongan")
        var type = Bytes(); type.char("Y"); type.u32(90_000); type.name("public"); type.name("marital")
        return [begin.bytes, relation(), insert.bytes, update(), delete.bytes, truncate.bytes, message.bytes, origin.bytes, type.bytes, commit.bytes]
    }

    @Test("each message type parses to what was sent")
    func parsesEachMessage() throws {
        let parsed = try Self.validMessages.map { try PgOutputParser.parse($0) }
        #expect(parsed[0] == .begin(finalLSN: 0x1_6B37_4800, commitTime: 817_000_000_000_000, xid: 731))
        guard case .relation(let relation) = parsed[1] else { Issue.record("not a relation"); return }
        #expect(relation.name == "居民" && relation.namespace == "public" && relation.replicaIdentity == UInt8(ascii: "d"))
        #expect(relation.columns.map(\.name) == ["id_number", "name", "photo"])
        #expect(relation.columns.map(\.isKey) == [true, false, false])
        #expect(relation.columns[1].typeOID == 1043 && relation.columns[1].typeModifier == 68)
        #expect(parsed[2] == .insert(relation: 16_384, new: [.text(Array("1".utf8)), .null, .binary([0xDE, 0xAD])]))
        #expect(parsed[3] == .update(relation: 16_384,
                                     old: .key([.text(Array("11010519491231002X".utf8)), .null, .null]),
                                     new: [.text(Array("110105194912310038".utf8)), .text(Array("张三".utf8)), .unchangedToast]))
        #expect(parsed[4] == .delete(relation: 16_384, old: .full([.text(Array("1".utf8))])))
        #expect(parsed[5] == .truncate(relations: [16_384, 16_390], cascade: true, restartIdentity: true))
        #expect(parsed[6] == .message(transactional: true, lsn: 99, prefix: "govex", content: [1, 2, 3]))
        #expect(parsed[7] == .origin(commitLSN: 5, name: "gongan"))
        #expect(parsed[8] == .type(oid: 90_000, namespace: "public", name: "marital"))
        #expect(parsed[9] == .commit(flags: 0, commitLSN: 0x1_6B37_4800, endLSN: 0x1_6B37_4830, commitTime: 817_000_000_000_000))
    }

    @Test("every truncation of every message throws")
    func truncationsThrow() {
        for message in Self.validMessages {
            for length in 0..<message.count {
                #expect(throws: PgOutputError.self) { _ = try PgOutputParser.parse(Array(message.prefix(length))) }
            }
            #expect(throws: PgOutputError.self) { _ = try PgOutputParser.parse(message + [0]) }
        }
    }

    @Test("malformed fields are named", arguments: [
        ([UInt8(ascii: "X")], "unknown pgoutput message type"),
        ([UInt8(ascii: "I"), 0, 0, 0, 1, UInt8(ascii: "Q")], "expected new tuple marker N"),
        ([UInt8(ascii: "I"), 0, 0, 0, 1, UInt8(ascii: "N"), 0x7F, 0xFF], "tuple column count"),
        ([UInt8(ascii: "I"), 0, 0, 0, 1, UInt8(ascii: "N"), 0, 1, UInt8(ascii: "t"), 0xFF, 0xFF, 0xFF, 0xFF], "negative value length"),
        ([UInt8(ascii: "I"), 0, 0, 0, 1, UInt8(ascii: "N"), 0, 1, UInt8(ascii: "t"), 0x7F, 0xFF, 0xFF, 0xFF], "ends early"),
        ([UInt8(ascii: "I"), 0, 0, 0, 1, UInt8(ascii: "N"), 0, 1, UInt8(ascii: "z")], "unknown tuple value kind"),
        ([UInt8(ascii: "T"), 0x7F, 0xFF, 0xFF, 0xFF, 0], "relations do not fit"),
    ])
    func malformed(bytes: [UInt8], expected: String) {
        #expect {
            _ = try PgOutputParser.parse(bytes)
        } throws: { error in
            (error as? PgOutputError)?.description.contains(expected) == true
        }
    }

    @Test("100,000 mutated messages throw or parse, and never crash")
    func mutations() {
        var state: UInt64 = 0x960D
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 17
        }
        let messages = Self.validMessages
        var parsed = 0
        for _ in 0..<100_000 {
            var bytes = messages[Int(next() % UInt64(messages.count))]
            switch next() % 3 {
            case 0: bytes[Int(next() % UInt64(bytes.count))] ^= UInt8(1 << (next() % 8))
            case 1: bytes[Int(next() % UInt64(bytes.count))] = [0x00, 0x7F, 0x80, 0xFF][Int(next() % 4)]
            default: bytes.insert(UInt8(truncatingIfNeeded: next()), at: Int(next() % UInt64(bytes.count)))
            }
            if (try? PgOutputParser.parse(bytes)) != nil { parsed += 1 }
        }
        // Some mutations only change a value and still parse; most break the structure.
        #expect(parsed < 100_000)
    }

    @Test("replication framing: XLogData, keepalive and the status update")
    func replicationFraming() throws {
        var xlog = Bytes(); xlog.char("w"); xlog.u64(10); xlog.u64(20); xlog.u64(30); xlog.bytes += Self.update()
        guard case let .xlogData(start, end, time, data) = try ReplicationMessage.parse(xlog.bytes) else { Issue.record("not XLogData"); return }
        #expect(start == 10 && end == 20 && time == 30)
        #expect(try PgOutputParser.parse(data) == PgOutputParser.parse(Self.update()))
        var keepalive = Bytes(); keepalive.char("k"); keepalive.u64(0x1_0000_0000); keepalive.u64(7); keepalive.u8(1)
        #expect(try ReplicationMessage.parse(keepalive.bytes) == .keepalive(walEnd: 0x1_0000_0000, sendTime: 7, replyRequested: true))
        #expect(throws: PgOutputError.self) { _ = try ReplicationMessage.parse(keepalive.bytes + [0]) }
        let update = ReplicationMessage.standbyStatusUpdate(written: 3, flushed: 2, applied: 1, clock: 9, replyRequested: false)
        var expected = Bytes(); expected.char("r"); expected.u64(3); expected.u64(2); expected.u64(1); expected.u64(9); expected.u8(0)
        #expect(update == expected.bytes)
    }
}
