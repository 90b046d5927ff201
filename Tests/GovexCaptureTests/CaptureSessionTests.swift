import GovexCapture
import GovexWire
import Testing

/// The replication session's decisions without a server: time is an instant passed in.
@Suite("Capture session")
struct CaptureSessionTests {
    static let start = ContinuousClock.now
    static let limits = BatchBuilder.Limits(maxRecords: 2, maxBytes: 1 << 20, maxAge: .seconds(1))

    static func session(lastSpooled: SourcePosition? = nil, heartbeat: Duration? = nil) -> CaptureSession {
        CaptureSession(limits: limits, lastSpooled: lastSpooled, walCheckInterval: .seconds(10), heartbeatInterval: heartbeat, now: start)
    }

    static func describe(_ actions: [CaptureSession.Action]) -> [String] {
        actions.map { action in
            switch action {
            case .seal(let ready): return "seal \(ready.body.recordCount)"
            case .sendStatus(let position): return "status \(position)"
            case .alarmSpoolFull: return "alarm"
            case .waitForSpool: return "wait"
            case .resumed: return "resumed"
            case .checkRetainedWAL: return "wal"
            case .emitHeartbeat: return "heartbeat"
            }
        }
    }

    @Test("a position is confirmed only after the batch holding it is durable: seal first, status when sealed")
    func confirmAfterDurable() throws {
        var session = Self.session()
        var actions = try session.received(BatchBuilderTests.change(100, 0), now: Self.start)
        actions += try session.received(BatchBuilderTests.change(100, 1), now: Self.start)
        actions += try session.received(.commit(commitLSN: 100, endLSN: 120), now: Self.start)
        #expect(Self.describe(actions) == ["seal 2"], "the record limit seals; the commit's position waits for the seal to be durable")
        guard case .seal(let ready) = actions.first else { Issue.record("no seal"); return }
        #expect(session.confirmed == 0)
        #expect(Self.describe(session.sealed(ready)) == ["status 120"])
        #expect(session.confirmed == 120)
        #expect(Self.describe(session.sealed(ready)).isEmpty, "the same position is not confirmed twice")
        #expect(Self.describe(session.keepalive(serverPosition: 150, replyRequested: false, now: Self.start)) == ["status 150"],
                "with no seal in flight, an idle position is confirmed at once")
    }

    @Test("keepalives: a reply when asked, with the confirmed position; an idle position past everything is confirmed")
    func keepalives() throws {
        var session = Self.session()
        #expect(Self.describe(session.keepalive(serverPosition: 500, replyRequested: true, now: Self.start)) == ["status 500", "status 500"])
        #expect(Self.describe(session.keepalive(serverPosition: 500, replyRequested: false, now: Self.start)).isEmpty)
        #expect(Self.describe(session.keepalive(serverPosition: 400, replyRequested: true, now: Self.start)) == ["status 500"],
                "never confirms backwards")
    }

    @Test("what a restart re-sends (at or before the last spooled position) is dropped")
    func resentChangesDropped() throws {
        var session = Self.session(lastSpooled: SourcePosition(commit: 100, ordinal: 1))
        var actions = try session.received(BatchBuilderTests.change(100, 0), now: Self.start)
        actions += try session.received(BatchBuilderTests.change(100, 1), now: Self.start)
        #expect(session.builder.pendingRecords == 0)
        actions += try session.received(BatchBuilderTests.change(200, 0), now: Self.start)
        #expect(session.builder.pendingRecords == 1 && actions.isEmpty)
    }

    @Test("a table copied later: its changes that committed before its copy are dropped, other tables' are kept")
    func changesBeforeACopyDropped() throws {
        var session = CaptureSession(limits: .init(maxRecords: 100, maxBytes: 1 << 20, maxAge: .seconds(1)), lastSpooled: nil,
                                     copiedAt: ["LATE": 300, "R": 0], walCheckInterval: .seconds(10), heartbeatInterval: nil, now: Self.start)
        var ordinal: UInt32 = 0
        func change(_ resource: String, _ commit: UInt64) -> CaptureEvent {
            ordinal += 1
            return .change(ChangeRecord(operation: .delete, resource: resource, position: SourcePosition(commit: commit, ordinal: ordinal), key: [Column("id", .int4(1))]))
        }
        _ = try session.received(change("LATE", 200), now: Self.start)
        #expect(session.builder.pendingRecords == 0, "in the copy already")
        _ = try session.received(change("R", 200), now: Self.start)
        _ = try session.received(change("OTHER", 200), now: Self.start)
        #expect(session.builder.pendingRecords == 2)
        _ = try session.received(change("LATE", 300), now: Self.start)
        _ = try session.received(change("LATE", 301), now: Self.start)
        #expect(session.builder.pendingRecords == 4, "a commit at the copy's position is not in it, as PostgreSQL's table synchronisation has it")
    }

    @Test("a full spool pauses reading: alarm once, a status to keep the connection, a wait; resumes when there is room")
    func spoolFull() {
        var session = Self.session()
        #expect(Self.describe(session.beforeRead(spoolFull: true)) == ["alarm", "status 0", "wait"])
        #expect(session.paused)
        #expect(Self.describe(session.beforeRead(spoolFull: true)) == ["status 0", "wait"], "the alarm is raised once per pause")
        #expect(Self.describe(session.beforeRead(spoolFull: false)) == ["resumed"])
        #expect(Self.describe(session.beforeRead(spoolFull: false)).isEmpty)
        #expect(Self.describe(session.beforeRead(spoolFull: true)) == ["alarm", "status 0", "wait"], "a new pause alarms again")
    }

    @Test("the slot's WAL is measured at once and then every interval; heartbeats every interval; an aged batch seals when nothing comes")
    func periodicWork() throws {
        var session = Self.session(heartbeat: .seconds(3))
        #expect(Self.describe(session.afterRead(receivedNothing: true, now: Self.start)) == ["wal"])
        #expect(Self.describe(session.afterRead(receivedNothing: true, now: Self.start + .seconds(2))).isEmpty)
        #expect(Self.describe(session.afterRead(receivedNothing: true, now: Self.start + .seconds(3))) == ["heartbeat"])
        _ = try session.received(BatchBuilderTests.change(300, 0), now: Self.start + .seconds(4))
        #expect(Self.describe(session.afterRead(receivedNothing: true, now: Self.start + .seconds(6))) == ["heartbeat", "seal 1"])
        #expect(Self.describe(session.afterRead(receivedNothing: false, now: Self.start + .seconds(10))) == ["wal", "heartbeat"])
    }

    @Test("a graceful stop seals what is open; an abandoning one does not")
    func stops() throws {
        var session = Self.session()
        _ = try session.received(BatchBuilderTests.change(100, 0), now: Self.start)
        var abandoning = session
        #expect(Self.describe(session.stop(graceful: true)) == ["seal 1"])
        #expect(Self.describe(abandoning.stop(graceful: false)).isEmpty)
    }
}
