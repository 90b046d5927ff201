/// Where one captured table's initial copy stands.
public struct TableCopy: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        /// To be copied; none of its rows has been spooled by a copy.
        case pending
        /// A copy began: some of its rows may be at the hub, so the next copy starts with a truncate.
        case copying
        /// Copied whole under a snapshot taken at this position: the stream's changes to the
        /// table that committed before it are already in the copy.
        case copied(at: UInt64)
    }

    /// The table the resource was copied from, as `schema.table`: a mapping moved to another
    /// table is copied again.
    public var table: String
    public var phase: Phase

    public init(table: String, phase: Phase) {
        self.table = table
        self.phase = phase
    }

    public init(_ mapping: TableMapping, phase: Phase) {
        self.init(table: Self.identity(mapping), phase: phase)
    }

    public var isCopied: Bool { if case .copied = phase { true } else { false } }

    static func identity(_ mapping: TableMapping) -> String { mapping.schema + "." + mapping.table }

    static let keyPrefix = "table."

    /// `copied 12345 public.residents`; bytes outside printable ASCII (and `%`) as `%XX`, so
    /// that any table name stays on its line.
    var stateText: String {
        let name = table.utf8.map { byte -> String in
            (0x21...0x7e).contains(byte) && byte != UInt8(ascii: "%") ? String(UnicodeScalar(byte)) : "%" + Self.hex(byte)
        }.joined()
        switch phase {
        case .pending: return "pending 0 " + name
        case .copying: return "copying 0 " + name
        case .copied(let position): return "copied \(position) " + name
        }
    }

    init?(stateText: String) {
        let parts = stateText.split(separator: " ", maxSplits: 2).map(String.init)
        guard parts.count == 3, let position = UInt64(parts[1]), let table = Self.unescape(parts[2]) else { return nil }
        switch parts[0] {
        case "pending": phase = .pending
        case "copying": phase = .copying
        case "copied": phase = .copied(at: position)
        default: return nil
        }
        self.table = table
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }

    private static func unescape(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var input = Array(text.utf8)[...]
        while let byte = input.popFirst() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard input.count >= 2, let value = UInt8(String(decoding: input.prefix(2), as: UTF8.self), radix: 16) else { return nil }
            bytes.append(value)
            input = input.dropFirst(2)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// Which tables a capture run copies before it streams, decided from the mapping, what the
/// state says was copied, and whether the slot survived. Pure, as PostgreSQL's table
/// synchronisation is a state per table: a table copied under a snapshot at position P
/// needs only the stream's changes from P on, so a copy interrupted by a crash goes on with
/// the tables not yet copied, and a table published later is copied alone.
public struct SnapshotPlan: Sendable, Equatable {
    /// The tables to copy, in mapping order.
    public var copy: [TableMapping]
    /// The resources whose copy starts with a truncate: rows of an earlier, unfinished or
    /// lost copy may be at the hub, and rows deleted since must not stay there.
    public var truncateFirst: Set<String>
    /// The state's tables once planned: unmapped resources forgotten (published again
    /// later, they are copied again), the tables to copy pending or copying.
    public var tables: [String: TableCopy]

    public init(mappings: [TableMapping], tables recorded: [String: TableCopy], slotExists: Bool, legacySnapshotComplete: Bool = false) {
        var tables: [String: TableCopy] = [:]
        copy = []
        truncateFirst = []
        for mapping in mappings {
            var entry = recorded[mapping.resource]
            if entry == nil, legacySnapshotComplete {
                // Copied by a version that kept one flag for all tables; no change needs skipping.
                entry = TableCopy(mapping, phase: .copied(at: 0))
            }
            let sameTable = entry?.table == TableCopy.identity(mapping)
            switch entry?.phase {
            case .copied? where slotExists && sameTable:
                tables[mapping.resource] = entry
                continue
            case .copied?, .copying?:
                // Rows of the resource are at the hub: of a lost slot's stream, another
                // table, or a copy a crash cut short.
                tables[mapping.resource] = TableCopy(mapping, phase: .copying)
                truncateFirst.insert(mapping.resource)
            case .pending?, nil:
                tables[mapping.resource] = TableCopy(mapping, phase: .pending)
            }
            copy.append(mapping)
        }
        self.tables = tables
    }
}
