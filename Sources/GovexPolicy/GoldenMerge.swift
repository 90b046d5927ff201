import GovexWire

/// One source, one number (一数一源): the rules that turn departments' records into a
/// subject's golden record and the discrepancies between them. Pure: a batch's records
/// and the current golden records of the keys it touches in; new golden records and
/// discrepancy events out.
public enum GoldenMerge {
    /// A subject as the catalog declares it: its key kind and, per field, the one
    /// authoritative node and the resource columns that feed the field.
    public struct Subject: Sendable, Equatable {
        public struct Field: Sendable, Equatable {
            public var name: String
            public var authority: String
            /// `(resource, column)` pairs, from the catalog's `RESOURCE.column`.
            public var sources: [(resource: String, column: String)]

            public init(name: String, authority: String, sources: [(resource: String, column: String)]) {
                self.name = name
                self.authority = authority
                self.sources = sources
            }

            public static func == (lhs: Field, rhs: Field) -> Bool {
                lhs.name == rhs.name && lhs.authority == rhs.authority
                    && lhs.sources.map(\.resource) == rhs.sources.map(\.resource) && lhs.sources.map(\.column) == rhs.sources.map(\.column)
            }
        }

        public var code: String
        public var keyKind: IdentifierCheck.Kind
        public var fields: [Field]

        public init(code: String, keyKind: IdentifierCheck.Kind, fields: [Field]) {
            self.code = code
            self.keyKind = keyKind
            self.fields = fields
        }
    }

    /// What the hub knows of one subject: the authoritative value of each field it has
    /// received (a present nil is NULL), and what every other node reported for it.
    public struct Record: Sendable, Equatable {
        public var key: String
        public var values: [String: String?] = [:]
        /// field → node → reported value.
        public var reports: [String: [String: String?]] = [:]

        public init(key: String, values: [String: String?] = [:], reports: [String: [String: String?]] = [:]) {
            self.key = key
            self.values = values
            self.reports = reports
        }
    }

    public struct Discrepancy: Sendable, Hashable {
        public enum Kind: String, Sendable { case mismatch, invalidIdentifier = "invalid_identifier" }
        public var kind: Kind
        public var subject: String
        public var key: String
        public var field: String?
        public var authority: String?
        public var authorityValue: String?
        public var reportingNode: String
        public var reportedValue: String?
        /// For an invalid identifier: what is wrong with it.
        public var reason: String?

        /// What identifies one discrepancy across batches (its values may change).
        public var identity: String { [kind.rawValue, subject, key, field ?? "", reportingNode].joined(separator: "\u{1F}") }
    }

    public enum Event: Sendable, Equatable {
        case opened(Discrepancy)
        /// Still open, with new values on either side.
        case updated(Discrepancy)
        /// The two sides agree now (or the report or the authoritative value is gone).
        case resolved(Discrepancy)
    }

    public struct Result: Sendable, Equatable {
        /// The touched records, after the batch.
        public var records: [String: Record] = [:]
        public var events: [Event] = []
        /// Reports that agreed with the authoritative value.
        public var confirmations = 0
    }

    /// The canonical key of a record: its key columns' text forms (one column: that text).
    public static func keyText(_ key: [Column]) -> String {
        key.map { $0.value.postgresText ?? "" }.joined(separator: "|")
    }

    /// Whether a batch truncates a resource that feeds `subject`.
    public static func truncatesSource(_ records: [ChangeRecord], subject: Subject) -> Bool {
        let resources = Set(subject.fields.flatMap { $0.sources.map(\.resource) })
        return records.contains { $0.operation == .truncate && resources.contains($0.resource) }
    }

    /// The batch with each truncate of a resource that feeds `subject` replaced, where it
    /// stands, by a delete of every key the subject holds (`keys`): a truncate withdraws
    /// every value and report the department gave through that resource, as those deletes
    /// would, and records after it in the batch apply on top.
    public static func expandingTruncates(_ records: [ChangeRecord], subject: Subject, keys: [String]) -> [ChangeRecord] {
        let resources = Set(subject.fields.flatMap { $0.sources.map(\.resource) })
        var expanded: [ChangeRecord] = []
        expanded.reserveCapacity(records.count + keys.count)
        for record in records {
            guard record.operation == .truncate, resources.contains(record.resource) else {
                expanded.append(record)
                continue
            }
            for key in keys {
                expanded.append(ChangeRecord(operation: .delete, resource: record.resource, position: record.position,
                                             key: [Column("subject_key", .text(key))]))
            }
        }
        return expanded
    }

    /// The keys a batch touches (old keys of key changes too): the golden records to fetch
    /// before `merge`, in one query.
    public static func touchedKeys(_ records: [ChangeRecord], subject: Subject) -> Set<String> {
        let resources = Set(subject.fields.flatMap { $0.sources.map(\.resource) })
        var keys = Set<String>()
        for record in records where resources.contains(record.resource) && record.operation != .truncate {
            keys.insert(keyText(record.key))
            if let oldKey = record.oldKey { keys.insert(keyText(oldKey)) }
        }
        return keys
    }

    /// Applies a batch from `node`: the authority's values set the golden record; another
    /// node's values are reports, compared with it, never written into it. Records of
    /// resources that feed no field of `subject` are ignored. A key that fails the subject's
    /// identifier check opens an `invalid_identifier` discrepancy and is not merged.
    public static func merge(_ records: [ChangeRecord], from node: String, subject: Subject, current: [String: Record]) -> Result {
        var result = Result()
        var touched = [String: Record]()
        var invalid = Set<String>()
        for record in records {
            let fed = subject.fields.compactMap { field in
                field.sources.first { $0.resource == record.resource }.map { (field, $0.column) }
            }
            guard !fed.isEmpty, record.operation != .truncate else { continue }
            var keys = [(keyText(record.key), record.operation == .delete)]
            if let oldKey = record.oldKey, keyText(oldKey) != keys[0].0 { keys.insert((keyText(oldKey), true), at: 0) }
            for (key, removes) in keys {
                if let problem = IdentifierCheck.problem(key, kind: subject.keyKind) {
                    let discrepancy = Discrepancy(kind: .invalidIdentifier, subject: subject.code, key: key, reportingNode: node, reason: problem)
                    if !removes, invalid.insert(discrepancy.identity).inserted { result.events.append(.opened(discrepancy)) }
                    continue
                }
                var golden = touched[key] ?? current[key] ?? Record(key: key)
                for (field, column) in fed {
                    let value: String??
                    if removes {
                        value = .none
                    } else {
                        guard let sent = (record.key + record.values).first(where: { $0.name == column })?.value else { continue }
                        if case .unchanged = sent { continue }  // the stored value stands
                        value = .some(sent.postgresText)
                    }
                    // updateValue, not subscript assignment: a NULL value is a value, not a removal.
                    if node == field.authority {
                        if let value { golden.values.updateValue(value, forKey: field.name) } else { golden.values.removeValue(forKey: field.name) }
                    } else if let value {
                        golden.reports[field.name, default: [:]].updateValue(value, forKey: node)
                        if let authoritative = golden.values[field.name], authoritative == value { result.confirmations += 1 }
                    } else {
                        golden.reports[field.name]?.removeValue(forKey: node)
                    }
                }
                touched[key] = golden
            }
        }
        for (key, after) in touched.sorted(by: { $0.key < $1.key }) {
            let before = open(in: current[key] ?? Record(key: key), subject: subject)
            let now = open(in: after, subject: subject)
            for (identity, discrepancy) in now.sorted(by: { $0.key < $1.key }) {
                if let earlier = before[identity] {
                    if earlier != discrepancy { result.events.append(.updated(discrepancy)) }
                } else {
                    result.events.append(.opened(discrepancy))
                }
            }
            for (identity, discrepancy) in before.sorted(by: { $0.key < $1.key }) where now[identity] == nil {
                result.events.append(.resolved(discrepancy))
            }
        }
        result.records = touched
        return result
    }

    /// The mismatches a record holds: every report that differs from a known authoritative value.
    public static func open(in record: Record, subject: Subject) -> [String: Discrepancy] {
        var found: [String: Discrepancy] = [:]
        for field in subject.fields {
            guard let authoritative = record.values[field.name] else { continue }
            for (node, reported) in record.reports[field.name] ?? [:] where node != field.authority && reported != authoritative {
                let discrepancy = Discrepancy(kind: .mismatch, subject: subject.code, key: record.key, field: field.name, authority: field.authority,
                                              authorityValue: authoritative, reportingNode: node, reportedValue: reported)
                found[discrepancy.identity] = discrepancy
            }
        }
        return found
    }
}
