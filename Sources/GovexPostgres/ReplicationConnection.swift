import CLibPQ
import GovexWire
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What IDENTIFY_SYSTEM reports.
public struct SystemIdentity: Sendable, Equatable {
    public let systemID: String
    public let timeline: Int
    public let walPosition: UInt64
    public let database: String?
}

/// A logical replication slot just created, with the snapshot it exported.
public struct CreatedSlot: Sendable, Equatable {
    public let name: String
    /// Changes committed after this position are streamed; everything before is in the snapshot.
    public let consistentPoint: UInt64
    /// For `SET TRANSACTION SNAPSHOT` on other connections, valid while this connection stays idle.
    public let snapshotName: String?
}

/// A logical walsender connection: replication commands, then a pgoutput
/// stream read with a timeout. Every call blocks, so every call runs on the
/// connection's own thread (`run`), never on Swift's cooperative pool: a
/// missed keepalive reply gets the connection dropped at `wal_sender_timeout`.
public final class ReplicationConnection: Sendable {
    private let thread: DedicatedThread
    private let connection: LibPQConnection

    private init(thread: DedicatedThread, connection: LibPQConnection) {
        self.thread = thread
        self.connection = connection
    }

    public static func connect(_ conninfo: String) async throws -> ReplicationConnection {
        let thread = DedicatedThread(name: "govex-walsender")
        do {
            let connection = try await thread.run { try LibPQConnection(conninfo: conninfo, replication: true) }
            return ReplicationConnection(thread: thread, connection: connection)
        } catch {
            thread.stop()
            throw error
        }
    }

    public func close() async {
        let connection = self.connection
        _ = try? await thread.run { connection.close() }
        thread.stop()
    }

    public func identifySystem() async throws -> SystemIdentity {
        let connection = self.connection
        return try await thread.run {
            let result = try connection.simpleQuery("IDENTIFY_SYSTEM")
            guard let row = result.rows.first, row.count >= 4, let id = row[0], let timeline = row[1].flatMap({ Int($0) }),
                  let position = row[2].flatMap(LSN.parse) else {
                throw PostgresError(sqlState: nil, message: "unexpected IDENTIFY_SYSTEM reply", detail: nil, hint: nil, context: "identifying the server")
            }
            return SystemIdentity(systemID: id, timeline: timeline, walPosition: position, database: row[3])
        }
    }

    /// Creates a pgoutput slot. With `exportSnapshot`, the reply names a snapshot that
    /// other connections can adopt until this connection runs its next command.
    public func createSlot(_ name: String, temporary: Bool = false, exportSnapshot: Bool = true) async throws -> CreatedSlot {
        try ReplicationConnection.checkSlotName(name)
        let connection = self.connection
        let command = "CREATE_REPLICATION_SLOT \(name)\(temporary ? " TEMPORARY" : "") LOGICAL pgoutput (SNAPSHOT \(exportSnapshot ? "'export'" : "'nothing'"))"
        return try await thread.run {
            let result = try connection.simpleQuery(command)
            guard let row = result.rows.first, row.count >= 3, let point = row[1].flatMap(LSN.parse) else {
                throw PostgresError(sqlState: nil, message: "unexpected CREATE_REPLICATION_SLOT reply", detail: nil, hint: nil, context: "creating slot \(name)")
            }
            return CreatedSlot(name: name, consistentPoint: point, snapshotName: row[2])
        }
    }

    /// Starts streaming `slot` from `position` (0 = where the slot stands).
    public func startReplication(slot: String, from position: UInt64, publications: [String], messages: Bool = true) async throws {
        try ReplicationConnection.checkSlotName(slot)
        guard !publications.isEmpty else {
            throw PostgresError(sqlState: nil, message: "no publication to stream", detail: nil, hint: "name at least one publication", context: "starting replication")
        }
        let names = SQLQuoting.literal(publications.map(SQLQuoting.identifier).joined(separator: ","))
        let command = "START_REPLICATION SLOT \(slot) LOGICAL \(LSN.format(position)) (proto_version '1', publication_names \(names), messages '\(messages)')"
        let connection = self.connection
        try await thread.run { _ = try connection.simpleQuery(command, expecting: [PGRES_COPY_BOTH]) }
    }

    /// The next message from the stream, or nil when none arrives within `timeout`.
    /// Throws when the server ends the stream or the connection fails.
    public func next(timeout: Duration) async throws -> ReplicationMessage? {
        let connection = self.connection
        return try await thread.run { try Self.read(connection, timeout: timeout) }
    }

    /// The messages that have arrived: waits up to `timeout` for the first, then takes
    /// whatever else is already buffered or readable without waiting, up to `limit`
    /// messages or `byteLimit` bytes. One hop to the connection's thread per call, not per
    /// message: at 100,000+ changes a second the hops would otherwise be the cost.
    public func nextMessages(timeout: Duration, limit: Int = 4096, byteLimit: Int = 8 << 20) async throws -> [ReplicationMessage] {
        let connection = self.connection
        return try await thread.run {
            guard let first = try Self.read(connection, timeout: timeout) else { return [] }
            var messages = [first]
            var bytes = 0
            while messages.count < limit, bytes < byteLimit, let next = try Self.read(connection, timeout: .zero) {
                if case .xlogData(_, _, _, let data) = next { bytes += data.count }
                messages.append(next)
            }
            return messages
        }
    }

    /// Reports positions to the server. `flushed` is the promise that matters:
    /// the server may discard WAL up to it, so it must be durable on our side.
    public func sendStatus(written: UInt64, flushed: UInt64, applied: UInt64, replyRequested: Bool = false) async throws {
        let connection = self.connection
        let message = ReplicationMessage.standbyStatusUpdate(written: written, flushed: flushed, applied: applied,
                                                             clock: Self.postgresClock(), replyRequested: replyRequested)
        try await thread.run {
            let handle = try connection.rawHandle("sending a status update")
            let sent = message.withUnsafeBytes { raw in
                PQputCopyData(handle, raw.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(raw.count)) == 1 && PQflush(handle) == 0
            }
            guard sent else {
                throw PostgresError(sqlState: nil, message: LibPQConnection.trimmed(PQerrorMessage(handle)), detail: nil, hint: nil, context: "sending a status update")
            }
        }
    }

    /// Slot names are lower-case letters, digits and underscores (PostgreSQL's own rule), so they need no quoting.
    public static func isValidSlotName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 63 && name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
    }

    static func checkSlotName(_ name: String) throws(PostgresError) {
        guard isValidSlotName(name) else {
            throw PostgresError(sqlState: nil, message: "invalid replication slot name '\(name)'", detail: nil,
                                hint: "use 1 to 63 characters from a-z, 0-9 and _", context: "checking the configuration")
        }
    }

    /// Microseconds since 2000-01-01, the clock the replication protocol speaks.
    public static func postgresClockNow() -> Int64 { postgresClock() }

    static func postgresClock() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return (Int64(now.tv_sec) - 946_684_800) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }

    private static func read(_ connection: LibPQConnection, timeout: Duration) throws -> ReplicationMessage? {
        let handle = try connection.rawHandle("reading the replication stream")
        let deadline = ContinuousClock.now + timeout
        var triedWithoutWaiting = false
        while true {
            var buffer: UnsafeMutablePointer<CChar>? = nil
            let length = PQgetCopyData(handle, &buffer, 1)
            if length > 0, let buffer {
                defer { PQfreemem(buffer) }
                return try ReplicationMessage.parse(UnsafeRawBufferPointer(start: buffer, count: Int(length)))
            }
            if length == -1 {
                let result = PQgetResult(handle)
                defer { PQclear(result) }
                try connection.check(result, expecting: [PGRES_COMMAND_OK], context: "the replication stream ended")
                throw PostgresError(sqlState: nil, message: "the server ended the replication stream", detail: nil, hint: nil, context: "reading the replication stream")
            }
            if length == -2 {
                throw PostgresError(sqlState: nil, message: LibPQConnection.trimmed(PQerrorMessage(handle)), detail: nil, hint: nil, context: "reading the replication stream")
            }
            // Nothing buffered: wait for the socket, then let libpq read what arrived.
            // With no time left, one non-blocking read still picks up what the socket holds.
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero {
                if triedWithoutWaiting { return nil }
                triedWithoutWaiting = true
                guard PQconsumeInput(handle) == 1 else {
                    throw PostgresError(sqlState: nil, message: LibPQConnection.trimmed(PQerrorMessage(handle)), detail: nil, hint: nil, context: "reading the replication stream")
                }
                continue
            }
            try LibPQConnection.waitReadable(handle, for: remaining, context: "waiting for the replication stream")
            guard PQconsumeInput(handle) == 1 else {
                throw PostgresError(sqlState: nil, message: LibPQConnection.trimmed(PQerrorMessage(handle)), detail: nil, hint: nil, context: "reading the replication stream")
            }
        }
    }
}
