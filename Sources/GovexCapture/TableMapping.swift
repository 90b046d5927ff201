import GovexPolicy
import GovexPostgres

/// How one department table is published as a resource: the DBA's `[[publish]]`.
public struct TableMapping: Sendable, Equatable {
    public enum Columns: Sendable, Equatable {
        case all
        case only([String])
        case excluding([String])
    }

    public var resource: String
    public var schema: String
    public var table: String
    /// Source column names of the key, in order.
    public var key: [String]
    public var columns: Columns
    /// Source column name → published name.
    public var rename: [String: String]
    /// Rows that do not pass are not shipped; over source column names.
    public var filter: RowFilter?

    public init(resource: String, schema: String, table: String, key: [String], columns: Columns = .all, rename: [String: String] = [:],
                filter: RowFilter? = nil) {
        self.resource = resource
        self.schema = schema
        self.table = table
        self.key = key
        self.columns = columns
        self.rename = rename
        self.filter = filter
    }

    public func includes(_ column: String) -> Bool {
        if key.contains(column) { return true }
        switch columns {
        case .all: return true
        case .only(let names): return names.contains(column)
        case .excluding(let names): return !names.contains(column)
        }
    }

    public func publishedName(_ column: String) -> String { rename[column] ?? column }
}

/// A mapping resolved against a relation's columns as pgoutput described them:
/// which tuple positions hold the key and the published values.
struct ResolvedMapping: Sendable {
    let mapping: TableMapping
    /// Tuple positions of the key columns, in key order.
    let keyPositions: [Int]
    /// Tuple positions of the published non-key columns, in table order.
    let valuePositions: [Int]
    let keyNames: [String]
    let valueNames: [String]
    /// Positions decoded at all: published columns and the ones the filter reads.
    let decodedPositions: Set<Int>
    /// Source column name → tuple position, for the filter.
    let positionOfColumn: [String: Int]

    init(_ mapping: TableMapping, relation: RelationSnapshot) throws(CaptureError) {
        let names = relation.columns.map(\.name)
        var keyPositions: [Int] = []
        for column in mapping.key {
            guard let position = names.firstIndex(of: column) else {
                throw .mappingMismatch(resource: mapping.resource, reason: "key column \(column) is not in \(mapping.schema).\(mapping.table) as PostgreSQL streams it")
            }
            keyPositions.append(position)
        }
        let valuePositions = names.indices.filter { !mapping.key.contains(names[$0]) && mapping.includes(names[$0]) }
        self.mapping = mapping
        self.keyPositions = keyPositions
        self.valuePositions = valuePositions
        self.keyNames = mapping.key.map(mapping.publishedName)
        self.valueNames = valuePositions.map { mapping.publishedName(names[$0]) }
        var positionOfColumn: [String: Int] = [:]
        for (index, name) in names.enumerated() { positionOfColumn[name] = index }
        self.positionOfColumn = positionOfColumn
        var decoded = Set(keyPositions + valuePositions)
        for column in mapping.filter?.columns ?? [] {
            guard let position = positionOfColumn[column] else {
                throw .mappingMismatch(resource: mapping.resource, reason: "the row filter reads column \(column), which is not in \(mapping.schema).\(mapping.table)")
            }
            decoded.insert(position)
        }
        self.decodedPositions = decoded
    }
}

public enum CaptureError: Error, Equatable, CustomStringConvertible {
    case mappingMismatch(resource: String, reason: String)
    case protocolViolation(String)
    case badValue(resource: String, column: String, reason: String)

    public var description: String {
        switch self {
        case let .mappingMismatch(resource, reason): return "resource \(resource): \(reason); run `govex check` to compare the mapping with the database"
        case .protocolViolation(let reason): return "unexpected replication stream: \(reason)"
        case let .badValue(resource, column, reason): return "resource \(resource), column \(column): \(reason)"
        }
    }
}
