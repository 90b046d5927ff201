import GovexCapture
import GovexWire
import Testing

@Suite("Batch builder")
struct BatchBuilderTests {
    static let start = ContinuousClock.now

    static func change(_ commit: UInt64, _ ordinal: UInt32) -> CaptureEvent {
        .change(ChangeRecord(operation: .delete, resource: "R", position: SourcePosition(commit: commit, ordinal: ordinal), key: [Column("id", .int4(Int32(ordinal)))]))
    }

    static func seals(_ actions: [BatchBuilder.Action]) -> [BatchBuilder.ReadyBatch] {
        actions.compactMap { if case .seal(let batch) = $0 { return batch } else { return nil } }
    }

    static func confirms(_ actions: [BatchBuilder.Action]) -> [UInt64] {
        actions.compactMap { if case .confirm(let position) = $0 { return position } else { return nil } }
    }

    @Test("a batch closes at its record limit; a transaction spanning batches is confirmed only once whole")
    func recordLimitAndSpanningTransaction() throws {
        var builder = BatchBuilder(limits: .init(maxRecords: 3, maxBytes: 1 << 20, maxAge: .seconds(60)))
        var actions: [BatchBuilder.Action] = []
        actions += try builder.add(Self.change(100, 0), now: Self.start)
        actions += try builder.add(.commit(commitLSN: 100, endLSN: 110), now: Self.start)
        actions += try builder.add(Self.change(200, 0), now: Self.start)
        actions += try builder.add(Self.change(200, 1), now: Self.start)   // third record: the batch closes mid-transaction
        let first = try #require(Self.seals(actions).first)
        #expect(first.body.recordCount == 3)
        #expect(first.completeThrough == 100, "only the first transaction is whole in it")
        #expect(first.confirmable == 110)

        actions = try builder.add(Self.change(200, 2), now: Self.start)
        actions += try builder.add(.commit(commitLSN: 200, endLSN: 230), now: Self.start)
        #expect(Self.seals(actions).isEmpty)
        let flushed = builder.flush()
        let second = try #require(flushed)
        #expect(second.body.recordCount == 1)
        #expect(second.completeThrough == 200)
        #expect(second.confirmable == 230)
    }

    @Test("a batch closes at its age on a tick, and never empty")
    func age() throws {
        var builder = BatchBuilder(limits: .init(maxRecords: 100, maxBytes: 1 << 20, maxAge: .milliseconds(500)))
        #expect(Self.seals(builder.tick(now: Self.start + .seconds(10))).isEmpty)
        _ = try builder.add(Self.change(100, 0), now: Self.start)
        _ = try builder.add(.commit(commitLSN: 100, endLSN: 120), now: Self.start)
        #expect(Self.seals(builder.tick(now: Self.start + .milliseconds(400))).isEmpty)
        let sealed = Self.seals(builder.tick(now: Self.start + .milliseconds(500)))
        #expect(sealed.count == 1 && sealed[0].confirmable == 120)
        #expect(builder.pendingRecords == 0)
    }

    @Test("a batch closes at its byte limit")
    func bytes() throws {
        var builder = BatchBuilder(limits: .init(maxRecords: 1_000_000, maxBytes: 200, maxAge: .seconds(60)))
        var sealed = 0
        for ordinal in 0..<100 { sealed += Self.seals(try builder.add(Self.change(100, UInt32(ordinal)), now: Self.start)).count }
        #expect(sealed >= 4)
    }

    @Test("with nothing pending, unmapped transactions and keepalive positions are confirmed at once (quiet tables hold no WAL)")
    func quietConfirms() throws {
        var builder = BatchBuilder()
        #expect(Self.confirms(try builder.add(.commit(commitLSN: 50, endLSN: 60), now: Self.start)) == [60])
        #expect(Self.confirms(builder.tick(now: Self.start, serverPosition: 9_000)) == [9_000])
        _ = try builder.add(Self.change(10_000, 0), now: Self.start)
        #expect(Self.confirms(builder.tick(now: Self.start, serverPosition: 9_500)).isEmpty, "never while holding changes")
    }

    @Test("a heartbeat message is a position to confirm only when nothing is pending")
    func heartbeat() throws {
        var builder = BatchBuilder()
        let heartbeat = { (lsn: UInt64) in CaptureEvent.message(prefix: "govex-heartbeat", content: [], lsn: lsn) }
        #expect(Self.confirms(try builder.add(heartbeat(700), now: Self.start)) == [700])
        _ = try builder.add(Self.change(10_000, 0), now: Self.start)
        #expect(Self.confirms(try builder.add(heartbeat(10_500), now: Self.start)).isEmpty, "never while holding changes")
    }
}
