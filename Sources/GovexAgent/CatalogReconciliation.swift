import Foundation
import GovexCapture

/// The hub's catalog is the authority on what this node may publish: a `[[publish]]` for
/// a resource the catalog does not list as this node's is not captured, and where the
/// share classes differ the catalog's wins. Pure: configuration and catalog in, the
/// publications to capture and the alarms out.
public enum CatalogReconciliation {
    public struct Entry: Codable, Sendable, Equatable {
        public var code: String
        public var share: String
        public var key: [String]
        public var columns: [String]

        public init(code: String, share: String, key: [String], columns: [String]) {
            self.code = code
            self.share = share
            self.key = key
            self.columns = columns
        }
    }

    public static func reconcile(_ publish: [AgentConfiguration.Publish], with catalog: [Entry]) -> (publish: [AgentConfiguration.Publish], alarms: [String]) {
        var kept: [AgentConfiguration.Publish] = []
        var alarms: [String] = []
        for var entry in publish {
            let code = entry.mapping.resource
            guard let listed = catalog.first(where: { $0.code == code }) else {
                alarms.append("[[publish]] \(code) is not a resource this node provides in the hub's catalog: it is not captured")
                continue
            }
            if listed.share != entry.share {
                alarms.append("[[publish]] \(code) says share = \"\(entry.share)\" but the hub's catalog says \"\(listed.share)\": the catalog's share class applies")
                entry.share = listed.share
            }
            kept.append(entry)
        }
        return (kept, alarms)
    }

    /// Why a `[[publish]]` may not start: the columns it would publish (after renames) are not
    /// exactly the catalog's. Extra columns would be rejected by the hub batch after batch;
    /// missing ones would leave subscribers short. Nil when they agree.
    public static func columnMismatch(resource: String, published: [String], catalog entry: Entry) -> String? {
        let published = Set(published), listed = Set(entry.columns)
        let extra = published.subtracting(listed).sorted(), missing = listed.subtracting(published).sorted()
        guard !extra.isEmpty || !missing.isEmpty else { return nil }
        var parts: [String] = []
        if !extra.isEmpty { parts.append("publishes \(extra.joined(separator: ", ")), which the hub's catalog does not list (add it to columns/exclude, or ask the hub's administrator to list it)") }
        if !missing.isEmpty { parts.append("does not publish \(missing.joined(separator: ", ")), which the catalog lists") }
        return "[[publish]] \(resource) " + parts.joined(separator: "; and ")
    }

    /// The published names of a mapping's columns, given the table's columns in order.
    public static func publishedColumns(_ mapping: TableMapping, tableColumns: [String]) -> [String] {
        tableColumns.filter(mapping.includes).map(mapping.publishedName)
    }

    /// The catalog as last fetched, kept for starts while the hub is unreachable.
    public static func cachePath(dataDirectory: String) -> String { dataDirectory + "/catalog.json" }
}
