import GovexWire

/// An async PostgreSQL connection whose libpq calls all run on its own thread.
public final class PostgresConnection: Sendable {
    private let thread: DedicatedThread
    private let connection: LibPQConnection
    private let typeNames = TypeNameCache()

    private init(thread: DedicatedThread, connection: LibPQConnection) {
        self.thread = thread
        self.connection = connection
    }

    /// Connects with a libpq conninfo string (`host=… dbname=… user=…` or a
    /// `postgresql://` URI) and pins the session settings govex relies on.
    public static func connect(_ conninfo: String, name: String = "govex-pq") async throws -> PostgresConnection {
        let thread = DedicatedThread(name: name)
        do {
            let connection = try await thread.run { try LibPQConnection(conninfo: conninfo) }
            return PostgresConnection(thread: thread, connection: connection)
        } catch {
            thread.stop()
            throw error
        }
    }

    /// Connects, runs `body`, and closes the connection before returning or throwing, so
    /// that no close is left running when the process exits.
    public static func with<T>(_ conninfo: String, name: String = "govex-pq", _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await connect(conninfo, name: name)
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    deinit {
        let connection = self.connection
        let thread = self.thread
        Task { _ = try? await thread.run { connection.close() } }
    }

    public func close() async {
        let connection = self.connection
        _ = try? await thread.run { connection.close() }
        thread.stop()
    }

    /// Runs several statements separated by semicolons (the simple query protocol; no parameters).
    public func script(_ sql: String) async throws {
        let connection = self.connection
        _ = try await thread.run { try connection.simpleQuery(sql) }
    }

    /// Runs `body` with the libpq connection on the connection's own thread.
    func onConnectionThread<T: Sendable>(_ body: @escaping @Sendable (LibPQConnection) throws -> T) async throws -> T {
        let connection = self.connection
        return try await thread.run { try body(connection) }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    public func transaction<T>(_ isolation: String = "READ COMMITTED", _ body: () async throws -> T) async throws -> T {
        try await query("BEGIN ISOLATION LEVEL \(isolation)")
        do {
            let result = try await body()
            try await query("COMMIT")
            return result
        } catch {
            _ = try? await query("ROLLBACK")
            throw error
        }
    }

    /// Runs `body` inside a savepoint of the caller's transaction. If it fails with one of
    /// `sqlStates`, undoes what it did, keeps the transaction usable and returns false, so
    /// that the caller can take a slower way that cannot fail so; other errors are thrown.
    public func recovering(_ sqlStates: Set<String>, _ body: () async throws -> Void) async throws -> Bool {
        try await query("SAVEPOINT govex_attempt")
        do {
            try await body()
        } catch let error as PostgresError where error.sqlState.map(sqlStates.contains) == true {
            try await query("ROLLBACK TO SAVEPOINT govex_attempt")
            try await query("RELEASE SAVEPOINT govex_attempt")
            return false
        }
        try await query("RELEASE SAVEPOINT govex_attempt")
        return true
    }

    /// SQLSTATE of a unique violation.
    public static let uniqueViolation = "23505"

    /// Runs `body` with sequential scans discouraged, back to the session's setting after:
    /// for lookups of thousands of keys the planner would otherwise scan a whole (growing)
    /// table. Only inside a transaction.
    public func withIndexScans<T>(_ body: () async throws -> T) async throws -> T {
        try await query("SET LOCAL enable_seqscan = off")
        let result = try await body()
        try await query("RESET enable_seqscan")
        return result
    }

    /// Runs one statement; parameters are sent separately from the SQL text, as text (nil = NULL).
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) async throws -> QueryResult {
        let connection = self.connection
        return try await thread.run { try connection.execute(sql, parameters) }
    }

    /// Runs one statement with typed parameters (`PostgresParameter`: text, or binary for bulk values).
    @discardableResult
    public func query(_ sql: String, binding parameters: [PostgresParameter]) async throws -> QueryResult {
        let connection = self.connection
        return try await thread.run { try connection.execute(sql, binding: parameters) }
    }

    /// Streams `COPY … TO STDOUT`, text or binary. `consume` runs on the
    /// connection's thread for each chunk and must not block for long.
    @discardableResult
    public func copyOut(_ sql: String, consume: @escaping @Sendable (UnsafeRawBufferPointer) throws -> Void) async throws -> Int {
        let connection = self.connection
        return try await thread.run { try connection.copyOut(sql, consume: consume) }
    }

    /// Streams `COPY … FROM STDIN`, text or binary; `produce` runs on the
    /// connection's thread. Throwing from it aborts the COPY and stores nothing.
    @discardableResult
    public func copyIn(_ sql: String, produce: @escaping @Sendable (inout CopyInWriter) throws -> Void) async throws -> Int {
        let connection = self.connection
        return try await thread.run { try connection.copyIn(sql, produce: produce) }
    }

    /// The value types of a result's columns, looking up type names the value model does not know.
    public func valueTypes(of result: QueryResult) async throws -> [ValueType] {
        var types = [ValueType]()
        for field in result.fields {
            if let known = PostgresTypes.valueType(oid: field.typeOID) {
                types.append(known)
            } else if let cached = typeNames.name(for: field.typeOID) {
                types.append(.other(cached))
            } else {
                let lookup = try await query("SELECT pg_catalog.format_type($1::oid, NULL)", [String(field.typeOID)])
                let name = lookup.rows.first?.first.flatMap { $0 } ?? "oid \(field.typeOID)"
                typeNames.store(name, for: field.typeOID)
                types.append(.other(name))
            }
        }
        return types
    }

    /// A result's rows as values, read from PostgreSQL's text forms.
    public func values(of result: QueryResult) async throws -> [[Value]] {
        let types = try await valueTypes(of: result)
        return try result.rows.map { row in
            try zip(row, types).map { text, type in
                guard let text else { return Value.null }
                return try Value(postgresText: text, type: type)
            }
        }
    }
}

/// Type names looked up once per connection.
private final class TypeNameCache: @unchecked Sendable {
    // Guarded by `lock`.
    private var names: [UInt32: String] = [:]
    private let lock = NSLockShim()

    func name(for oid: UInt32) -> String? { lock.withLock { names[oid] } }
    func store(_ name: String, for oid: UInt32) { lock.withLock { names[oid] = name } }
}

/// PostgreSQL's built-in type OIDs for the types the value model distinguishes.
public enum PostgresTypes {
    public static func valueType(oid: UInt32) -> ValueType? {
        switch oid {
        case 16: return .bool
        case 17: return .bytea
        case 20: return .int8
        case 21: return .int2
        case 23: return .int4
        case 25, 1043, 1042, 19: return .text   // text, varchar, bpchar, name
        case 114: return .json
        case 700: return .float4
        case 701: return .float8
        case 1082: return .date
        case 1083: return .time
        case 1114: return .timestamp
        case 1184: return .timestamptz
        case 1700: return .numeric
        case 2950: return .uuid
        case 3802: return .jsonb
        default: return nil
        }
    }
}
