import GovexPostgres

public enum ReplicationTestStream {
    /// Reads pgoutput messages until `stop` says so (or 30 s pass), answering keepalives that ask for a reply.
    public static func collect(_ stream: ReplicationConnection, until stop: ([PgOutputMessage]) -> Bool) async throws -> [PgOutputMessage] {
        var messages: [PgOutputMessage] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while !stop(messages), ContinuousClock.now < deadline {
            switch try await stream.next(timeout: .milliseconds(500)) {
            case .xlogData(_, _, _, let data)?:
                messages.append(try PgOutputParser.parse(data))
            case .keepalive(let end, _, true)?:
                try await stream.sendStatus(written: end, flushed: 0, applied: 0)
            default:
                break
            }
        }
        return messages
    }

    public static func commitCount(_ messages: [PgOutputMessage]) -> Int {
        messages.filter { if case .commit = $0 { return true } else { return false } }.count
    }
}

extension PostgresConnection {
    /// Drops a replication slot, waiting (up to 10 s) for a walsender that is still shutting down to release it.
    public func dropSlot(_ name: String) async throws {
        for attempt in 0..<100 {
            do {
                try await query("SELECT pg_drop_replication_slot($1)", [name])
                return
            } catch let error as PostgresError where error.sqlState == "55006" && attempt < 99 {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
