import GovexWire

/// One statement of an apply, with its parameters in PostgreSQL text form. Parameters are
/// left untyped: PostgreSQL takes each one's type from the column it is compared with or
/// inserted into, so the subscriber's own column types decide.
public struct ApplyStatement: Sendable, Equatable {
    public var sql: String
    public var parameters: [String?]

    public init(sql: String, parameters: [String?]) {
        self.sql = sql
        self.parameters = parameters
    }
}

public struct ApplyPlanError: Error, CustomStringConvertible, Equatable {
    public let description: String

    public init(description: String) { self.description = description }
}

/// Turns a delivery's records for one table into statements that reproduce them, in
/// order: pure, so what an apply does is tested without a database.
///
/// Consecutive upserts with the same columns become one multi-row `INSERT … ON CONFLICT`
/// (a run ends before a key repeats, since one statement may not touch a row twice);
/// consecutive deletes one `DELETE … IN`; an update that moved its key deletes any row
/// already at the new key, moves the old row there (keeping columns PostgreSQL did not
/// resend) and upserts it, so it lands even when the old row is missing; a truncate
/// deletes every row (MVCC-friendly, and no privilege beyond DELETE).
public enum ApplyPlan {
    public static let maxParameters = 30_000

    public static func statements(for records: [ChangeRecord], schema: String, table: String) throws(ApplyPlanError) -> [ApplyStatement] {
        var planner = Planner(target: SQLQuoting.qualified(schema: schema, name: table))
        for record in records { try planner.add(record) }
        planner.flush()
        return planner.statements
    }

    private enum Run {
        case none
        case upsert(keyNames: [String], valueNames: [String], rows: [[String?]], keys: Set<[String?]>)
        case delete(keyNames: [String], keys: [[String?]])
    }

    private struct Planner {
        let target: String
        var statements: [ApplyStatement] = []
        var run = Run.none

        init(target: String) { self.target = target }

        mutating func add(_ record: ChangeRecord) throws(ApplyPlanError) {
            switch record.operation {
            case .truncate:
                flush()
                statements.append(ApplyStatement(sql: "DELETE FROM \(target)", parameters: []))
            case .delete:
                let (names, key) = try keyParts(record.key, of: record)
                if case .delete(let runNames, var keys) = run, runNames == names, (keys.count + 1) * names.count <= maxParameters {
                    run = .none  // so that `keys` is the array's only owner and grows in place
                    keys.append(key)
                    run = .delete(keyNames: names, keys: keys)
                } else {
                    flush()
                    run = .delete(keyNames: names, keys: [key])
                }
            case .insert, .update:
                let (keyNames, key) = try keyParts(record.key, of: record)
                let present = record.values.filter { if case .unchanged = $0.value { false } else { true } }
                let valueNames = present.map(\.name)
                if let oldKey = record.oldKey, oldKey != record.key {
                    flush()
                    let (oldNames, old) = try keyParts(oldKey, of: record)
                    guard oldNames == keyNames else { throw ApplyPlanError(description: "an update at \(record.position) renamed its key columns") }
                    statements.append(ApplyStatement(sql: "DELETE FROM \(target) WHERE \(matching(keyNames, from: 1))", parameters: key))
                    let assignments = (keyNames + valueNames).enumerated().map { "\(quoted($0.element)) = $\($0.offset + 1)" }
                    statements.append(ApplyStatement(
                        sql: "UPDATE \(target) SET \(assignments.joined(separator: ", ")) WHERE \(matching(keyNames, from: assignments.count + 1))",
                        parameters: key + present.map(\.value.postgresText) + old))
                }
                let row = key + present.map(\.value.postgresText)
                if case .upsert(let runKeys, let runValues, var rows, var keys) = run, runKeys == keyNames, runValues == valueNames,
                   !keys.contains(key), (rows.count + 1) * row.count <= maxParameters {
                    run = .none
                    rows.append(row)
                    keys.insert(key)
                    run = .upsert(keyNames: keyNames, valueNames: valueNames, rows: rows, keys: keys)
                } else {
                    flush()
                    run = .upsert(keyNames: keyNames, valueNames: valueNames, rows: [row], keys: [key])
                }
            }
        }

        mutating func flush() {
            switch run {
            case .none:
                return
            case .delete(let names, let keys):
                let sql: String
                if names.count == 1 {
                    sql = "DELETE FROM \(target) WHERE \(quoted(names[0])) IN (\(placeholders(count: keys.count, width: 1, grouped: false)))"
                } else {
                    sql = "DELETE FROM \(target) WHERE (\(names.map(quoted).joined(separator: ", "))) IN (\(placeholders(count: keys.count, width: names.count)))"
                }
                statements.append(ApplyStatement(sql: sql, parameters: keys.flatMap { $0 }))
            case .upsert(let keyNames, let valueNames, let rows, _):
                let columns = (keyNames + valueNames).map(quoted).joined(separator: ", ")
                let conflict = valueNames.isEmpty
                    ? "DO NOTHING"
                    : "DO UPDATE SET " + valueNames.map { "\(quoted($0)) = EXCLUDED.\(quoted($0))" }.joined(separator: ", ")
                statements.append(ApplyStatement(
                    sql: "INSERT INTO \(target) (\(columns)) VALUES \(placeholders(count: rows.count, width: keyNames.count + valueNames.count)) "
                        + "ON CONFLICT (\(keyNames.map(quoted).joined(separator: ", "))) \(conflict)",
                    parameters: rows.flatMap { $0 }))
            }
            run = .none
        }

        func keyParts(_ key: [Column], of record: ChangeRecord) throws(ApplyPlanError) -> ([String], [String?]) {
            guard !key.isEmpty else { throw ApplyPlanError(description: "the \(record.operation) at \(record.position) carries no key") }
            var texts: [String?] = []
            for column in key {
                guard let text = column.value.postgresText else {
                    throw ApplyPlanError(description: "key column \(column.name) of the \(record.operation) at \(record.position) is \(column.value.typeName)")
                }
                texts.append(text)
            }
            return (key.map(\.name), texts)
        }

        func quoted(_ name: String) -> String { SQLQuoting.identifier(name) }

        func matching(_ names: [String], from first: Int) -> String {
            names.enumerated().map { "\(quoted($0.element)) = $\(first + $0.offset)" }.joined(separator: " AND ")
        }

        /// `($1, $2), ($3, $4)`; `$1, $2` for single values not `grouped`.
        func placeholders(count: Int, width: Int, grouped: Bool = true) -> String {
            (0..<count).map { row in
                let items = (0..<width).map { "$\(row * width + $0 + 1)" }.joined(separator: ", ")
                return grouped || width > 1 ? "(" + items + ")" : items
            }.joined(separator: ", ")
        }
    }
}
