/// The one-byte tags that start every value in a batch body (spec: "Values").
enum ValueTag: UInt8 {
    case null = 0
    case unchanged = 1
    case boolFalse = 2
    case boolTrue = 3
    case int2 = 4
    case int4 = 5
    case int8 = 6
    case float4 = 7
    case float8 = 8
    case numeric = 9
    case text = 10
    case bytea = 11
    case date = 12
    case time = 13
    case timestamp = 14
    case timestamptz = 15
    case uuid = 16
    case json = 17
    case jsonb = 18
    case other = 19
}

extension Value {
    /// The most bytes `RawCursor.put(value:)` writes for this value.
    var encodedSizeBound: Int {
        switch self {
        case .null, .unchanged, .bool: return 1
        case .int2: return 3
        case .int4, .float4, .date: return 5
        case .int8, .float8, .time, .timestamp, .timestamptz: return 9
        case .uuid: return 17
        case .numeric(let v): return 5 + v.text.utf8.count
        case .text(let v), .json(let v), .jsonb(let v): return 5 + v.utf8.count
        case .bytea(let v): return 5 + v.count
        case let .other(typeName, text): return 6 + typeName.utf8.count + text.utf8.count
        }
    }
}

extension RawCursor {
    @inline(__always)
    mutating func putTagged(_ tag: ValueTag, string: String) {
        put(tag.rawValue)
        putVarintPrefixed(string: string)
    }

    /// Through an unsafe buffer, each value is read in place instead of being copied out of the array.
    @inline(__always)
    mutating func put(columns: [Column]) {
        columns.withUnsafeBufferPointer { buffer in
            for index in buffer.indices { put(value: buffer[index].value) }
        }
    }

    mutating func put(value: Value) {
        switch value {
        case .null: put(ValueTag.null.rawValue)
        case .unchanged: put(ValueTag.unchanged.rawValue)
        case .bool(let v): put(v ? ValueTag.boolTrue.rawValue : ValueTag.boolFalse.rawValue)
        case .int2(let v):
            put(ValueTag.int2.rawValue)
            put(v)
        case .int4(let v):
            put(ValueTag.int4.rawValue)
            put(v)
        case .int8(let v):
            put(ValueTag.int8.rawValue)
            put(v)
        case .float4(let v):
            put(ValueTag.float4.rawValue)
            put(v.bitPattern)
        case .float8(let v):
            put(ValueTag.float8.rawValue)
            put(v.bitPattern)
        case .numeric(let v): putTagged(.numeric, string: v.text)
        case .text(let v): putTagged(.text, string: v)
        case .bytea(let v):
            put(ValueTag.bytea.rawValue)
            putVarint(UInt32(truncatingIfNeeded: v.count))
            v.withUnsafeBytes { put(raw: $0) }
        case .date(let v):
            put(ValueTag.date.rawValue)
            put(v)
        case .time(let v):
            put(ValueTag.time.rawValue)
            put(v)
        case .timestamp(let v):
            put(ValueTag.timestamp.rawValue)
            put(v)
        case .timestamptz(let v):
            put(ValueTag.timestamptz.rawValue)
            put(v)
        case .uuid(let v):
            put(ValueTag.uuid.rawValue)
            put(v.high)
            put(v.low)
        case .json(let v): putTagged(.json, string: v)
        case .jsonb(let v): putTagged(.jsonb, string: v)
        case let .other(typeName, text):
            put(ValueTag.other.rawValue)
            put(string: typeName, lengthAs: UInt8.self)
            putVarintPrefixed(string: text)
        }
    }
}

/// Why a value could not be read; the body decoder adds the record and column.
enum ValueDecodingFailure: Error {
    case truncated
    case invalid(String)
}

extension ByteReader {
    mutating func readValue() throws(ValueDecodingFailure) -> Value {
        do {
            let raw = try read(UInt8.self)
            guard let tag = ValueTag(rawValue: raw) else { throw ValueDecodingFailure.invalid("unknown value tag \(raw)") }
            switch tag {
            case .null: return .null
            case .unchanged: return .unchanged
            case .boolFalse: return .bool(false)
            case .boolTrue: return .bool(true)
            case .int2: return .int2(try read(Int16.self))
            case .int4: return .int4(try read(Int32.self))
            case .int8: return .int8(try read(Int64.self))
            case .float4: return .float4(Float(bitPattern: try read(UInt32.self)))
            case .float8: return .float8(Double(bitPattern: try read(UInt64.self)))
            case .numeric:
                let start = offset
                let raw = try readBytes(Int(try readVarint()))
                // Checked on the bytes: canonical numerics are ASCII, so no separate UTF-8 check is needed.
                guard Numeric.isCanonical(raw.bindMemory(to: UInt8.self)) else {
                    throw ValueDecodingFailure.invalid("numeric at byte \(start) is not in canonical form")
                }
                return .numeric(Numeric(canonical: String(decoding: raw, as: UTF8.self)))
            case .text: return .text(try readVarintString())
            case .bytea: return .bytea(try readVarintBlob())
            case .date:
                let days = try read(Int32.self)
                guard days == Value.dateInfinity || days == Value.dateMinusInfinity
                    || (Int64(days) >= CivilCalendar.firstDay && Int64(days) <= CivilCalendar.lastDateDay) else {
                    throw ValueDecodingFailure.invalid("date \(days) is outside PostgreSQL's range")
                }
                return .date(days)
            case .time:
                let micros = try read(Int64.self)
                guard micros >= 0, micros <= CivilCalendar.microsecondsPerDay else { throw ValueDecodingFailure.invalid("time \(micros) is outside 00:00:00...24:00:00") }
                return .time(micros)
            case .timestamp, .timestamptz:
                let micros = try read(Int64.self)
                guard micros == Value.timestampInfinity || micros == Value.timestampMinusInfinity
                    || (micros >= CivilCalendar.firstTimestamp && micros < CivilCalendar.endOfTimestamps) else {
                    throw ValueDecodingFailure.invalid("timestamp \(micros) is outside PostgreSQL's range")
                }
                return tag == .timestamp ? .timestamp(micros) : .timestamptz(micros)
            case .uuid: return .uuid(UUIDBytes(high: try read(UInt64.self), low: try read(UInt64.self)))
            case .json: return .json(try readVarintString())
            case .jsonb: return .jsonb(try readVarintString())
            case .other:
                let typeName = try readString(lengthAs: UInt8.self)
                guard !typeName.isEmpty else { throw ValueDecodingFailure.invalid("an 'other' value has an empty type name") }
                return .other(typeName: typeName, text: try readVarintString())
            }
        } catch let failure as ValueDecodingFailure {
            throw failure
        } catch let failure as ByteReader.Failure {
            switch failure {
            case .truncated: throw .truncated
            case .invalidUTF8: throw .invalid("a string is not valid UTF-8")
            case .invalidVarint: throw .invalid("a length is not a shortest-form varint of at most 32 bits")
            }
        } catch {
            throw .invalid("\(error)")
        }
    }
}

extension Value {
    /// Values in the batch body's value encoding, one after another: a canonical byte form
    /// of a row (type tags included), for hashing and comparing rows.
    public static func canonicalEncoding(_ values: [Value]) -> [UInt8] {
        let bound = values.reduce(0) { $0 + $1.encodedSizeBound }
        return [UInt8](unsafeUninitializedCapacity: max(bound, 1)) { buffer, count in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            var cursor = RawCursor(base)
            for value in values { cursor.put(value: value) }
            count = cursor.pointer - base
        }
    }
}

extension ByteReader {
    /// `count` values in the canonical encoding (`Value.canonicalEncoding`).
    public mutating func readCanonicalValues(count: Int) throws -> [Value] {
        var values: [Value] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            do {
                values.append(try readValue())
            } catch {
                throw BatchError.corruptBody("canonical value \(values.count) of \(count) at byte \(offset): \(error)")
            }
        }
        return values
    }
}

extension Column {
    /// A row as bytes: a varint column count, then each column's name (varint-prefixed
    /// UTF-8) and value in the batch body's encoding. The hub keeps its copy of each
    /// resource in this form: typed like the batch, and written and read without parsing text.
    public static func rowEncoding(_ columns: [Column]) -> [UInt8] {
        let bound = columns.reduce(5) { $0 + 5 + $1.name.utf8.count + $1.value.encodedSizeBound }
        return [UInt8](unsafeUninitializedCapacity: bound) { buffer, count in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            var cursor = RawCursor(base)
            cursor.putVarint(UInt32(truncatingIfNeeded: columns.count))
            columns.withUnsafeBufferPointer { columns in
                for index in columns.indices {
                    cursor.putVarintPrefixed(string: columns[index].name)
                    cursor.put(value: columns[index].value)
                }
            }
            count = cursor.pointer - base
        }
    }

    /// Reads `rowEncoding`'s bytes back; throws on anything but one whole row.
    public static func decodeRow(_ bytes: [UInt8]) throws -> [Column] {
        try bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            do {
                let count = Int(try reader.readVarint())
                // Each column takes at least two bytes: the count cannot claim more than the bytes hold.
                guard count <= reader.remaining / 2 else { throw BatchError.corruptBody("row of \(count) columns in \(raw.count) bytes") }
                var columns: [Column] = []
                columns.reserveCapacity(count)
                for _ in 0..<count {
                    let name = try reader.readVarintString()
                    columns.append(Column(name, try reader.readValue()))
                }
                guard reader.isAtEnd else { throw BatchError.corruptBody("\(reader.remaining) bytes after a row of \(count) columns") }
                return columns
            } catch let error as BatchError {
                throw error
            } catch {
                throw BatchError.corruptBody("row at byte \(reader.offset): \(error)")
            }
        }
    }
}
