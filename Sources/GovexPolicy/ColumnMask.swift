import Crypto
import GovexWire

/// How the hub hides a column's value from one subscription.
///
/// Masks work on the value's text form and deliver text: a subscriber's column that
/// receives a masked value is a text column. A key column is never masked (rows would no
/// longer line up); it may only be pseudonymised, which is stable for the subscription.
public enum ColumnMask: Sendable, Equatable, CustomStringConvertible {
    /// Keep the first and last characters, replace the others with `*`:
    /// `keep(6,4)` turns `11010519491231002X` into `110105********002X`.
    case keep(first: Int, last: Int)
    /// The value becomes `***` (NULL stays NULL, so absence is still visible).
    case redact
    /// The value becomes NULL.
    case null
    /// HMAC-SHA256 of the text form under the subscription's secret, 32 hex digits: equal
    /// values give equal pseudonyms within a subscription, unrelated ones across subscriptions.
    case pseudonym

    public struct SpecError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// `keep(6,4)`, `redact`, `null` or `pseudonym`.
    public init(spec: String) throws(SpecError) {
        let text = spec.filter { !$0.isWhitespace }
        switch text {
        case "redact": self = .redact
        case "null": self = .null
        case "pseudonym": self = .pseudonym
        default:
            guard text.hasPrefix("keep("), text.hasSuffix(")") else {
                throw SpecError(description: "mask '\(spec)' must be keep(FIRST,LAST), redact, null or pseudonym")
            }
            let numbers = text.dropFirst(5).dropLast().split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
            guard numbers.count == 2, let first = numbers[0], let last = numbers[1], first >= 0, last >= 0, first + last <= 64 else {
                throw SpecError(description: "mask '\(spec)': keep takes two counts of characters, e.g. keep(6,4)")
            }
            self = .keep(first: first, last: last)
        }
    }

    public var description: String {
        switch self {
        case .keep(let first, let last): return "keep(\(first),\(last))"
        case .redact: return "redact"
        case .null: return "null"
        case .pseudonym: return "pseudonym"
        }
    }

    public static let pseudonymLength = 32

    /// The masked value. NULL stays NULL (except under `null`, trivially); the unchanged
    /// marker stays itself, since the subscriber keeps what it has, which was masked too.
    public func apply(to value: Value, secret: [UInt8]) -> Value {
        switch value {
        case .null, .unchanged: return value
        default: break
        }
        let text = value.postgresText ?? ""
        switch self {
        case .null:
            return .null
        case .redact:
            return .text("***")
        case .pseudonym:
            let code = HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: secret))
            return .text(String(Hex.encode(Array(code)).prefix(Self.pseudonymLength)))
        case .keep(let first, let last):
            let characters = Array(text)
            guard characters.count > first + last else { return .text(String(repeating: "*", count: characters.count)) }
            return .text(String(characters.prefix(first)) + String(repeating: "*", count: characters.count - first - last)
                         + String(characters.suffix(last)))
        }
    }
}

/// What one subscription may see of its resource: columns, rows and masks.
public struct SharingPolicy: Sendable, Equatable {
    public var columns: [String]
    public var filter: RowFilter?
    public var masks: [String: ColumnMask]
    /// The key of this subscription's pseudonyms.
    public var secret: [UInt8]

    public init(columns: [String], filter: RowFilter? = nil, masks: [String: ColumnMask] = [:], secret: [UInt8] = []) {
        self.columns = columns
        self.filter = filter
        self.masks = masks
        self.secret = secret
    }

    /// Checks masks against the resource's key: a key column may only be pseudonymised.
    public static func checkMasks(_ masks: [String: ColumnMask], key: [String], columns: [String]) -> String? {
        for (column, mask) in masks.sorted(by: { $0.key < $1.key }) {
            guard columns.contains(column) else { return "mask on \(column), which the subscription does not receive" }
            if key.contains(column), mask != .pseudonym {
                return "key column \(column) cannot be masked with \(mask) (rows would no longer line up); use pseudonym"
            }
        }
        return nil
    }

    /// The records one subscription receives from `records` of `resource`, in order:
    /// other resources dropped, columns limited, rows outside the filter dropped (an
    /// update that leaves the filter becomes a delete, so the subscriber lets go of the
    /// row), masks applied. Returns nil when nothing changed.
    public func apply(to records: [ChangeRecord], resource: String) throws(RowFilterError) -> [ChangeRecord]? {
        var out: [ChangeRecord] = []
        out.reserveCapacity(records.count)
        var changed = false
        let allowed = Set(columns)
        for record in records {
            guard record.resource == resource else {
                changed = true
                continue
            }
            var shaped = record
            shaped.values = record.values.filter { allowed.contains($0.name) }
            if shaped.values.count != record.values.count { changed = true }
            if filter != nil, record.operation == .insert || record.operation == .update {
                if try !admits(record.key + record.values) {
                    changed = true
                    guard record.operation == .update else { continue }
                    for key in [record.oldKey, record.key].compactMap({ $0 }) {
                        out.append(masked(ChangeRecord(operation: .delete, resource: resource, position: record.position, key: key)))
                    }
                    continue
                }
            }
            if !masks.isEmpty {
                let before = shaped
                shaped = masked(shaped)
                if shaped != before { changed = true }
            }
            out.append(shaped)
        }
        return changed ? out : nil
    }

    /// Whether `apply` returns nil for every batch of exactly `batchResources` whose records
    /// use only `columnNames`, known without reading its records: no filter, no masks, one
    /// resource, every column allowed.
    public func leavesUnchanged(batchResources: [String], columnNames: [String], resource: String) -> Bool {
        filter == nil && masks.isEmpty && batchResources == [resource] && Set(columns).isSuperset(of: columnNames)
    }

    // The two rules every outgoing path applies, one row and one value at a time: resource
    // deliveries and backfills (`apply`), golden records and discrepancy feedback (through
    // `DiscrepancyFeedback.visible`) all decide with these.

    /// Whether a row (its columns by name, key included) is one this subscription receives. A
    /// column PostgreSQL did not resend (unchanged TOAST) is unknown: the row counts as outside
    /// the filter until a change resends it.
    public func admits(_ row: [Column]) throws(RowFilterError) -> Bool {
        guard let filter else { return true }
        let unknown = row.contains { column in
            if case .unchanged = column.value { return filter.columns.contains(column.name) } else { return false }
        }
        guard !unknown else { return false }
        return try filter.passes { name in row.first { $0.name == name }?.value }
    }

    /// A column's value as this subscription receives it (masked, or as it is).
    public func shown(_ column: String, _ value: Value) -> Value {
        guard let mask = masks[column] else { return value }
        return mask.apply(to: value, secret: secret)
    }

    /// Whether this subscription pseudonymises one of `key`'s columns: then a subject key built
    /// from them travels pseudonymised on every path.
    public func pseudonymises(anyOf key: [String]) -> Bool {
        key.contains { masks[$0] == .pseudonym }
    }

    func masked(_ record: ChangeRecord) -> ChangeRecord {
        guard !masks.isEmpty else { return record }
        var record = record
        func mask(_ columns: [Column]) -> [Column] {
            columns.map { Column($0.name, shown($0.name, $0.value)) }
        }
        record.key = mask(record.key)
        record.values = mask(record.values)
        record.oldKey = record.oldKey.map(mask)
        return record
    }
}
