import CLibPQ
import GovexWire
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A PostgreSQL error with what the server (or libpq) said and what govex was doing.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// The five-character SQLSTATE, when the server sent one.
    public let sqlState: String?
    public let message: String
    public let detail: String?
    public let hint: String?
    public let context: String
    /// The schema, table, column and constraint the server named (diagnostic fields s, t, c, n).
    public var schema: String? = nil
    public var table: String? = nil
    public var column: String? = nil
    public var constraint: String? = nil

    public init(sqlState: String?, message: String, detail: String?, hint: String?, context: String) {
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.context = context
    }

    /// What a log may carry: SQLSTATE and the objects named, never the message or detail, which
    /// can quote row values (`Failing row contains (…)`, `invalid input syntax for type …: "…"`).
    public var loggable: String {
        var parts = ["SQLSTATE \(sqlState ?? "none")"]
        if let table { parts.append("table " + [schema, table].compactMap { $0 }.joined(separator: ".")) }
        if let column { parts.append("column \(column)") }
        if let constraint { parts.append("constraint \(constraint)") }
        return context + ": " + parts.joined(separator: ", ")
    }

    public var description: String {
        var text = "\(context): \(message)"
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail { text += "; detail: \(detail)" }
        if let hint { text += "; hint: \(hint)" }
        return text
    }
}

/// Settings every govex session pins so that text forms of values are canonical
/// wherever they are compared or hashed (see DESIGN: "Sessions pin their settings").
public let pinnedSessionSettings: [(String, String)] = [
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("client_encoding", "UTF8"),
    ("bytea_output", "hex"),
    // libpq prints notices on stderr; "already exists, skipping" is not worth a log line.
    ("client_min_messages", "warning"),
]

/// A result's columns and rows in text form.
public struct QueryResult: Sendable {
    public struct Field: Sendable, Hashable {
        public let name: String
        public let typeOID: UInt32
    }

    public let fields: [Field]
    public let rows: [[String?]]
    /// Rows affected, for INSERT/UPDATE/DELETE/COPY; nil otherwise.
    public let affectedRows: Int?
}

/// A libpq connection. Not thread-safe: it is confined to the `DedicatedThread`
/// of the `PostgresConnection` that owns it, and only that thread calls it.
final class LibPQConnection: @unchecked Sendable {
    private var handle: OpaquePointer?

    /// With `replication`, the connection is a logical walsender session
    /// (`replication=database`): it takes replication commands and simple-protocol SQL only.
    init(conninfo: String, replication: Bool = false) throws(PostgresError) {
        // Keywords after dbname override what the expanded conninfo says.
        let keywords = ["dbname", "fallback_application_name"] + (replication ? ["replication"] : [])
        let values = [conninfo, "govex"] + (replication ? ["database"] : [])
        let connection = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let connection else {
            throw PostgresError(sqlState: nil, message: "libpq could not allocate a connection", detail: nil, hint: nil, context: "connecting")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(sqlState: nil, message: message, detail: nil, hint: "check the conninfo (host, port, dbname, user) and pg_hba.conf", context: "connecting to PostgreSQL")
        }
        handle = connection
        if replication {
            // The walsender formats pgoutput's text values with its own settings, so they are pinned there too.
            // Simple protocol only; the values are this file's constants, not input.
            _ = try simpleQuery(pinnedSessionSettings.map { "SET \($0.0) TO '\($0.1)'" }.joined(separator: "; "))
        } else {
            for (name, value) in pinnedSessionSettings {
                _ = try execute("SELECT pg_catalog.set_config($1, $2, false)", [name, value])
            }
        }
    }

    /// The libpq handle, for the replication stream that shares this connection's thread.
    func rawHandle(_ context: String) throws(PostgresError) -> OpaquePointer {
        try connection(context)
    }

    /// Runs SQL or a replication command with the simple query protocol; returns the last result.
    func simpleQuery(_ sql: String, expecting: [ExecStatusType] = [PGRES_COMMAND_OK, PGRES_TUPLES_OK]) throws(PostgresError) -> QueryResult {
        let connection = try connection("running a command")
        let result = PQexec(connection, sql)
        defer { PQclear(result) }
        try check(result, expecting: expecting, context: "running \(Self.summary(sql))")
        return Self.read(result!)
    }

    deinit { close() }

    func close() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    private func connection(_ context: String) throws(PostgresError) -> OpaquePointer {
        guard let handle else { throw PostgresError(sqlState: nil, message: "the connection is closed", detail: nil, hint: nil, context: context) }
        return handle
    }

    /// Runs one statement with text parameters (nil = NULL); results come back in text form.
    func execute(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> QueryResult {
        try execute(sql, binding: parameters.map(PostgresParameter.text))
    }

    /// Runs one statement with typed parameters, text or binary; results come back in text form.
    func execute(_ sql: String, binding parameters: [PostgresParameter]) throws(PostgresError) -> QueryResult {
        let connection = try connection("running a query")
        // Text parameters need a terminating NUL; binary ones are read by their length (an
        // empty one still needs an address, so it gets a byte it will not read).
        let storage: [[UInt8]?] = parameters.map { parameter in parameter.bytes.map { parameter.isBinary && !$0.isEmpty ? $0 : $0 + [0] } }
        let types = parameters.map { Oid($0.typeOID) }
        let lengths = parameters.map { Int32($0.bytes?.count ?? 0) }
        let formats = parameters.map { Int32($0.isBinary ? 1 : 0) }
        let result: OpaquePointer? = withBufferPointers(storage) { values in
            PQexecParams(connection, sql, Int32(parameters.count), types, values, lengths, formats, 0)
        }
        defer { PQclear(result) }
        try check(result, expecting: [PGRES_COMMAND_OK, PGRES_TUPLES_OK], context: "running \(Self.summary(sql))")
        return Self.read(result!)
    }

    /// Streams `COPY … TO STDOUT` (text or binary); each chunk is handed to `consume` as libpq delivers it.
    func copyOut(_ sql: String, consume: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        let connection = try connection("COPY out")
        let start = PQexec(connection, sql)
        defer { PQclear(start) }
        try check(start, expecting: [PGRES_COPY_OUT], context: "starting \(Self.summary(sql))")
        var consumerError: (any Error)? = nil
        while true {
            var buffer: UnsafeMutablePointer<CChar>? = nil
            let length = PQgetCopyData(connection, &buffer, 0)
            if length > 0, let buffer {
                if consumerError == nil {
                    do { try consume(UnsafeRawBufferPointer(start: buffer, count: Int(length))) } catch { consumerError = error }
                }
                PQfreemem(buffer)
                continue
            }
            if length == -2 {
                throw PostgresError(sqlState: nil, message: Self.trimmed(PQerrorMessage(connection)), detail: nil, hint: nil, context: "reading \(Self.summary(sql))")
            }
            break
        }
        let end = PQgetResult(connection)
        defer { PQclear(end) }
        try check(end, expecting: [PGRES_COMMAND_OK], context: "finishing \(Self.summary(sql))")
        while let extra = PQgetResult(connection) { PQclear(extra) }
        if let consumerError { throw consumerError }
        return Int(String(cString: PQcmdTuples(end))) ?? 0
    }

    /// Streams `COPY … FROM STDIN`: `produce` writes the data through the writer;
    /// if it throws, the COPY is aborted and nothing is stored.
    func copyIn(_ sql: String, produce: (inout CopyInWriter) throws -> Void) throws -> Int {
        let connection = try connection("COPY in")
        let start = PQexec(connection, sql)
        defer { PQclear(start) }
        try check(start, expecting: [PGRES_COPY_IN], context: "starting \(Self.summary(sql))")
        var writer = CopyInWriter(connection: connection)
        var producerError: (any Error)? = nil
        do { try produce(&writer) } catch { producerError = error }
        if producerError == nil, let failure = writer.failure { producerError = failure }
        let endStatus: Int32
        if let producerError {
            endStatus = PQputCopyEnd(connection, "govex aborted the COPY: \(producerError)")
        } else {
            endStatus = PQputCopyEnd(connection, nil)
        }
        let end = PQgetResult(connection)
        defer { PQclear(end) }
        while let extra = PQgetResult(connection) { PQclear(extra) }
        if let producerError { throw producerError }
        guard endStatus == 1 else {
            throw PostgresError(sqlState: nil, message: Self.trimmed(PQerrorMessage(connection)), detail: nil, hint: nil, context: "ending \(Self.summary(sql))")
        }
        try check(end, expecting: [PGRES_COMMAND_OK], context: "finishing \(Self.summary(sql))")
        return Int(String(cString: PQcmdTuples(end))) ?? 0
    }

    func check(_ result: OpaquePointer?, expecting: [ExecStatusType], context: String) throws(PostgresError) {
        guard let result else {
            throw PostgresError(sqlState: nil, message: Self.trimmed(PQerrorMessage(handle)), detail: nil, hint: nil, context: context)
        }
        let status = PQresultStatus(result)
        guard expecting.contains(status) else {
            func field(_ code: Character) -> String? {
                guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
                return String(cString: value)
            }
            let message = field("M") ?? Self.trimmed(PQresultErrorMessage(result))
            var error = PostgresError(sqlState: field("C"), message: message.isEmpty ? String(cString: PQresStatus(status)) : message,
                                      detail: field("D"), hint: field("H"), context: context)
            (error.schema, error.table, error.column, error.constraint) = (field("s"), field("t"), field("c"), field("n"))
            throw error
        }
    }

    private static func read(_ result: OpaquePointer) -> QueryResult {
        let fieldCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        let fields = (0..<fieldCount).map { QueryResult.Field(name: String(cString: PQfname(result, Int32($0))), typeOID: PQftype(result, Int32($0))) }
        var rows = [[String?]]()
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            rows.append((0..<fieldCount).map { column in
                if PQgetisnull(result, Int32(row), Int32(column)) == 1 { return nil }
                let length = Int(PQgetlength(result, Int32(row), Int32(column)))
                let pointer = UnsafeRawPointer(PQgetvalue(result, Int32(row), Int32(column))!)
                return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
            })
        }
        let affected = String(cString: PQcmdTuples(result))
        return QueryResult(fields: fields, rows: rows, affectedRows: affected.isEmpty ? nil : Int(affected))
    }

    /// Waits until the connection's socket has something to read, at most `duration` (capped
    /// at a minute); an interrupted wait just returns, so callers re-check and loop.
    static func waitReadable(_ handle: OpaquePointer, for duration: Duration, context: String) throws(PostgresError) {
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(min(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000 + 1, 60_000))
        if poll(&descriptor, 1, milliseconds) < 0 && errno != EINTR {
            throw PostgresError(sqlState: nil, message: String(cString: strerror(errno)), detail: nil, hint: nil, context: context)
        }
    }

    static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "unknown libpq error" }
        var text = String(cString: message)
        while text.last == "\n" || text.last == " " { text.removeLast() }
        return text
    }

    /// The statement's first words, for error context (never its parameters).
    static func summary(_ sql: String) -> String {
        let words = sql.split(whereSeparator: { $0 == " " || $0 == "\n" }).prefix(6).joined(separator: " ")
        return "'\(words)\(words.count < sql.count ? " …" : "")'"
    }
}

/// Sends COPY data; libpq buffers it and blocks only when the server is behind.
public struct CopyInWriter {
    let connection: OpaquePointer
    var failure: PostgresError?

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        if let failure { throw failure }
        var offset = 0
        while offset < bytes.count {
            let size = min(bytes.count - offset, 1 << 20)
            let pointer = bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self)
            guard PQputCopyData(connection, pointer, Int32(size)) == 1 else {
                let error = PostgresError(sqlState: nil, message: LibPQConnection.trimmed(PQerrorMessage(connection)), detail: nil, hint: nil, context: "sending COPY data")
                failure = error
                throw error
            }
            offset += size
        }
    }

    public mutating func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }
}

private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let duplicates = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    return body(duplicates.map { UnsafePointer($0) } + [nil])
}

/// Pointers to each buffer's bytes (nil for nil; no buffer may be empty), valid while `body` runs.
private func withBufferPointers<R>(_ buffers: [[UInt8]?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    func nest(_ index: Int, _ pointers: inout [UnsafePointer<CChar>?]) -> R {
        guard index < buffers.count else { return body(pointers) }
        guard let buffer = buffers[index] else {
            pointers.append(nil)
            return nest(index + 1, &pointers)
        }
        return buffer.withUnsafeBufferPointer { raw in
            pointers.append(UnsafeRawPointer(raw.baseAddress!).assumingMemoryBound(to: CChar.self))
            return nest(index + 1, &pointers)
        }
    }
    var pointers: [UnsafePointer<CChar>?] = []
    pointers.reserveCapacity(buffers.count)
    return nest(0, &pointers)
}
