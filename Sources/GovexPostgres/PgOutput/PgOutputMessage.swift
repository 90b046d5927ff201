/// One message of PostgreSQL's logical replication protocol (the `pgoutput`
/// plugin, protocol version 1, plus logical decoding messages).
public enum PgOutputMessage: Sendable, Equatable {
    case begin(finalLSN: UInt64, commitTime: Int64, xid: UInt32)
    case commit(flags: UInt8, commitLSN: UInt64, endLSN: UInt64, commitTime: Int64)
    case origin(commitLSN: UInt64, name: String)
    case relation(RelationDescription)
    case type(oid: UInt32, namespace: String, name: String)
    case insert(relation: UInt32, new: [TupleValue])
    /// `old` is the changed key (replica identity key changed) or the whole old row (REPLICA IDENTITY FULL).
    case update(relation: UInt32, old: OldTuple?, new: [TupleValue])
    case delete(relation: UInt32, old: OldTuple)
    case truncate(relations: [UInt32], cascade: Bool, restartIdentity: Bool)
    case message(transactional: Bool, lsn: UInt64, prefix: String, content: [UInt8])
}

/// A column of a tuple as pgoutput sends it.
public enum TupleValue: Sendable, Equatable {
    case null
    /// A TOASTed value that did not change; pgoutput does not resend it.
    case unchangedToast
    /// The value's text form, in the database's encoding.
    case text([UInt8])
    case binary([UInt8])
}

public enum OldTuple: Sendable, Equatable {
    /// Only the replica identity's columns are meaningful; the others are NULL.
    case key([TupleValue])
    /// The whole old row (REPLICA IDENTITY FULL).
    case full([TupleValue])

    public var values: [TupleValue] {
        switch self {
        case .key(let values), .full(let values): return values
        }
    }
}

public struct RelationDescription: Sendable, Equatable {
    public struct Column: Sendable, Equatable {
        public var isKey: Bool
        public var name: String
        public var typeOID: UInt32
        public var typeModifier: Int32

        public init(isKey: Bool, name: String, typeOID: UInt32, typeModifier: Int32) {
            self.isKey = isKey
            self.name = name
            self.typeOID = typeOID
            self.typeModifier = typeModifier
        }
    }

    public var id: UInt32
    /// Empty for pg_catalog.
    public var namespace: String
    public var name: String
    /// `d` default (primary key), `n` nothing, `f` full, `i` index, as in pg_class.relreplident.
    public var replicaIdentity: UInt8
    public var columns: [Column]

    public init(id: UInt32, namespace: String, name: String, replicaIdentity: UInt8, columns: [Column]) {
        self.id = id
        self.namespace = namespace
        self.name = name
        self.replicaIdentity = replicaIdentity
        self.columns = columns
    }
}

public enum PgOutputError: Error, Equatable, CustomStringConvertible {
    case truncated(message: String, offset: Int)
    case unknownMessage(UInt8)
    case invalid(message: String, reason: String)
    case trailingBytes(message: String, count: Int)

    public var description: String {
        switch self {
        case let .truncated(message, offset): return "pgoutput \(message) message ends early at byte \(offset)"
        case .unknownMessage(let byte): return "unknown pgoutput message type \(byte) ('\(Unicode.Scalar(byte))')"
        case let .invalid(message, reason): return "invalid pgoutput \(message) message: \(reason)"
        case let .trailingBytes(message, count): return "pgoutput \(message) message has \(count) unexpected trailing bytes"
        }
    }
}
