/// Column names shared by the records of one resource with one shape, defined
/// once in the body and referred to by number (spec: "Body").
struct RecordSchema: Hashable {
    var resource: UInt16
    var keyNames: [String]
    var valueNames: [String]
}

enum BodyEntryTag {
    static let schema: UInt8 = 0
}

enum RecordFlags {
    /// An update that changed the key carries the old key after its values.
    static let oldKey: UInt8 = 1
    /// The record's position is the previous record's commit with the next ordinal; no position follows.
    static let followsPrevious: UInt8 = 2
}

/// Builds a batch body record by record: the uncompressed byte stream that the
/// batch then compresses, digests and signs.
public struct BatchBodyEncoder: Sendable {
    public private(set) var resources: [String] = []
    public private(set) var recordCount = 0
    public private(set) var firstPosition: SourcePosition? = nil
    public private(set) var lastPosition: SourcePosition? = nil

    private var writer: ByteWriter
    private var resourceIndex: [String: UInt16] = [:]
    private var schemas: [RecordSchema] = []
    private var schemaIndex: [RecordSchema: UInt16] = [:]
    /// The schema each resource used last; consecutive records of a table almost always share it.
    private var lastSchemaOfResource: [Int] = []
    private var lastResource: UInt16? = nil

    public init(capacity: Int = 1 << 20) {
        writer = ByteWriter(capacity: capacity)
    }

    /// Empties the encoder for the next batch, keeping its buffer.
    public mutating func reset() {
        writer.removeAll()
        resources.removeAll(keepingCapacity: true)
        resourceIndex.removeAll(keepingCapacity: true)
        schemas.removeAll(keepingCapacity: true)
        schemaIndex.removeAll(keepingCapacity: true)
        lastSchemaOfResource.removeAll(keepingCapacity: true)
        lastResource = nil
        recordCount = 0
        firstPosition = nil
        lastPosition = nil
    }

    public var byteCount: Int { writer.count }
    /// The body so far (a copy; `withBytes` avoids it).
    public var bytes: [UInt8] { writer.bytes }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try writer.withBytes(body)
    }

    public mutating func append(_ record: ChangeRecord) throws(BatchError) {
        try Self.check(record, after: lastPosition, index: recordCount)
        let resource = try index(ofResource: record.resource)
        let schema = try schemaID(for: record, resource: resource)
        let carriesValues = record.operation == .insert || record.operation == .update

        // Index loops pass each value borrowed; `for column in` would copy (and retain) every one.
        var bound = 16 + Self.sizeBound(record.key)
        if carriesValues { bound += Self.sizeBound(record.values) }
        if let oldKey = record.oldKey { bound += Self.sizeBound(oldKey) }

        // Most records continue their transaction: same commit, next ordinal. A flag says so instead of 12 bytes.
        let follows = lastPosition.map { $0.commit == record.position.commit && $0.ordinal < .max && $0.ordinal + 1 == record.position.ordinal } ?? false
        let flags = (record.oldKey == nil ? 0 : RecordFlags.oldKey) | (follows ? RecordFlags.followsPrevious : 0)
        writer.write(upTo: bound) { cursor in
            cursor.put(record.operation.rawValue)
            cursor.put(flags)
            cursor.put(schema)
            if !follows {
                cursor.put(record.position.commit)
                cursor.put(record.position.ordinal)
            }
            cursor.put(columns: record.key)
            if carriesValues { cursor.put(columns: record.values) }
            if let oldKey = record.oldKey { cursor.put(columns: oldKey) }
        }

        if firstPosition == nil { firstPosition = record.position }
        lastPosition = record.position
        recordCount += 1
    }

    @inline(__always)
    private static func sizeBound(_ columns: [Column]) -> Int {
        columns.withUnsafeBufferPointer { buffer in
            var bound = 0
            for index in buffer.indices { bound += buffer[index].value.encodedSizeBound }
            return bound
        }
    }

    private static func check(_ record: ChangeRecord, after last: SourcePosition?, index: Int) throws(BatchError) {
        if let last, record.position <= last {
            throw .invalidInput("record \(index) at \(record.position) does not follow \(last); records must be in strictly increasing position order")
        }
        for i in record.key.indices {
            switch record.key[i].value {
            case .null, .unchanged: throw .invalidInput("record \(index): key column \(record.key[i].name) is \(record.key[i].value.typeName); keys are never NULL or unchanged")
            default: break
            }
        }
        switch record.operation {
        case .insert:
            for i in record.values.indices {
                if case .unchanged = record.values[i].value { throw .invalidInput("record \(index): an insert cannot have unchanged column \(record.values[i].name)") }
            }
            guard record.oldKey == nil else { throw .invalidInput("record \(index): only an update carries an old key") }
        case .update:
            if let oldKey = record.oldKey {
                guard oldKey.map(\.name) == record.key.map(\.name) else { throw .invalidInput("record \(index): old key columns differ from key columns") }
                guard !oldKey.contains(where: { $0.value == .null || $0.value == .unchanged }) else { throw .invalidInput("record \(index): old key values are never NULL or unchanged") }
            }
        case .delete:
            guard record.values.isEmpty, record.oldKey == nil else { throw .invalidInput("record \(index): a delete carries only its key") }
        case .truncate:
            guard record.key.isEmpty, record.values.isEmpty, record.oldKey == nil else { throw .invalidInput("record \(index): a truncate carries no columns") }
        }
    }

    private mutating func index(ofResource code: String) throws(BatchError) -> UInt16 {
        // Consecutive records nearly always share a resource; a string comparison beats hashing.
        if let last = lastResource, resources[Int(last)] == code { return last }
        if let index = resourceIndex[code] {
            lastResource = index
            return index
        }
        guard Identifier.isValid(code) else { throw .invalidInput("resource code '\(code)' must be \(Identifier.rule)") }
        guard resources.count < Int(UInt16.max) else { throw .invalidInput("more than 65535 resources in one batch") }
        let index = UInt16(resources.count)
        resources.append(code)
        resourceIndex[code] = index
        lastSchemaOfResource.append(-1)
        lastResource = index
        return index
    }

    private mutating func schemaID(for record: ChangeRecord, resource: UInt16) throws(BatchError) -> UInt16 {
        let last = lastSchemaOfResource[Int(resource)]
        if last >= 0, Self.matches(schemas[last], record) { return UInt16(last) }
        let shape = RecordSchema(resource: resource, keyNames: record.key.map(\.name),
                                 valueNames: record.operation == .insert || record.operation == .update ? record.values.map(\.name) : [])
        // A delete or truncate carries fewer columns than the resource's upserts; reuse a compatible schema.
        if record.operation == .delete || record.operation == .truncate, last >= 0,
           record.operation == .truncate || schemas[last].keyNames == shape.keyNames {
            return UInt16(last)
        }
        if let existing = schemaIndex[shape] {
            lastSchemaOfResource[Int(resource)] = Int(existing)
            return existing
        }
        try Self.validate(shape)
        guard schemas.count < Int(UInt16.max) else { throw .invalidInput("more than 65535 column layouts in one batch") }
        let id = UInt16(schemas.count)
        schemas.append(shape)
        schemaIndex[shape] = id
        lastSchemaOfResource[Int(resource)] = Int(id)
        writer.write(BodyEntryTag.schema)
        writer.write(shape.resource)
        writer.write(UInt16(shape.keyNames.count))
        writer.write(UInt16(shape.valueNames.count))
        for name in shape.keyNames + shape.valueNames { writer.write(string: name, lengthAs: UInt16.self) }
        return id
    }

    private static func matches(_ schema: RecordSchema, _ record: ChangeRecord) -> Bool {
        guard schema.keyNames.count == record.key.count else { return false }
        for i in record.key.indices where schema.keyNames[i] != record.key[i].name { return false }
        switch record.operation {
        case .insert, .update:
            guard schema.valueNames.count == record.values.count else { return false }
            for i in record.values.indices where schema.valueNames[i] != record.values[i].name { return false }
            return true
        case .delete, .truncate:
            return true
        }
    }

    private static func validate(_ shape: RecordSchema) throws(BatchError) {
        var seen = Set<String>()
        for name in shape.keyNames + shape.valueNames {
            guard (1...255).contains(name.utf8.count) else { throw .invalidInput("column name '\(name)' must be 1 to 255 bytes of UTF-8") }
            guard seen.insert(name).inserted else { throw .invalidInput("column \(name) appears twice in one record") }
        }
        guard shape.keyNames.count + shape.valueNames.count <= 1600 else { throw .invalidInput("more than 1600 columns in one record") }
    }
}

/// Reads a decompressed body back into records, one at a time, checking each
/// against the header and the limits.
public struct BatchBodyDecoder {
    private var reader: ByteReader
    private let header: BatchHeader
    private let limits: BatchLimits
    private var schemas: [RecordSchema] = []
    private var lastPosition: SourcePosition? = nil
    public private(set) var recordsRead = 0

    public init(body: UnsafeRawBufferPointer, header: BatchHeader, limits: BatchLimits = .default) {
        reader = ByteReader(body)
        self.header = header
        self.limits = limits
    }

    /// The next record, or nil once the body is exhausted and matched the header.
    public mutating func next() throws(BatchError) -> ChangeRecord? {
        while !reader.isAtEnd {
            let tag = try read("entry tag") { try $0.read(UInt8.self) }
            if tag == BodyEntryTag.schema {
                try readSchema()
                continue
            }
            guard let operation = ChangeOperation(rawValue: tag) else { throw invalid("unknown entry tag \(tag)") }
            return try readRecord(operation)
        }
        guard recordsRead == Int(header.recordCount) else {
            throw .corruptBody("the body holds \(recordsRead) records, the header declares \(header.recordCount)")
        }
        return nil
    }

    /// Every column name the schemas read so far use, each once, in order of first use.
    public var columnNames: [String] {
        var seen = Set<String>()
        return schemas.flatMap { $0.keyNames + $0.valueNames }.filter { seen.insert($0).inserted }
    }

    private func invalid(_ reason: String) -> BatchError { .invalidRecord(index: recordsRead, reason: reason) }

    private mutating func read<T>(_ what: String, _ body: (inout ByteReader) throws -> T) throws(BatchError) -> T {
        do {
            return try body(&reader)
        } catch ByteReader.Failure.invalidUTF8 {
            throw .invalidRecord(index: recordsRead, reason: "the \(what) is not valid UTF-8")
        } catch {
            throw .invalidRecord(index: recordsRead, reason: "the body ends inside the \(what)")
        }
    }

    private mutating func readSchema() throws(BatchError) {
        let resource = try read("schema") { try $0.read(UInt16.self) }
        guard Int(resource) < header.resources.count else { throw invalid("schema names resource \(resource), the header lists \(header.resources.count)") }
        let keyCount = Int(try read("schema") { try $0.read(UInt16.self) })
        let valueCount = Int(try read("schema") { try $0.read(UInt16.self) })
        guard keyCount + valueCount <= limits.maxColumns else { throw invalid("schema has \(keyCount + valueCount) columns, the limit is \(limits.maxColumns)") }
        guard schemas.count < Int(UInt16.max) else { throw invalid("too many schemas") }
        var names = [String]()
        names.reserveCapacity(keyCount + valueCount)
        for _ in 0..<(keyCount + valueCount) {
            let name = try read("column name") { try $0.readString(lengthAs: UInt16.self) }
            guard (1...255).contains(name.utf8.count) else { throw invalid("a column name is empty or longer than 255 bytes") }
            names.append(name)
        }
        guard Set(names).count == names.count else { throw invalid("a schema names a column twice") }
        schemas.append(RecordSchema(resource: resource, keyNames: Array(names.prefix(keyCount)), valueNames: Array(names.dropFirst(keyCount))))
    }

    private mutating func readValues(_ names: [String], _ what: String) throws(BatchError) -> [Column] {
        var columns = [Column]()
        columns.reserveCapacity(names.count)
        for name in names {
            do {
                columns.append(Column(name, try reader.readValue()))
            } catch {
                switch error {
                case .truncated: throw invalid("the body ends inside \(what) column \(name)")
                case .invalid(let reason): throw invalid("\(what) column \(name): \(reason)")
                }
            }
        }
        return columns
    }

    private mutating func readRecord(_ operation: ChangeOperation) throws(BatchError) -> ChangeRecord {
        guard recordsRead < Int(header.recordCount) else { throw .corruptBody("the body holds more records than the header's \(header.recordCount)") }
        let flags = try read("record flags") { try $0.read(UInt8.self) }
        guard flags & ~(RecordFlags.oldKey | RecordFlags.followsPrevious) == 0 else { throw invalid("unknown record flags \(flags)") }
        guard flags & RecordFlags.oldKey == 0 || operation == .update else { throw invalid("only an update carries an old key") }
        let schemaID = Int(try read("schema id") { try $0.read(UInt16.self) })
        guard schemaID < schemas.count else { throw invalid("refers to schema \(schemaID) before it is defined") }
        let schema = schemas[schemaID]
        let position: SourcePosition
        if flags & RecordFlags.followsPrevious != 0 {
            guard let lastPosition, lastPosition.ordinal < .max else { throw invalid("follows a previous position that does not exist") }
            position = SourcePosition(commit: lastPosition.commit, ordinal: lastPosition.ordinal + 1)
        } else {
            position = SourcePosition(commit: try read("position") { try $0.read(UInt64.self) },
                                      ordinal: try read("position") { try $0.read(UInt32.self) })
        }
        if let lastPosition, position <= lastPosition { throw invalid("position \(position) does not follow \(lastPosition)") }
        if recordsRead == 0, position != header.firstPosition { throw invalid("first position \(position) differs from the header's \(header.firstPosition)") }
        if recordsRead + 1 == Int(header.recordCount), position != header.lastPosition { throw invalid("last position \(position) differs from the header's \(header.lastPosition)") }

        var key: [Column] = []
        var values: [Column] = []
        var oldKey: [Column]? = nil
        if operation != .truncate {
            key = try readValues(schema.keyNames, "key")
            for column in key where column.value == .null || column.value == .unchanged {
                throw invalid("key column \(column.name) is \(column.value.typeName)")
            }
        }
        if operation == .insert || operation == .update {
            values = try readValues(schema.valueNames, "value")
            if operation == .insert, values.contains(where: { $0.value == .unchanged }) { throw invalid("an insert has an unchanged column") }
        }
        if flags & RecordFlags.oldKey != 0 {
            let old = try readValues(schema.keyNames, "old key")
            for column in old where column.value == .null || column.value == .unchanged {
                throw invalid("old key column \(column.name) is \(column.value.typeName)")
            }
            oldKey = old
        }
        lastPosition = position
        recordsRead += 1
        return ChangeRecord(operation: operation, resource: header.resources[Int(schema.resource)], position: position,
                            key: key, values: values, oldKey: oldKey)
    }
}
