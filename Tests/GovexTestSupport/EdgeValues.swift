import GovexWire

/// One column of the edge-case table: its PostgreSQL type, the text PostgreSQL
/// prints for it (nil = NULL) and the value govex must read it as.
public struct EdgeColumn: Sendable {
    public let name: String
    public let sqlType: String
    public let valueType: ValueType
    public let text: String?
    public let value: Value

    public init(_ name: String, _ sqlType: String, _ valueType: ValueType, _ text: String?, _ value: Value) {
        self.name = name
        self.sqlType = sqlType
        self.valueType = valueType
        self.text = text
        self.value = value
    }
}

/// Every supported type's edge cases, one row per list; each row is a table row in
/// the integration test and a record in the test vectors.
public enum EdgeValues {
    static let uuid = UUIDBytes(high: 0xA0EE_BC99_9C0B_4EF8, low: 0xBB6D_6BB9_BD38_0A11)

    public static let rows: [[EdgeColumn]] = [
        [
            EdgeColumn("id", "int8", .int8, "1", .int8(1)),
            EdgeColumn("flag", "bool", .bool, "t", .bool(true)),
            EdgeColumn("small", "int2", .int2, "-32768", .int2(.min)),
            EdgeColumn("medium", "int4", .int4, "2147483647", .int4(.max)),
            EdgeColumn("big", "int8", .int8, "-9223372036854775808", .int8(.min)),
            EdgeColumn("amount", "numeric", .numeric, "12345678901234567890.123456789000", .numeric(try! Numeric("12345678901234567890.123456789000"))),
            EdgeColumn("real4", "float4", .float4, "3.4028235e+38", .float4(.greatestFiniteMagnitude)),
            EdgeColumn("real8", "float8", .float8, "-0", .float8(-0.0)),
            EdgeColumn("name", "text", .text, "张伟", .text("张伟")),
            EdgeColumn("code", "varchar(18)", .text, "91350100M000100Y43", .text("91350100M000100Y43")),
            EdgeColumn("blob", "bytea", .bytea, "\\x00ff10", .bytea([0x00, 0xFF, 0x10])),
            EdgeColumn("born", "date", .date, "1949-10-01", .date(-18354)),
            EdgeColumn("at", "time", .time, "24:00:00", .time(86_400_000_000)),
            EdgeColumn("seen", "timestamp", .timestamp, "2000-01-01 00:00:00.000001", .timestamp(1)),
            EdgeColumn("stamped", "timestamptz", .timestamptz, "1999-12-31 23:59:59.5+00", .timestamptz(-500_000)),
            EdgeColumn("ref", "uuid", .uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", .uuid(uuid)),
            EdgeColumn("doc", "json", .json, "{\"a\": [1, 2.50, \"三\"]}", .json("{\"a\": [1, 2.50, \"三\"]}")),
            EdgeColumn("docb", "jsonb", .jsonb, "{\"a\": [1, 2.50, \"三\"]}", .jsonb("{\"a\": [1, 2.50, \"三\"]}")),
            EdgeColumn("span", "interval", .other("interval"), "1 year 2 mons 3 days 04:05:06.7", .other(typeName: "interval", text: "1 year 2 mons 3 days 04:05:06.7")),
        ],
        [
            EdgeColumn("id", "int8", .int8, "2", .int8(2)),
            EdgeColumn("flag", "bool", .bool, "f", .bool(false)),
            EdgeColumn("small", "int2", .int2, "32767", .int2(.max)),
            EdgeColumn("medium", "int4", .int4, "-2147483648", .int4(.min)),
            EdgeColumn("big", "int8", .int8, "9223372036854775807", .int8(.max)),
            EdgeColumn("amount", "numeric", .numeric, "NaN", .numeric(try! Numeric("NaN"))),
            EdgeColumn("real4", "float4", .float4, "NaN", .float4(.nan)),
            EdgeColumn("real8", "float8", .float8, "Infinity", .float8(.infinity)),
            EdgeColumn("name", "text", .text, "", .text("")),
            EdgeColumn("code", "varchar(18)", .text, "  trailing  ", .text("  trailing  ")),
            EdgeColumn("blob", "bytea", .bytea, "\\x", .bytea([])),
            EdgeColumn("born", "date", .date, "infinity", .date(Value.dateInfinity)),
            EdgeColumn("at", "time", .time, "00:00:00", .time(0)),
            EdgeColumn("seen", "timestamp", .timestamp, "-infinity", .timestamp(Value.timestampMinusInfinity)),
            EdgeColumn("stamped", "timestamptz", .timestamptz, "infinity", .timestamptz(Value.timestampInfinity)),
            EdgeColumn("ref", "uuid", .uuid, "00000000-0000-0000-0000-000000000000", .uuid(UUIDBytes(high: 0, low: 0))),
            EdgeColumn("doc", "json", .json, "\"\"", .json("\"\"")),
            EdgeColumn("docb", "jsonb", .jsonb, "null", .jsonb("null")),
            EdgeColumn("span", "interval", .other("interval"), "-00:00:00.000001", .other(typeName: "interval", text: "-00:00:00.000001")),
        ],
        [
            EdgeColumn("id", "int8", .int8, "3", .int8(3)),
            EdgeColumn("flag", "bool", .bool, nil, .null),
            EdgeColumn("small", "int2", .int2, "0", .int2(0)),
            EdgeColumn("medium", "int4", .int4, nil, .null),
            EdgeColumn("big", "int8", .int8, "0", .int8(0)),
            EdgeColumn("amount", "numeric", .numeric, "-Infinity", .numeric(try! Numeric("-Infinity"))),
            EdgeColumn("real4", "float4", .float4, "-Infinity", .float4(-.infinity)),
            EdgeColumn("real8", "float8", .float8, "5e-324", .float8(.leastNonzeroMagnitude)),
            EdgeColumn("name", "text", .text, nil, .null),
            EdgeColumn("code", "varchar(18)", .text, "𠀀😀\u{7f}\"\\\n\t", .text("𠀀😀\u{7f}\"\\\n\t")),
            EdgeColumn("blob", "bytea", .bytea, nil, .null),
            EdgeColumn("born", "date", .date, "4714-11-24 BC", .date(-2_451_545)),
            EdgeColumn("at", "time", .time, "23:59:59.999999", .time(86_399_999_999)),
            EdgeColumn("seen", "timestamp", .timestamp, "0044-03-15 12:00:00 BC", .timestamp(-64_464_465_600_000_000)),
            EdgeColumn("stamped", "timestamptz", .timestamptz, "-infinity", .timestamptz(Value.timestampMinusInfinity)),
            EdgeColumn("ref", "uuid", .uuid, nil, .null),
            EdgeColumn("doc", "json", .json, nil, .null),
            EdgeColumn("docb", "jsonb", .jsonb, "{\"k\": \"a\\\"b\\\\c\\t\"}", .jsonb("{\"k\": \"a\\\"b\\\\c\\t\"}")),
            EdgeColumn("span", "interval", .other("interval"), nil, .null),
        ],
        [
            EdgeColumn("id", "int8", .int8, "4", .int8(4)),
            EdgeColumn("flag", "bool", .bool, "t", .bool(true)),
            EdgeColumn("small", "int2", .int2, "-1", .int2(-1)),
            EdgeColumn("medium", "int4", .int4, "0", .int4(0)),
            EdgeColumn("big", "int8", .int8, "-1", .int8(-1)),
            EdgeColumn("amount", "numeric", .numeric, "0.00", .numeric(try! Numeric("0.00"))),
            EdgeColumn("real4", "float4", .float4, "1e-45", .float4(.leastNonzeroMagnitude)),
            EdgeColumn("real8", "float8", .float8, "0.1", .float8(0.1)),
            EdgeColumn("name", "text", .text, "NULL", .text("NULL")),
            EdgeColumn("code", "varchar(18)", .text, "\\N", .text("\\N")),
            EdgeColumn("blob", "bytea", .bytea, "\\x5c4e", .bytea([0x5C, 0x4E])),
            EdgeColumn("born", "date", .date, "5874897-12-31", .date(2_145_031_948)),
            EdgeColumn("at", "time", .time, "12:34:56.7", .time(45_296_700_000)),
            EdgeColumn("seen", "timestamp", .timestamp, "294276-12-31 23:59:59.999999", .timestamp(9_223_371_331_199_999_999)),
            EdgeColumn("stamped", "timestamptz", .timestamptz, "4714-11-24 00:00:00+00 BC", .timestamptz(-211_813_488_000_000_000)),
            EdgeColumn("ref", "uuid", .uuid, "ffffffff-ffff-ffff-ffff-ffffffffffff", .uuid(UUIDBytes(high: .max, low: .max))),
            EdgeColumn("doc", "json", .json, "[]", .json("[]")),
            EdgeColumn("docb", "jsonb", .jsonb, "{}", .jsonb("{}")),
            EdgeColumn("span", "interval", .other("interval"), "00:00:00", .other(typeName: "interval", text: "00:00:00")),
        ],
    ]

    public static var columnNames: [String] { rows[0].map(\.name) }

    /// The rows as insert records of `resource`, keyed by `id`, one transaction.
    public static func insertRecords(resource: String, commit: UInt64) -> [ChangeRecord] {
        rows.enumerated().map { index, row in
            ChangeRecord(operation: .insert, resource: resource, position: SourcePosition(commit: commit, ordinal: UInt32(index)),
                         key: [Column(row[0].name, row[0].value)],
                         values: row.dropFirst().map { Column($0.name, $0.value) })
        }
    }
}
