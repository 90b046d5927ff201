import GovexPostgres
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

/// The net effect of a run of a delivery's records on one table: each key once, as the
/// row it ends up as (an upsert of the columns the records carried) or a delete. Applied
/// set-based: the rows are copied into a staging table, then one `DELETE … USING` removes
/// deleted keys (and keys an earlier record deleted before re-inserting them), and one
/// `INSERT … SELECT … ON CONFLICT` per distinct set of carried columns writes the rest.
/// Since every key appears once, the order of the rows does not matter; the order of the
/// records for one key is kept by folding them into that key's row.
public struct StagedChanges: Sendable, Equatable {
    public enum Action: String, Sendable {
        case delete = "d"
        case upsert = "u"
    }

    public struct Row: Sendable, Equatable {
        public var action: Action
        /// An earlier record of the run deleted this key (or a key change landed on it):
        /// the old row goes first, so columns the records did not carry take their defaults.
        public var replaces: Bool
        public var key: [String?]
        /// Aligned with `columns`; a column beyond the end, or not `present`, was not carried.
        public var values: [String?]
        public var present: [Bool]
    }

    public var keyNames: [String]
    public var columns: [String]
    public var rows: [Row]
    /// Every record of the run was an insert, and every row carries every column: unless
    /// the table already holds one of the keys, the rows can be copied straight into it.
    public var onlyNewRows = false

    /// Names of the staging table's bookkeeping columns.
    public static let actionColumn = "govex_action", replacesColumn = "govex_replaces", presentColumn = "govex_present"

    /// Which of `columns` a row carries, as the `govex_present` text ("101": first and third).
    public func presence(of row: Row) -> String {
        String(columns.indices.map { $0 < row.present.count && row.present[$0] ? "1" : "0" })
    }

    /// The `COPY … FROM STDIN` statement that fills `stage`.
    public func copyStatement(stage: String) -> String {
        let names = [Self.actionColumn, Self.replacesColumn, Self.presentColumn] + keyNames + columns
        return "COPY \(stage) (\(names.map(SQLQuoting.identifier).joined(separator: ", "))) FROM STDIN"
    }

    /// The rows in COPY text form, in chunks of about `chunkSize` bytes.
    public func copyData(chunkSize: Int = 1 << 20, _ consume: ([UInt8]) throws -> Void) rethrows {
        try copyData(bookkeeping: true, chunkSize: chunkSize, consume)
    }

    /// `COPY` of the rows straight into `target` (for `onlyNewRows`): keys and columns only.
    public func directCopyStatement(target: String) -> String {
        "COPY \(target) (\((keyNames + columns).map(SQLQuoting.identifier).joined(separator: ", "))) FROM STDIN"
    }

    /// The rows for `directCopyStatement`.
    public func directCopyData(chunkSize: Int = 1 << 20, _ consume: ([UInt8]) throws -> Void) rethrows {
        try copyData(bookkeeping: false, chunkSize: chunkSize, consume)
    }

    /// What turns a line of `directCopyData` into the same row of `copyData`, when every
    /// row is an upsert that carries every column (`onlyNewRows`): the bookkeeping fields.
    public var stagedLinePrefix: [UInt8] {
        var prefix: [UInt8] = []
        CopyText.appendField(Action.upsert.rawValue, to: &prefix)
        prefix += Array("\tf\t".utf8)
        CopyText.appendField(String(repeating: "1", count: columns.count), to: &prefix)
        prefix.append(UInt8(ascii: "\t"))
        return prefix
    }

    private func copyData(bookkeeping: Bool, chunkSize: Int, _ consume: ([UInt8]) throws -> Void) rethrows {
        try CopyLines.write(rows, chunkSize: chunkSize, consume) { row, buffer in
            if bookkeeping {
                CopyText.appendField(row.action.rawValue, to: &buffer)
                buffer.append(UInt8(ascii: "\t"))
                buffer.append(row.replaces ? UInt8(ascii: "t") : UInt8(ascii: "f"))
                buffer.append(UInt8(ascii: "\t"))
                CopyText.appendField(presence(of: row), to: &buffer)
                buffer.append(UInt8(ascii: "\t"))
            }
            for (position, value) in row.key.enumerated() {
                if position > 0 { buffer.append(UInt8(ascii: "\t")) }
                CopyText.appendField(value, to: &buffer)
            }
            for index in columns.indices {
                buffer.append(UInt8(ascii: "\t"))
                CopyText.appendField(index < row.values.count && row.present[index] ? row.values[index] : nil, to: &buffer)
            }
        }
    }

    /// `directCopyData`'s text as `copyData`'s (see `stagedLinePrefix`): the way back when
    /// the straight copy met a key the table already held. Lines whose first `keyFields`
    /// fields repeat keep the last one, in the place of the first (the upsert may touch a
    /// row once): records that insert a key twice fold as the staged plan folds them.
    public static func stagedText(fromDirect text: [UInt8], linePrefix: [UInt8], keyFields: Int) -> [UInt8] {
        let newline = UInt8(ascii: "\n"), tab = UInt8(ascii: "\t")
        // COPY text escapes a newline or tab inside a value, so raw ones only separate.
        var lines: [ArraySlice<UInt8>] = []
        var positionOfKey: [ArraySlice<UInt8>: Int] = [:]
        var start = text.startIndex
        while start < text.endIndex {
            let end = text[start...].firstIndex(of: newline) ?? text.endIndex
            let line = text[start..<end]
            var keyEnd = line.startIndex, fields = 0
            while keyEnd < line.endIndex, fields < keyFields {
                keyEnd = line[keyEnd...].firstIndex(of: tab) ?? line.endIndex
                fields += 1
                if fields < keyFields, keyEnd < line.endIndex { keyEnd += 1 }
            }
            if let earlier = positionOfKey.updateValue(lines.count, forKey: line[line.startIndex..<keyEnd]) {
                positionOfKey[line[line.startIndex..<keyEnd]] = earlier
                lines[earlier] = line
            } else {
                lines.append(line)
            }
            start = end < text.endIndex ? end + 1 : end
        }
        var staged: [UInt8] = []
        staged.reserveCapacity(text.count + lines.count * linePrefix.count)
        for line in lines {
            staged += linePrefix
            staged += line
            staged.append(newline)
        }
        return staged
    }

    /// The set-based statements that apply the staged rows to `target`, deletes first.
    public func statements(target: String, stage: String) -> [String] {
        let quotedKeys = keyNames.map(SQLQuoting.identifier)
        var statements: [String] = []
        if rows.contains(where: { $0.action == .delete || $0.replaces }) {
            let matching = quotedKeys.map { "t.\($0) = s.\($0)" }.joined(separator: " AND ")
            statements.append("DELETE FROM \(target) AS t USING \(stage) AS s WHERE (s.\(Self.actionColumn) = 'd' OR s.\(Self.replacesColumn)) AND \(matching)")
        }
        var presences: [String] = []
        var seen = Set<String>()
        for row in rows where row.action == .upsert {
            let presence = presence(of: row)
            if seen.insert(presence).inserted { presences.append(presence) }
        }
        for presence in presences { statements.append(upsertStatement(presence: presence, target: target, stage: stage)) }
        return statements
    }

    /// The statement that writes the staged upserts carrying the columns `presence` names.
    public func upsertStatement(presence: String, target: String, stage: String) -> String {
        let quotedKeys = keyNames.map(SQLQuoting.identifier)
        let carried = zip(columns, presence).filter { $0.1 == "1" }.map { SQLQuoting.identifier($0.0) }
        let names = (quotedKeys + carried).joined(separator: ", ")
        let conflict = carried.isEmpty ? "DO NOTHING" : "DO UPDATE SET " + carried.map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")
        return "INSERT INTO \(target) (\(names)) SELECT \(names) FROM \(stage) WHERE \(Self.actionColumn) = 'u' AND "
            + "\(Self.presentColumn) = '\(presence)' ON CONFLICT (\(quotedKeys.joined(separator: ", "))) \(conflict)"
    }
}

/// One step of an apply: a run of records staged and applied set-based, or a statement that
/// must sit between runs (a truncate, or a key change whose row keeps columns it did not carry),
/// or records that are all whole new rows, written straight from the records.
public enum ApplyStep: Sendable, Equatable {
    case staged(StagedChanges)
    case statement(ApplyStatement)
    case newRows(NewRows)
}

/// Records that are all inserts of whole rows with one column layout (a bulk load, an initial
/// snapshot): nothing to fold, so their `COPY` text is written from the records as they
/// come, without a plan per row. `shape` (no rows) gives the statements of the staged way,
/// taken when the table already holds one of the keys.
public struct NewRows: Sendable, Equatable {
    public var shape: StagedChanges
    public var records: [ChangeRecord]

    /// The records' `COPY` text for `shape.directCopyStatement`, in chunks of about `chunkSize` bytes.
    public func directCopyData(chunkSize: Int = 1 << 20, _ consume: ([UInt8]) throws -> Void) rethrows {
        try CopyLines.write(records, chunkSize: chunkSize, consume) { record, buffer in
            for (position, column) in record.key.enumerated() {
                if position > 0 { buffer.append(UInt8(ascii: "\t")) }
                CopyText.appendField(column.value.postgresText, to: &buffer)
            }
            for column in record.values {
                buffer.append(UInt8(ascii: "\t"))
                CopyText.appendField(column.value.postgresText, to: &buffer)
            }
        }
    }

    /// The records, if they are all inserts carrying every column under the first one's
    /// names, in its order, with no NULL key (which the staged way reports).
    static func of(_ records: [ChangeRecord]) -> NewRows? {
        guard let first = records.first, !first.key.isEmpty else { return nil }
        for record in records {
            guard record.operation == .insert, record.key.count == first.key.count, record.values.count == first.values.count else { return nil }
            for (column, expected) in zip(record.key, first.key) where column.name != expected.name || column.value.isNull { return nil }
            for (column, expected) in zip(record.values, first.values) where column.name != expected.name || column.value.isUnchanged { return nil }
        }
        var shape = StagedChanges(keyNames: first.key.map(\.name), columns: first.values.map(\.name), rows: [])
        shape.onlyNewRows = true
        return NewRows(shape: shape, records: records)
    }
}

/// `COPY` text written a line per element and handed on in chunks of about `chunkSize` bytes.
enum CopyLines {
    static func write<Element>(_ elements: some Sequence<Element>, chunkSize: Int, _ consume: ([UInt8]) throws -> Void,
                               fields: (Element, inout [UInt8]) -> Void) rethrows {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(min(chunkSize, 1 << 22) + 4096)
        for element in elements {
            fields(element, &buffer)
            buffer.append(UInt8(ascii: "\n"))
            if buffer.count >= chunkSize {
                try consume(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        if !buffer.isEmpty { try consume(buffer) }
    }
}

private extension Value {
    var isNull: Bool { if case .null = self { true } else { false } }
    var isUnchanged: Bool { if case .unchanged = self { true } else { false } }
}

/// Turns a delivery's records for one table into the steps that reproduce them: pure, so
/// what an apply does is tested without a database.
///
/// Records fold into one staged run per key: an update merges into the row an earlier
/// record left, a delete turns it into a delete, an insert after a delete replaces the row.
/// A key change deletes the old key and replaces the row at the new one. Two things end a
/// run: a truncate (deletes every row: MVCC-friendly, and no privilege beyond DELETE), and a
/// key change that did not carry every column (unchanged TOAST), which moves the stored row
/// with an `UPDATE` so the columns it did not carry stay.
public enum ApplyPlan {
    public static func steps(for records: [ChangeRecord], schema: String, table: String) throws(ApplyPlanError) -> [ApplyStep] {
        if let newRows = NewRows.of(records) { return [.newRows(newRows)] }
        let target = SQLQuoting.qualified(schema: schema, name: table)
        var steps: [ApplyStep] = []
        var run = RunBuilder()
        func endRun() {
            if let staged = run.finish() { steps.append(.staged(staged)) }
            run = RunBuilder()
        }
        for record in records {
            switch record.operation {
            case .truncate:
                endRun()
                steps.append(.statement(ApplyStatement(sql: "DELETE FROM \(target)", parameters: [])))
            case .delete:
                let (names, key) = try keyParts(record.key, of: record)
                run.onlyInserts = false
                try run.delete(key, names: names, at: record)
            case .insert, .update:
                if record.operation == .update { run.onlyInserts = false }
                let (names, key) = try keyParts(record.key, of: record)
                let carried = record.values.compactMap { column -> (String, String?)? in
                    if case .unchanged = column.value { nil } else { (column.name, column.value.postgresText) }
                }
                guard let oldKey = record.oldKey, oldKey != record.key else {
                    try run.upsert(key, names: names, values: carried, replacing: false, at: record)
                    continue
                }
                let (oldNames, old) = try keyParts(oldKey, of: record)
                guard oldNames == names else { throw ApplyPlanError(description: "an update at \(record.position) renamed its key columns") }
                if carried.count == record.values.count {
                    try run.delete(old, names: names, at: record)
                    try run.upsert(key, names: names, values: carried, replacing: true, at: record)
                } else {
                    endRun()
                    let matching = { (first: Int) in names.enumerated().map { "\(SQLQuoting.identifier($0.element)) = $\(first + $0.offset)" }.joined(separator: " AND ") }
                    steps.append(.statement(ApplyStatement(sql: "DELETE FROM \(target) WHERE \(matching(1))", parameters: key)))
                    let assignments = (names + carried.map(\.0)).enumerated().map { "\(SQLQuoting.identifier($0.element)) = $\($0.offset + 1)" }
                    steps.append(.statement(ApplyStatement(
                        sql: "UPDATE \(target) SET \(assignments.joined(separator: ", ")) WHERE \(matching(assignments.count + 1))",
                        parameters: key + carried.map(\.1) + old)))
                    try run.upsert(key, names: names, values: carried, replacing: false, at: record)
                }
            }
        }
        endRun()
        return steps
    }

    static func keyParts(_ key: [Column], of record: ChangeRecord) throws(ApplyPlanError) -> ([String], [String?]) {
        guard !key.isEmpty else { throw ApplyPlanError(description: "the \(record.operation) at \(record.position) carries no key") }
        var texts: [String?] = []
        texts.reserveCapacity(key.count)
        for column in key {
            guard let text = column.value.postgresText else {
                throw ApplyPlanError(description: "key column \(column.name) of the \(record.operation) at \(record.position) is \(column.value.typeName)")
            }
            texts.append(text)
        }
        return (key.map(\.name), texts)
    }

    /// Folds records into one row per key.
    struct RunBuilder {
        var keyNames: [String]?
        var columns: [String] = []
        var columnIndex: [String: Int] = [:]
        var rows: [StagedChanges.Row] = []
        var rowIndex: [[String?]: Int] = [:]
        var onlyInserts = true

        mutating func checkKey(_ names: [String], at record: ChangeRecord) throws(ApplyPlanError) {
            if let keyNames, keyNames != names {
                throw ApplyPlanError(description: "the \(record.operation) at \(record.position) is keyed by \(names.joined(separator: ", ")), "
                                     + "earlier records by \(keyNames.joined(separator: ", "))")
            }
            keyNames = names
        }

        mutating func delete(_ key: [String?], names: [String], at record: ChangeRecord) throws(ApplyPlanError) {
            try checkKey(names, at: record)
            let row = StagedChanges.Row(action: .delete, replaces: false, key: key, values: [], present: [])
            if let index = rowIndex[key] { rows[index] = row } else { rowIndex[key] = rows.count; rows.append(row) }
        }

        mutating func upsert(_ key: [String?], names: [String], values: [(String, String?)], replacing: Bool,
                             at record: ChangeRecord) throws(ApplyPlanError) {
            try checkKey(names, at: record)
            let index: Int
            if let known = rowIndex[key] {
                index = known
                if replacing || rows[index].action == .delete {
                    rows[index] = StagedChanges.Row(action: .upsert, replaces: true, key: key, values: [], present: [])
                }
            } else {
                index = rows.count
                rowIndex[key] = index
                // Sized for the columns known so far: no regrowth while the row fills in.
                let width = max(columns.count, values.count)
                rows.append(StagedChanges.Row(action: .upsert, replaces: replacing, key: key,
                                              values: Array(repeating: nil, count: width), present: Array(repeating: false, count: width)))
            }
            // Modified in place (`rows[index]`), not copied out and back: a copy would
            // duplicate the row's arrays on every record.
            for (position, (name, value)) in values.enumerated() {
                // Records of one table nearly always carry their columns in the same order.
                let column: Int
                if position < columns.count, columns[position] == name {
                    column = position
                } else if let known = columnIndex[name] {
                    column = known
                } else {
                    column = columns.count
                    columnIndex[name] = column
                    columns.append(name)
                }
                if rows[index].values.count <= column {
                    let missing = column + 1 - rows[index].values.count
                    rows[index].values.append(contentsOf: repeatElement(nil, count: missing))
                    rows[index].present.append(contentsOf: repeatElement(false, count: missing))
                }
                rows[index].values[column] = value
                rows[index].present[column] = true
            }
        }

        func finish() -> StagedChanges? {
            guard let keyNames, !rows.isEmpty else { return nil }
            var changes = StagedChanges(keyNames: keyNames, columns: columns, rows: rows)
            changes.onlyNewRows = onlyInserts && rows.allSatisfy { row in
                row.action == .upsert && !row.replaces && row.present.count == columns.count && !row.present.contains(false)
            }
            return changes
        }
    }
}
