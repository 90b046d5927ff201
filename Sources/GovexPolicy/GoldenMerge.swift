import GovexWire

/// One source, one number (一数一源): the rules that turn departments' records into a
/// subject's golden record and the discrepancies between them. Pure: a batch's records
/// and the current golden records of the keys it touches in; new golden records and
/// discrepancy events out.
public enum GoldenMerge {
    /// A subject as the catalog declares it: its key kind and, per field, the one
    /// authoritative node and the resource columns (and their providers) that feed the field.
    ///
    /// A golden record is a row of slots: per field, the authority's value, then what each
    /// other providing node reported. The layout is fixed by the subject, so records are
    /// arrays, not maps, and the hub stores each slot as a column.
    public struct Subject: Sendable, Equatable {
        public struct Source: Sendable, Equatable {
            public var resource: String
            public var column: String
            /// The node that provides `resource`.
            public var node: String

            public init(resource: String, column: String, node: String) {
                self.resource = resource
                self.column = column
                self.node = node
            }
        }

        public struct Field: Sendable, Equatable {
            public var name: String
            public var authority: String
            public var sources: [Source]

            public init(name: String, authority: String, sources: [Source]) {
                self.name = name
                self.authority = authority
                self.sources = sources
            }

            /// The nodes other than the authority that feed this field, in source order.
            public var reporters: [String] {
                var nodes: [String] = []
                for source in sources where source.node != authority && !nodes.contains(source.node) { nodes.append(source.node) }
                return nodes
            }
        }

        /// One value of a golden record: a field's authoritative value (`node` nil) or one node's report.
        public struct Slot: Sendable, Equatable {
            public var field: Int
            public var node: String?
        }

        public var code: String
        public var keyKind: IdentifierCheck.Kind
        public var fields: [Field] { didSet { layOut() } }
        public private(set) var slots: [Slot] = []
        /// Per field: its authoritative slot, and its reporters' slots by node.
        public private(set) var authoritySlot: [Int] = []
        public private(set) var reportSlots: [[(node: String, slot: Int)]] = []

        public init(code: String, keyKind: IdentifierCheck.Kind, fields: [Field]) {
            self.code = code
            self.keyKind = keyKind
            self.fields = fields
            layOut()
        }

        private mutating func layOut() {
            slots = []
            authoritySlot = []
            reportSlots = []
            for (index, field) in fields.enumerated() {
                authoritySlot.append(slots.count)
                slots.append(Slot(field: index, node: nil))
                reportSlots.append(field.reporters.map { node in
                    slots.append(Slot(field: index, node: node))
                    return (node, slots.count - 1)
                })
            }
        }

        public static func == (lhs: Subject, rhs: Subject) -> Bool {
            lhs.code == rhs.code && lhs.keyKind == rhs.keyKind && lhs.fields == rhs.fields
        }

        /// The slot `node`'s values of field `field` go to, if it feeds the field.
        public func slot(field: Int, node: String) -> Int? {
            node == fields[field].authority ? authoritySlot[field] : reportSlots[field].first { $0.node == node }?.slot
        }

        /// A slot's column in the hub's golden table: the field's name, or `field@node` for a report.
        public func columnName(_ slot: Int) -> String {
            let name = fields[slots[slot].field].name
            return slots[slot].node.map { name + "@" + $0 } ?? name
        }

        /// The authoritative values a record holds, by field name.
        public func values(of record: Record) -> [String: String?] {
            var values: [String: String?] = [:]
            for (index, field) in fields.enumerated() {
                if let value = record.slots[authoritySlot[index]] { values.updateValue(value, forKey: field.name) }
            }
            return values
        }

        /// What other nodes reported, by field name and node.
        public func reports(of record: Record) -> [String: [String: String?]] {
            var reports: [String: [String: String?]] = [:]
            for (index, field) in fields.enumerated() {
                for (node, slot) in reportSlots[index] {
                    if let value = record.slots[slot] { reports[field.name, default: [:]].updateValue(value, forKey: node) }
                }
            }
            return reports
        }

        /// A record of this subject from values and reports by name (names it lacks are dropped).
        public func record(key: String, values: [String: String?] = [:], reports: [String: [String: String?]] = [:]) -> Record {
            var record = Record(key: key, slotCount: slots.count)
            for (index, field) in fields.enumerated() {
                if let value = values[field.name] { record.slots[authoritySlot[index]] = .some(value) }
                for (node, slot) in reportSlots[index] {
                    if let value = reports[field.name]?[node] { record.slots[slot] = .some(value) }
                }
            }
            return record
        }
    }

    /// What the hub knows of one subject key: one entry per slot of the subject's layout,
    /// nil when nothing was received for it, `.some(nil)` for a NULL.
    public struct Record: Sendable, Equatable {
        public var key: String
        public var slots: [String??]

        public init(key: String, slotCount: Int) {
            self.key = key
            self.slots = Array(repeating: nil, count: slotCount)
        }

        public init(key: String, slots: [String??]) {
            self.key = key
            self.slots = slots
        }

        /// Nothing received in any slot: the hub holds no row for it.
        public var isEmpty: Bool { !slots.contains { $0 != nil } }
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
        /// The touched records after the batch, in the order the batch first touched them.
        public var records: [Record] = []
        public var events: [Event] = []
        /// Reports that agreed with the authoritative value.
        public var confirmations = 0
    }

    /// The canonical key of a record: its key columns' text forms (one column: that text).
    public static func keyText(_ key: [Column]) -> String {
        if key.count == 1 { return key[0].value.postgresText ?? "" }
        return key.map { $0.value.postgresText ?? "" }.joined(separator: "|")
    }

    public static func sourceResources(_ subject: Subject) -> Set<String> {
        Set(subject.fields.flatMap { $0.sources.map(\.resource) })
    }

    /// Whether a batch truncates a resource that feeds `subject`.
    public static func truncatesSource(_ records: [ChangeRecord], subject: Subject) -> Bool {
        let resources = sourceResources(subject)
        return records.contains { $0.operation == .truncate && resources.contains($0.resource) }
    }

    /// The batch with each truncate of a resource that feeds `subject` replaced, where it
    /// stands, by a delete of every key the subject holds (`keys`): a truncate withdraws
    /// every value and report the department gave through that resource, as those deletes
    /// would, and records after it in the batch apply on top.
    public static func expandingTruncates(_ records: [ChangeRecord], subject: Subject, keys: [String]) -> [ChangeRecord] {
        let resources = sourceResources(subject)
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
        let resources = sourceResources(subject)
        var keys = Set<String>()
        for record in records where resources.contains(record.resource) && record.operation != .truncate {
            keys.insert(keyText(record.key))
            if let oldKey = record.oldKey { keys.insert(keyText(oldKey)) }
        }
        return keys
    }

    /// Where one resource's records write: for each field it feeds, the column read and the
    /// slot written for the sending node.
    struct Feed {
        var column: String
        var slot: Int
        /// The field's authoritative slot, when `slot` is a report (to count confirmations).
        var authority: Int?
        /// Where the column was in the last record: records of one resource share a shape.
        var hint = 0
    }

    static func feeds(of resource: String, from node: String, subject: Subject) -> [Feed] {
        var feeds: [Feed] = []
        for (index, field) in subject.fields.enumerated() {
            guard let source = field.sources.first(where: { $0.resource == resource }), let slot = subject.slot(field: index, node: node) else { continue }
            let authority = subject.authoritySlot[index]
            feeds.append(Feed(column: source.column, slot: slot, authority: slot == authority ? nil : authority))
        }
        return feeds
    }

    /// The value of `column` in a record (key columns included); `hint` is where to look first.
    static func value(of column: String, in record: ChangeRecord, hint: inout Int) -> Value? {
        let count = record.values.count
        if hint < count, record.values[hint].name == column { return record.values[hint].value }
        if let index = record.values.firstIndex(where: { $0.name == column }) {
            hint = index
            return record.values[index].value
        }
        return record.key.first { $0.name == column }?.value
    }

    /// One department's batch of records, as the hub's merger takes them, in arrival order.
    public struct Batch: Sendable {
        public var node: String
        public var records: [ChangeRecord]

        public init(node: String, records: [ChangeRecord]) {
            self.node = node
            self.records = records
        }
    }

    /// Applies a batch from `node`: the authority's values set the golden record; another
    /// node's values are reports, compared with it, never written into it. Records of
    /// resources that feed no field of `subject` are ignored. A key that fails the subject's
    /// identifier check opens an `invalid_identifier` discrepancy and is not merged.
    public static func merge(_ records: [ChangeRecord], from node: String, subject: Subject, current: [String: Record]) -> Result {
        merge([Batch(node: node, records: records)], subject: subject, current: current)
    }

    /// Applies several batches, one after the other, as one change: the records end as the
    /// batches applied in turn would leave them, and the discrepancy events are those between
    /// the state before the first and after the last (a mismatch opened by one batch and
    /// corrected by a later one in the group leaves none). Each slot is written by one node
    /// only, so batches of different nodes give the same records in any order.
    public static func merge(_ batches: [Batch], subject: Subject, current: [String: Record]) -> Result {
        var result = Result()
        var position: [String: Int] = [:]  // key → index in result.records
        position.reserveCapacity(batches.reduce(0) { $0 + $1.records.count })
        var invalid = Set<String>()
        for batch in batches {
            apply(batch, subject: subject, current: current, position: &position, invalid: &invalid, into: &result)
        }
        for record in result.records {
            discrepancyEvents(from: current[record.key], to: record, subject: subject, into: &result.events)
        }
        return result
    }

    /// `merge`, with the keys split into `partitions` parts merged side by side (the hub's
    /// database waits meanwhile, so the other core is free). The same records and events,
    /// grouped by part. Batches with key changes are merged in one part: a record there
    /// touches two keys, which may fall in different parts.
    public static func mergeInParallel(_ batches: [Batch], subject: Subject, current: [String: Record], partitions: Int = 2) async -> Result {
        let records = batches.reduce(0) { $0 + $1.records.count }
        guard partitions > 1, records >= 2_000, !batches.contains(where: { $0.records.contains { $0.oldKey != nil } }) else {
            return merge(batches, subject: subject, current: current)
        }
        var parts = Array(repeating: batches.map { Batch(node: $0.node, records: []) }, count: partitions)
        for (b, batch) in batches.enumerated() {
            for record in batch.records {
                parts[partition(of: record, count: partitions)][b].records.append(record)
            }
        }
        return await withTaskGroup(of: (Int, Result).self) { group in
            for (index, part) in parts.enumerated() {
                group.addTask { (index, merge(part, subject: subject, current: current)) }
            }
            var results = Array(repeating: Result(), count: partitions)
            for await (index, result) in group { results[index] = result }
            return results.reduce(into: Result()) { total, part in
                total.records += part.records
                total.events += part.events
                total.confirmations += part.confirmations
            }
        }
    }

    /// A record's part: by its key (a truncate, which has none, in part 0).
    static func partition(of record: ChangeRecord, count: Int) -> Int {
        guard record.operation != .truncate else { return 0 }
        return Int(UInt(bitPattern: keyText(record.key).hashValue) % UInt(count))
    }

    private static func apply(_ batch: Batch, subject: Subject, current: [String: Record], position: inout [String: Int],
                              invalid: inout Set<String>, into result: inout Result) {
        let node = batch.node
        var feedsByResource: [String: [Feed]] = [:]
        var resource = "", feeds: [Feed] = []
        for record in batch.records where record.operation != .truncate {
            if record.resource != resource || feedsByResource.isEmpty {
                feedsByResource[resource] = feeds
                resource = record.resource
                feeds = feedsByResource[resource] ?? Self.feeds(of: resource, from: node, subject: subject)
            }
            guard !feeds.isEmpty else { continue }
            let newKey = keyText(record.key)
            var keys = [(newKey, record.operation == .delete)]
            if let oldKey = record.oldKey.map(keyText), oldKey != newKey { keys.insert((oldKey, true), at: 0) }
            for (key, removes) in keys {
                let index: Int
                if let known = position[key] {
                    index = known
                } else {
                    if let problem = IdentifierCheck.problem(key, kind: subject.keyKind) {
                        let discrepancy = Discrepancy(kind: .invalidIdentifier, subject: subject.code, key: key, reportingNode: node, reason: problem)
                        if !removes, invalid.insert(discrepancy.identity).inserted { result.events.append(.opened(discrepancy)) }
                        continue
                    }
                    index = result.records.count
                    position[key] = index
                    result.records.append(current[key] ?? Record(key: key, slotCount: subject.slots.count))
                }
                for f in feeds.indices {
                    let slot = feeds[f].slot
                    if removes {
                        result.records[index].slots[slot] = nil
                        continue
                    }
                    guard let sent = value(of: feeds[f].column, in: record, hint: &feeds[f].hint) else { continue }
                    if case .unchanged = sent { continue }  // the stored value stands
                    let text = sent.postgresText
                    result.records[index].slots[slot] = .some(text)
                    if let authority = feeds[f].authority, let authoritative = result.records[index].slots[authority], authoritative == text {
                        result.confirmations += 1
                    }
                }
            }
        }
    }

    /// The discrepancy events between a record's state before and after a merge: for each
    /// report, a mismatch with a known authoritative value opens, changes or resolves.
    static func discrepancyEvents(from before: Record?, to after: Record, subject: Subject, into events: inout [Event]) {
        for (index, field) in subject.fields.enumerated() {
            let authorityBefore = before?.slots[subject.authoritySlot[index]], authorityAfter = after.slots[subject.authoritySlot[index]]
            for (node, slot) in subject.reportSlots[index] {
                let reportBefore = before?.slots[slot], reportAfter = after.slots[slot]
                let wasOpen = mismatch(authorityBefore, reportBefore), isOpen = mismatch(authorityAfter, reportAfter)
                guard wasOpen || isOpen else { continue }
                func discrepancy(_ authoritative: String??, _ reported: String??) -> Discrepancy {
                    Discrepancy(kind: .mismatch, subject: subject.code, key: after.key, field: field.name, authority: field.authority,
                                authorityValue: authoritative ?? nil, reportingNode: node, reportedValue: reported ?? nil)
                }
                if isOpen && !wasOpen {
                    events.append(.opened(discrepancy(authorityAfter, reportAfter)))
                } else if isOpen {
                    if authorityBefore != authorityAfter || reportBefore != reportAfter { events.append(.updated(discrepancy(authorityAfter, reportAfter))) }
                } else {
                    events.append(.resolved(discrepancy(authorityBefore, reportBefore)))
                }
            }
        }
    }

    static func mismatch(_ authoritative: String??, _ reported: String??) -> Bool {
        guard let authoritative, let reported else { return false }
        return authoritative != reported
    }
}
