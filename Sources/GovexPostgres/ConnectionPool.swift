/// A few PostgreSQL connections shared by concurrent requests: idle ones are reused,
/// at most `size` are open, and a caller beyond that waits its turn.
public actor ConnectionPool {
    public nonisolated let conninfo: String
    private let size: Int
    private var idle: [PostgresConnection] = []
    private var open = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(conninfo: String, size: Int = 8) {
        self.conninfo = conninfo
        self.size = max(1, size)
    }

    /// Runs `body` with a connection. A connection whose work threw is closed, not reused:
    /// it may be in a failed transaction or cut off.
    public func withConnection<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await acquire()
        do {
            let result = try await body(connection)
            release(connection)
            return result
        } catch {
            await connection.close()
            discard()
            throw error
        }
    }

    public func close() async {
        let connections = idle
        idle = []
        open -= connections.count
        for connection in connections { await connection.close() }
    }

    private func acquire() async throws -> PostgresConnection {
        while true {
            if let connection = idle.popLast() { return connection }
            if open < size {
                open += 1
                do {
                    return try await PostgresConnection.connect(conninfo, name: "govex-pool")
                } catch {
                    discard()
                    throw error
                }
            }
            await withCheckedContinuation { waiting.append($0) }
        }
    }

    private func release(_ connection: PostgresConnection) {
        idle.append(connection)
        if !waiting.isEmpty { waiting.removeFirst().resume() }
    }

    private func discard() {
        open -= 1
        if !waiting.isEmpty { waiting.removeFirst().resume() }
    }
}
