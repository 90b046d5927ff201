import GovexPolicy
import GovexPostgres
import GovexWire
import Synchronization

public struct SnapshotProgress: Sendable, Equatable {
    public let resource: String
    public let rows: Int
    /// PostgreSQL's estimate of the table's rows (pg_class.reltuples); 0 when unknown.
    public let estimatedRows: Int
    public let rowsPerSecond: Double
    /// Which table this is (from 1) of how many the snapshot copies.
    public let table: Int
    public let tables: Int

    public var percent: Double? { estimatedRows > 0 ? min(100, Double(rows) * 100 / Double(estimatedRows)) : nil }
}

/// Copies mapped tables as they stood at an exported snapshot, as insert records positioned
/// at (snapshot position, 0, 1, 2 …): every change a slot streams afterwards for those
/// tables commits later, so copy and stream together hold each row exactly once.
public enum InitialSnapshot {
    /// `beginTable` hears of each table before its first row; `emit` receives each full body, and
    /// at each table's end the rest of it (perhaps empty) with that table, on the copying thread.
    /// A resource in `truncateFirst` starts with a truncate record.
    public static func copy(conninfo: String, snapshotName: String, consistentPoint: UInt64, mappings: [TableMapping],
                            truncateFirst: Set<String> = [], limits: BatchBuilder.Limits,
                            beginTable: @escaping @Sendable (TableMapping) throws -> Void = { _ in },
                            emit: @escaping @Sendable (BatchBodyEncoder, _ finished: TableMapping?) throws -> Void,
                            progress: @escaping @Sendable (SnapshotProgress) -> Void) async throws {
        try await PostgresConnection.with(conninfo, name: "govex-snapshot") { connection in
            try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try await connection.query("SET TRANSACTION SNAPSHOT \(SQLQuoting.literal(snapshotName))")
            let sink = Sink(limits: limits, consistentPoint: consistentPoint, emit: emit, progress: progress)
            for (index, mapping) in mappings.enumerated() {
                let plan = try await plan(mapping, index: index, count: mappings.count, on: connection)
                try beginTable(mapping)
                try sink.begin(plan, truncate: truncateFirst.contains(mapping.resource))
                let list = plan.selected.map(SQLQuoting.identifier).joined(separator: ", ")
                let condition = mapping.filter.map { " WHERE \($0.sql)" } ?? ""
                try await connection.copyOut("COPY (SELECT \(list) FROM \(plan.table)\(condition)) TO STDOUT") { row in try sink.consume(row) }
                try sink.finishTable()
            }
            try await connection.query("COMMIT")
        }
    }

    /// What to select from the table and how to name and type it, read under the snapshot.
    private static func plan(_ mapping: TableMapping, index: Int, count: Int, on connection: PostgresConnection) async throws -> TablePlan {
        let table = SQLQuoting.qualified(schema: mapping.schema, name: mapping.table)
        let columns = try await connection.query("""
            SELECT a.attname, a.atttypid::int8, pg_catalog.format_type(a.atttypid, a.atttypmod)
            FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, [table])
        guard !columns.rows.isEmpty else {
            throw CaptureError.mappingMismatch(resource: mapping.resource, reason: "table \(mapping.schema).\(mapping.table) does not exist")
        }
        let names = columns.rows.map { $0[0] ?? "" }
        let types = columns.rows.map { row -> ValueType in
            PostgresTypes.valueType(oid: UInt32(row[1].flatMap { Int64($0) } ?? 0)) ?? .other(row[2] ?? "unknown")
        }
        for key in mapping.key where !names.contains(key) {
            throw CaptureError.mappingMismatch(resource: mapping.resource, reason: "key column \(key) is not in \(mapping.schema).\(mapping.table)")
        }
        let keyIndexes = mapping.key.map { names.firstIndex(of: $0)! }
        let valueIndexes = names.indices.filter { !mapping.key.contains(names[$0]) && mapping.includes(names[$0]) }
        let selected = keyIndexes + valueIndexes
        let estimate = try await connection.query("SELECT GREATEST(reltuples, 0)::int8 FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass($1)", [table])
        return TablePlan(mapping: mapping, table: table, selected: selected.map { names[$0] },
                         keyNames: mapping.key.map(mapping.publishedName),
                         valueNames: valueIndexes.map { mapping.publishedName(names[$0]) },
                         types: selected.map { types[$0] },
                         estimatedRows: Int(estimate.rows.first?[0].flatMap { Int($0) } ?? 0),
                         index: index, count: count)
    }

    struct TablePlan: Sendable {
        let mapping: TableMapping
        /// The quoted table, and the columns selected from it (key first).
        let table: String
        let selected: [String]
        let keyNames: [String]
        let valueNames: [String]
        let types: [ValueType]
        let estimatedRows: Int
        let index: Int
        let count: Int
    }

    /// Builds bodies from COPY rows. Used only from the copying connection's thread; the mutex makes that checkable.
    final class Sink: Sendable {
        struct State {
            var encoder = BatchBodyEncoder(capacity: 1 << 20)
            var ordinal: UInt32 = 0
            var plan: TablePlan? = nil
            var rows = 0
            var started = ContinuousClock.now
            var lastReport = ContinuousClock.now
        }

        let state = Mutex(State())
        let limits: BatchBuilder.Limits
        let consistentPoint: UInt64
        let emit: @Sendable (BatchBodyEncoder, TableMapping?) throws -> Void
        let progress: @Sendable (SnapshotProgress) -> Void

        init(limits: BatchBuilder.Limits, consistentPoint: UInt64, emit: @escaping @Sendable (BatchBodyEncoder, TableMapping?) throws -> Void,
             progress: @escaping @Sendable (SnapshotProgress) -> Void) {
            self.limits = limits
            self.consistentPoint = consistentPoint
            self.emit = emit
            self.progress = progress
        }

        func begin(_ plan: TablePlan, truncate: Bool) throws {
            try state.withLock { state in
                state.plan = plan
                state.rows = 0
                state.started = .now
                state.lastReport = .now
                if truncate {
                    try state.encoder.append(ChangeRecord(operation: .truncate, resource: plan.mapping.resource,
                                                          position: SourcePosition(commit: consistentPoint, ordinal: state.ordinal)))
                    state.ordinal += 1
                }
            }
        }

        func consume(_ row: UnsafeRawBufferPointer) throws {
            try state.withLock { state in
                guard let plan = state.plan else { return }
                let fields = try CopyText.fields(row, expected: plan.types.count)
                var values: [Value] = []
                values.reserveCapacity(fields.count)
                for (index, field) in fields.enumerated() {
                    guard let field else {
                        values.append(.null)
                        continue
                    }
                    let text = try field.withUnsafeBytes { try ByteReader.string($0, at: 0) }
                    values.append(try Value(postgresText: text, type: plan.types[index]))
                }
                let keyCount = plan.keyNames.count
                let record = ChangeRecord(operation: .insert, resource: plan.mapping.resource,
                                          position: SourcePosition(commit: consistentPoint, ordinal: state.ordinal),
                                          key: zip(plan.keyNames, values.prefix(keyCount)).map { Column($0, $1) },
                                          values: zip(plan.valueNames, values.dropFirst(keyCount)).map { Column($0, $1) })
                try state.encoder.append(record)
                state.ordinal += 1
                state.rows += 1
                if state.encoder.recordCount >= limits.maxRecords || state.encoder.byteCount >= limits.maxBytes {
                    try emit(state.encoder, nil)
                    state.encoder.reset()
                }
                if ContinuousClock.now - state.lastReport >= .seconds(1) {
                    state.lastReport = .now
                    progress(Self.report(state))
                }
            }
        }

        static func report(_ state: State) -> SnapshotProgress {
            let seconds = max(1e-6, (ContinuousClock.now - state.started).seconds)
            return SnapshotProgress(resource: state.plan?.mapping.resource ?? "", rows: state.rows,
                                    estimatedRows: state.plan?.estimatedRows ?? 0, rowsPerSecond: Double(state.rows) / seconds,
                                    table: (state.plan?.index ?? 0) + 1, tables: state.plan?.count ?? 0)
        }

        /// The table's last rows, with the table: its copy is complete once they are durable.
        func finishTable() throws {
            let report = try state.withLock { state in
                try emit(state.encoder, state.plan?.mapping)
                state.encoder.reset()
                return Self.report(state)
            }
            progress(report)
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
