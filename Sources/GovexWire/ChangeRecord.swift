/// What happened to one row (or, for truncate, to a whole resource).
public enum ChangeOperation: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case insert = 1
    case update = 2
    case delete = 3
    case truncate = 4

    public var description: String {
        switch self {
        case .insert: return "insert"
        case .update: return "update"
        case .delete: return "delete"
        case .truncate: return "truncate"
        }
    }
}

/// Where a change sits in its source's history. A change's own LSN is neither
/// unique nor monotonic across transactions; the commit position of its
/// transaction plus its ordinal inside that transaction is both.
public struct SourcePosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var commit: UInt64
    public var ordinal: UInt32

    public init(commit: UInt64, ordinal: UInt32) {
        self.commit = commit
        self.ordinal = ordinal
    }

    public static func < (lhs: SourcePosition, rhs: SourcePosition) -> Bool {
        (lhs.commit, lhs.ordinal) < (rhs.commit, rhs.ordinal)
    }

    public var description: String { "\(LSN.format(commit))#\(ordinal)" }
}

/// PostgreSQL's `XXXXXXXX/XXXXXXXX` spelling of a 64-bit WAL position.
public enum LSN {
    public static func format(_ lsn: UInt64) -> String {
        String(lsn >> 32, radix: 16, uppercase: true) + "/" + String(lsn & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func parse(_ text: String) -> UInt64? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let high = UInt32(parts[0], radix: 16), let low = UInt32(parts[1], radix: 16) else { return nil }
        return UInt64(high) << 32 | UInt64(low)
    }
}

/// A named column value; batches carry rows as ordered lists of these.
public struct Column: Sendable, Hashable {
    public var name: String
    public var value: Value

    public init(_ name: String, _ value: Value) {
        self.name = name
        self.value = value
    }
}

/// One captured change.
///
/// - `key` holds the row's key columns (for an update, the key after the change);
/// - `values` holds the non-key columns of an insert or update, where an update
///   may mark columns `.unchanged`; deletes and truncates carry none;
/// - `oldKey` is present only when an update changed the key.
public struct ChangeRecord: Sendable, Hashable {
    public var operation: ChangeOperation
    public var resource: String
    public var position: SourcePosition
    public var key: [Column]
    public var values: [Column]
    public var oldKey: [Column]?

    public init(operation: ChangeOperation, resource: String, position: SourcePosition,
                key: [Column] = [], values: [Column] = [], oldKey: [Column]? = nil) {
        self.operation = operation
        self.resource = resource
        self.position = position
        self.key = key
        self.values = values
        self.oldKey = oldKey
    }
}
