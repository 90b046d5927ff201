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

/// Copies every mapped table as it stood at the slot's exported snapshot, as
/// insert records positioned at (consistent point, 0, 1, 2 …): every change the
/// slot streams afterwards commits later, so snapshot and stream together hold
/// each row exactly once.
public enum InitialSnapshot {
    /// `emit` receives each full body (and a last partial one) on the copying thread.
    public static func copy(conninfo: String, snapshotName: String, consistentPoint: UInt64, mappings: [TableMapping],
                            limits: BatchBuilder.Limits,
                            emit: @escaping @Sendable (BatchBodyEncoder, _ isLast: Bool) throws -> Void,
                            progress: @escaping @Sendable (SnapshotProgress) -> Void) async throws {
        try await PostgresConnection.with(conninfo, name: "govex-snapshot") { connection in
            try await copy(on: connection, snapshotName: snapshotName, consistentPoint: consistentPoint, mappings: mappings,
                           limits: limits, emit: emit, progress: progress)
        }
    }

    private static func copy(on connection: PostgresConnection, snapshotName: String, consistentPoint: UInt64, mappings: [TableMapping],
                             limits: BatchBuilder.Limits,
                             emit: @escaping @Sendable (BatchBodyEncoder, _ isLast: Bool) throws -> Void,
                             progress: @escaping @Sendable (SnapshotProgress) -> Void) async throws {
        try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try await connection.query("SET TRANSACTION SNAPSHOT \(SQLQuoting.literal(snapshotName))")
        let sink = Sink(limits: limits, consistentPoint: consistentPoint, emit: emit, progress: progress)
        for (tableIndex, mapping) in mappings.enumerated() {
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
            let plan = TablePlan(mapping: mapping,
                                 keyNames: mapping.key.map(mapping.publishedName),
                                 valueNames: valueIndexes.map { mapping.publishedName(names[$0]) },
                                 types: selected.map { types[$0] },
                                 estimatedRows: Int(estimate.rows.first?[0].flatMap { Int($0) } ?? 0),
                                 index: tableIndex, count: mappings.count)
            sink.begin(plan)
            let list = selected.map { SQLQuoting.identifier(names[$0]) }.joined(separator: ", ")
            let condition = mapping.filter.map { " WHERE \($0.sql)" } ?? ""
            try await connection.copyOut("COPY (SELECT \(list) FROM \(table)\(condition)) TO STDOUT") { row in try sink.consume(row) }
            sink.finishTable()
        }
        try await connection.query("COMMIT")
        try sink.finish()
    }

    struct TablePlan: Sendable {
        let mapping: TableMapping
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
        let emit: @Sendable (BatchBodyEncoder, Bool) throws -> Void
        let progress: @Sendable (SnapshotProgress) -> Void

        init(limits: BatchBuilder.Limits, consistentPoint: UInt64, emit: @escaping @Sendable (BatchBodyEncoder, Bool) throws -> Void,
             progress: @escaping @Sendable (SnapshotProgress) -> Void) {
            self.limits = limits
            self.consistentPoint = consistentPoint
            self.emit = emit
            self.progress = progress
        }

        func begin(_ plan: TablePlan) {
            state.withLock {
                $0.plan = plan
                $0.rows = 0
                $0.started = .now
                $0.lastReport = .now
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
                    try emit(state.encoder, false)
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

        func finishTable() {
            progress(state.withLock { Self.report($0) })
        }

        func finish() throws {
            try state.withLock { state in
                try emit(state.encoder, true)
                state.encoder.reset()
            }
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
