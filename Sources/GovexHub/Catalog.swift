import GovexAPI
import GovexConfiguration
import GovexPostgres
import TOMLKit

/// The catalog: the authority on what may be shared. Applied declaratively from
/// `catalog.toml`: what the file says is what the hub holds afterwards.
public struct Catalog: Sendable, Equatable {
    public struct Resource: Sendable, Equatable {
        public var code: String
        public var name: String
        public var provider: String
        public var share: String
        public var legalBasis: String?
        public var key: [String]
        public var columns: [String]
        public var updateFrequency: String?

        public init(code: String, name: String, provider: String, share: String, legalBasis: String? = nil, key: [String], columns: [String],
                    updateFrequency: String? = nil) {
            self.code = code
            self.name = name
            self.provider = provider
            self.share = share
            self.legalBasis = legalBasis
            self.key = key
            self.columns = columns
            self.updateFrequency = updateFrequency
        }
    }

    public struct Field: Sendable, Equatable {
        public var name: String
        public var authority: String
        /// `RESOURCE.column` entries that feed this field.
        public var sources: [String]

        public init(name: String, authority: String, sources: [String]) {
            self.name = name
            self.authority = authority
            self.sources = sources
        }
    }

    public struct Subject: Sendable, Equatable {
        public var code: String
        public var name: String
        public var keyKind: String
        public var fields: [Field]

        public init(code: String, name: String, keyKind: String, fields: [Field]) {
            self.code = code
            self.name = name
            self.keyKind = keyKind
            self.fields = fields
        }
    }

    public var resources: [Resource]
    public var subjects: [Subject]

    public static let shareClasses = ["unconditional", "conditional", "none"]
    public static let keyKinds = ["citizen_id", "credit_code", "text"]

    /// Parses and checks `catalog.toml`; every mistake names file, line and key.
    /// Every table of catalog.toml and the keys it may hold; anything else is refused.
    public static let knownKeys: [String: [String]] = [
        "resource": ["code", "name", "provider", "share", "legal_basis", "key", "columns", "update_frequency"],
        "subject": ["code", "name", "key_kind", "field"],
        "subject.field": ["name", "authority", "sources"],
    ]

    public static func load(path: String, text: String) throws(ConfigurationError) -> Catalog {
        let (root, reader) = try ConfigurationReader.parse(path: path, text: text)
        try reader.rejectUnknownKeys(root, section: nil, allowed: ["resource", "subject"])
        var resources: [Resource] = []
        for (index, item) in (root["resource"]?.array ?? []).enumerated() {
            let section = "resource#\(index)"
            guard let table = item.table else { throw reader.error("resource", section: nil, "must be [[resource]] tables") }
            try reader.rejectUnknownKeys(table, section: section, allowed: Self.knownKeys["resource"]!)
            let code = try reader.string(table, "code", section: section)
            guard !resources.contains(where: { $0.code == code }) else { throw reader.error("code", section: section, "resource \(code) is listed twice") }
            let share = try reader.string(table, "share", section: section)
            guard shareClasses.contains(share) else { throw reader.error("share", section: section, "'\(share)' is not one of \(shareClasses.joined(separator: ", "))") }
            let legalBasis = table["legal_basis"] == nil ? nil : try reader.string(table, "legal_basis", section: section)
            if share == "none" && (legalBasis ?? "").isEmpty {
                throw reader.error("legal_basis", section: section, "a resource that may not be shared (share = none) must cite its legal basis")
            }
            let key = try reader.strings(table, "key", section: section)
            let columns = try reader.strings(table, "columns", section: section)
            for column in key where !columns.contains(column) {
                throw reader.error("key", section: section, "key column \(column) is not in columns")
            }
            resources.append(Resource(
                code: code, name: try reader.string(table, "name", section: section), provider: try reader.string(table, "provider", section: section),
                share: share, legalBasis: legalBasis, key: key, columns: columns,
                updateFrequency: table["update_frequency"] == nil ? nil : try reader.string(table, "update_frequency", section: section)))
        }
        var subjects: [Subject] = []
        var fieldCount = 0
        for (index, item) in (root["subject"]?.array ?? []).enumerated() {
            let section = "subject#\(index)"
            guard let table = item.table else { throw reader.error("subject", section: nil, "must be [[subject]] tables") }
            try reader.rejectUnknownKeys(table, section: section, allowed: Self.knownKeys["subject"]!)
            let code = try reader.string(table, "code", section: section)
            // Consumers subscribe to subjects and resources by code, in one namespace.
            guard !resources.contains(where: { $0.code == code }), !subjects.contains(where: { $0.code == code }) else {
                throw reader.error("code", section: section, "\(code) is already the code of a resource or subject; subject codes share their namespace")
            }
            let keyKind = try reader.string(table, "key_kind", section: section)
            guard keyKinds.contains(keyKind) else { throw reader.error("key_kind", section: section, "'\(keyKind)' is not one of \(keyKinds.joined(separator: ", "))") }
            var fields: [Field] = []
            for fieldItem in table["field"]?.array ?? [] {
                guard let field = fieldItem.table else { throw reader.error("field", section: section, "must be [[subject.field]] tables") }
                let fieldSection = "subject.field#\(fieldCount)"
                fieldCount += 1
                try reader.rejectUnknownKeys(field, section: fieldSection, allowed: Self.knownKeys["subject.field"]!)
                let name = try reader.string(field, "name", section: fieldSection)
                guard name != Subject.keyColumn, !fields.contains(where: { $0.name == name }) else {
                    throw reader.error("name", section: fieldSection, "subject \(code) has field \(name) twice, or names one \(Subject.keyColumn) (its key column)")
                }
                // A field names its golden table's columns: `name`, and `name@node` for reports.
                guard !name.contains("@"), !name.hasPrefix("govex_"), name.utf8.count <= 40 else {
                    throw reader.error("name", section: fieldSection, "field \(name) of subject \(code): a field name has at most 40 bytes, no '@' and does not start with 'govex_' (it names golden table columns)")
                }
                let sources = try reader.strings(field, "sources", section: fieldSection)
                for source in sources {
                    let parts = source.split(separator: ".", maxSplits: 1).map(String.init)
                    guard parts.count == 2, let resource = resources.first(where: { $0.code == parts[0] }), resource.columns.contains(parts[1]) else {
                        throw reader.error("sources", section: fieldSection, "field \(name): '\(source)' must be RESOURCE.column of a resource in this catalog")
                    }
                }
                fields.append(Field(name: name, authority: try reader.string(field, "authority", section: fieldSection), sources: sources))
            }
            guard !fields.isEmpty else { throw reader.error("field", section: section, "subject \(code) has no [[subject.field]]") }
            subjects.append(Subject(code: code, name: try reader.string(table, "name", section: section), keyKind: keyKind, fields: fields))
        }
        return Catalog(resources: resources, subjects: subjects)
    }

    /// What applying `desired` over `current` changes, one line each: `+` added, `~` changed, `-` removed.
    public static func plan(from current: Catalog, to desired: Catalog) -> [String] {
        var lines: [String] = []
        for resource in desired.resources {
            guard let old = current.resources.first(where: { $0.code == resource.code }) else {
                lines.append("+ resource \(resource.code) \(resource.name) (provider \(resource.provider), share \(resource.share))")
                continue
            }
            var differences: [String] = []
            if old.name != resource.name { differences.append("name \(old.name) → \(resource.name)") }
            if old.provider != resource.provider { differences.append("provider \(old.provider) → \(resource.provider)") }
            if old.share != resource.share { differences.append("share \(old.share) → \(resource.share)") }
            if old.legalBasis != resource.legalBasis { differences.append("legal basis") }
            if old.key != resource.key { differences.append("key \(old.key.joined(separator: ",")) → \(resource.key.joined(separator: ","))") }
            if old.columns != resource.columns { differences.append("columns \(old.columns.joined(separator: ",")) → \(resource.columns.joined(separator: ","))") }
            if old.updateFrequency != resource.updateFrequency { differences.append("update frequency") }
            if !differences.isEmpty { lines.append("~ resource \(resource.code): " + differences.joined(separator: "; ")) }
        }
        for old in current.resources where !desired.resources.contains(where: { $0.code == old.code }) {
            lines.append("- resource \(old.code) \(old.name)")
        }
        for subject in desired.subjects {
            guard let old = current.subjects.first(where: { $0.code == subject.code }) else {
                lines.append("+ subject \(subject.code) \(subject.name) (key \(subject.keyKind), \(subject.fields.count) fields)")
                continue
            }
            if old != subject { lines.append("~ subject \(subject.code)") }
        }
        for old in current.subjects where !desired.subjects.contains(where: { $0.code == old.code }) {
            lines.append("- subject \(old.code) \(old.name)")
        }
        return lines
    }
}

extension Catalog.Subject {
    /// The golden table's key column, as subscribers receive it.
    public static let keyColumn = "subject_key"

    /// The subject as consumers subscribe to it: a resource the hub itself provides, keyed by
    /// the subject key, one column per field. Which fields a subscriber actually receives is
    /// decided per field when a delivery is made (see `GoldenDeliveries`).
    public var asResource: Catalog.Resource {
        Catalog.Resource(code: code, name: name, provider: Catalog.hubProvider, share: "unconditional",
                         legalBasis: "golden record of subject \(code): each field only as its source resources are shared with the subscriber",
                         key: [Self.keyColumn], columns: [Self.keyColumn] + fields.map(\.name))
    }
}

extension Catalog.Resource {
    /// The resource as the contract shows it (`GET /v1/catalog`).
    public var entry: CatalogEntry {
        // The catalog only holds checked share classes; anything else would be shared as nothing.
        CatalogEntry(code: code, name: name, provider: provider, share: ShareClass(rawValue: share) ?? .none, legalBasis: legalBasis,
                     key: key, columns: columns, updateFrequency: updateFrequency)
    }
}

extension Catalog {
    /// The provider named by subject resources: the hub, whose copy they come from.
    public static let hubProvider = "hub"

    /// What a node may subscribe to: the resources, and the subjects' golden records.
    public var subscribable: [Resource] { resources + subjects.map(\.asResource) }
}
