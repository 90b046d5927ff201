import GovexPolicy
import GovexPostgres
import GovexWire

/// A relation as pgoutput last described it, with its columns' value types.
struct RelationSnapshot: Sendable {
    let description: RelationDescription
    var columns: [RelationDescription.Column] { description.columns }
    let types: [ValueType]
}

/// What the decoder hands on, in stream order.
public enum CaptureEvent: Sendable, Equatable {
    /// A change to a mapped table, positioned by its transaction's commit and its ordinal.
    case change(ChangeRecord)
    /// A transaction ended; everything up to `endLSN` has been seen whole.
    case commit(commitLSN: UInt64, endLSN: UInt64)
    /// A logical decoding message (heartbeats and the like).
    case message(prefix: String, content: [UInt8], lsn: UInt64)
}

/// Turns pgoutput messages into change records of mapped resources. Pure: no IO,
/// every input a message, every output events.
///
/// - Positions: pgoutput's Begin carries the transaction's commit LSN, so each
///   change is positioned (commit LSN, ordinal within the transaction) as it arrives.
/// - Echo: transactions carrying one of `skippedOrigins` (our own applies) produce nothing.
/// - Unchanged TOAST columns become `.unchanged`, unless the old row (REPLICA
///   IDENTITY FULL) holds the value, which is then used.
public struct ChangeDecoder: Sendable {
    private var mappings: [String: TableMapping] = [:]
    private var relations: [UInt32: (relation: RelationSnapshot, mapping: ResolvedMapping?)] = [:]
    /// Names of types that are neither built in to the value model nor announced by a Type message.
    private var typeNames: [UInt32: String]
    private let skippedOrigins: Set<String>

    private var transaction: (commitLSN: UInt64, ordinal: UInt32, skipped: Bool)? = nil

    public init(mappings: [TableMapping], typeNames: [UInt32: String] = [:], skippedOrigins: Set<String> = []) {
        for mapping in mappings { self.mappings[Self.key(mapping.schema, mapping.table)] = mapping }
        self.typeNames = typeNames
        self.skippedOrigins = skippedOrigins
    }

    static func key(_ schema: String, _ table: String) -> String { schema + "\u{0}" + table }

    public mutating func consume(_ message: PgOutputMessage) throws(CaptureError) -> [CaptureEvent] {
        switch message {
        case let .begin(finalLSN, _, _):
            guard transaction == nil else { throw .protocolViolation("Begin inside a transaction") }
            transaction = (finalLSN, 0, false)
            return []
        case let .commit(_, commitLSN, endLSN, _):
            guard let current = transaction else { throw .protocolViolation("Commit outside a transaction") }
            transaction = nil
            return current.skipped ? [] : [.commit(commitLSN: commitLSN, endLSN: endLSN)]
        case .origin(_, let name):
            guard transaction != nil else { throw .protocolViolation("Origin outside a transaction") }
            // Applies use `govex_apply` or one origin per subscription, `govex_apply_<database oid>_<id>`.
            if skippedOrigins.contains(where: { name == $0 || name.hasPrefix($0 + "_") }) { transaction?.skipped = true }
            return []
        case .relation(let description):
            try remember(description)
            return []
        case let .type(oid, namespace, name):
            typeNames[oid] = namespace.isEmpty ? name : namespace + "." + name
            return []
        case let .message(transactional, lsn, prefix, content):
            if transactional, transaction?.skipped == true { return [] }
            return [.message(prefix: prefix, content: content, lsn: lsn)]
        case let .insert(relation, new):
            guard let (snapshot, mapping) = try target(relation), let mapping else { return [] }
            let values = try convert(new, snapshot, mapping)
            guard try passes(values, mapping) else { return [] }
            return try emit(ChangeRecord(operation: .insert, resource: mapping.mapping.resource, position: nextPosition(),
                                         key: columns(values, mapping.keyPositions, mapping.keyNames),
                                         values: columns(values, mapping.valuePositions, mapping.valueNames)))
        case let .update(relation, old, new):
            guard let (snapshot, mapping) = try target(relation), let mapping else { return [] }
            var values = try convert(new, snapshot, mapping)
            var oldValues: [Value]? = nil
            if let old {
                oldValues = try convert(old.values, snapshot, mapping)
                if case .full = old {
                    // The whole old row is known: an unchanged TOAST value is the old value.
                    for index in values.indices where values[index] == .unchanged { values[index] = oldValues![index] }
                }
            }
            let key = columns(values, mapping.keyPositions, mapping.keyNames)
            var oldKey: [Column]? = nil
            if let oldValues {
                let previous = columns(oldValues, mapping.keyPositions, mapping.keyNames)
                if previous != key { oldKey = previous }
            }
            guard try passes(values, mapping) else {
                // The row left the filter: for the consumer it is gone (under its old key if that changed too).
                return try emit(ChangeRecord(operation: .delete, resource: mapping.mapping.resource, position: nextPosition(), key: oldKey ?? key))
            }
            return try emit(ChangeRecord(operation: .update, resource: mapping.mapping.resource, position: nextPosition(),
                                         key: key, values: columns(values, mapping.valuePositions, mapping.valueNames), oldKey: oldKey))
        case let .delete(relation, old):
            guard let (snapshot, mapping) = try target(relation), let mapping else { return [] }
            let values = try convert(old.values, snapshot, mapping)
            return try emit(ChangeRecord(operation: .delete, resource: mapping.mapping.resource, position: nextPosition(),
                                         key: columns(values, mapping.keyPositions, mapping.keyNames)))
        case .truncate(let relationIDs, _, _):
            var events: [CaptureEvent] = []
            for relation in relationIDs {
                guard let (_, mapping) = try target(relation), let mapping else { continue }
                events += try emit(ChangeRecord(operation: .truncate, resource: mapping.mapping.resource, position: nextPosition()))
            }
            return events
        }
    }

    private mutating func remember(_ description: RelationDescription) throws(CaptureError) {
        let types = description.columns.map { column in
            PostgresTypes.valueType(oid: column.typeOID) ?? .other(typeNames[column.typeOID] ?? "oid \(column.typeOID)")
        }
        let snapshot = RelationSnapshot(description: description, types: types)
        let mapping = try mappings[Self.key(description.namespace.isEmpty ? "pg_catalog" : description.namespace, description.name)]
            .map { mapping throws(CaptureError) in try ResolvedMapping(mapping, relation: snapshot) }
        relations[description.id] = (snapshot, mapping)
    }

    /// The relation and its mapping (nil when the table is not mapped), inside a transaction.
    private func target(_ relation: UInt32) throws(CaptureError) -> (RelationSnapshot, ResolvedMapping?)? {
        guard let current = transaction else { throw .protocolViolation("a change outside a transaction") }
        guard let entry = relations[relation] else { throw .protocolViolation("a change to relation \(relation) before its Relation message") }
        return current.skipped ? nil : (entry.relation, entry.mapping)
    }

    private mutating func nextPosition() -> SourcePosition {
        let position = SourcePosition(commit: transaction!.commitLSN, ordinal: transaction!.ordinal)
        transaction!.ordinal += 1
        return position
    }

    private func emit(_ record: ChangeRecord) throws(CaptureError) -> [CaptureEvent] {
        for column in record.key {
            switch column.value {
            case .null, .unchanged:
                throw .mappingMismatch(resource: record.resource, reason: "key column \(column.name) arrived \(column.value.typeName); the replica identity must cover the key")
            default: break
            }
        }
        return [.change(record)]
    }

    private func convert(_ tuple: [TupleValue], _ relation: RelationSnapshot, _ mapping: ResolvedMapping) throws(CaptureError) -> [Value] {
        guard tuple.count == relation.columns.count else {
            throw .protocolViolation("a tuple of \(tuple.count) columns for \(relation.description.name), which has \(relation.columns.count)")
        }
        var values = [Value]()
        values.reserveCapacity(tuple.count)
        for (index, item) in tuple.enumerated() {
            switch item {
            case .null: values.append(.null)
            case .unchangedToast: values.append(.unchanged)
            case .binary:
                throw .protocolViolation("binary tuple data; govex streams with text values")
            case .text(let bytes):
                // Columns that are neither published nor filtered on are never decoded.
                guard mapping.decodedPositions.contains(index) else {
                    values.append(.null)
                    continue
                }
                let column = relation.columns[index].name
                let text: String
                do {
                    text = try bytes.withUnsafeBytes { try ByteReader.string($0, at: 0) }
                } catch {
                    throw .badValue(resource: mapping.mapping.resource, column: column, reason: "not valid UTF-8; govex needs a UTF8 database encoding")
                }
                do {
                    values.append(try Value(postgresText: text, type: relation.types[index]))
                } catch {
                    throw .badValue(resource: mapping.mapping.resource, column: column, reason: error.description)
                }
            }
        }
        return values
    }

    private func passes(_ values: [Value], _ mapping: ResolvedMapping) throws(CaptureError) -> Bool {
        guard let filter = mapping.mapping.filter else { return true }
        do {
            return try filter.passes { name in mapping.positionOfColumn[name].map { values[$0] } }
        } catch {
            throw .mappingMismatch(resource: mapping.mapping.resource, reason: error.description)
        }
    }

    private func columns(_ values: [Value], _ positions: [Int], _ names: [String]) -> [Column] {
        zip(positions, names).map { Column($1, values[$0]) }
    }
}
