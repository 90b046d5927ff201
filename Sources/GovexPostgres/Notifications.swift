import CLibPQ
import GovexWire
#if canImport(Glibc)
import Glibc
#endif

/// A NOTIFY received on a channel this connection LISTENs to.
public struct Notification: Sendable, Equatable {
    public let channel: String
    public let payload: String
    /// The backend that sent it.
    public let senderPID: Int32
}

extension PostgresConnection {
    /// Subscribes this session to `channel` (quoted as an identifier: any name is only a name).
    public func listen(_ channel: String) async throws {
        try await query("LISTEN " + SQLQuoting.identifier(channel))
    }

    /// The next notification, waiting up to `timeout` on the connection's own thread; nil
    /// when none came. Any number of hub replicas LISTEN, so whichever holds a waiting
    /// request wakes when another one commits.
    public func nextNotification(timeout: Duration) async throws -> Notification? {
        try await onConnectionThread { connection in
            let handle = try connection.rawHandle("waiting for a notification")
            let deadline = ContinuousClock.now + timeout
            while true {
                guard PQconsumeInput(handle) == 1 else {
                    throw PostgresError(sqlState: nil, message: LibPQConnection.trimmed(PQerrorMessage(handle)), detail: nil, hint: nil,
                                        context: "waiting for a notification")
                }
                if let notice = PQnotifies(handle) {
                    defer { PQfreemem(notice) }
                    return Notification(channel: String(cString: notice.pointee.relname), payload: String(cString: notice.pointee.extra),
                                        senderPID: notice.pointee.be_pid)
                }
                let remaining = deadline - ContinuousClock.now
                if remaining <= .zero { return nil }
                try LibPQConnection.waitReadable(handle, for: remaining, context: "waiting for a notification")
            }
        }
    }
}
