import Foundation
import GovexAPI
import GovexCapture

/// The hub's catalog is the authority on what this node may publish: a `[[publish]]` for
/// a resource the catalog does not list as this node's is not captured, and where the
/// share classes differ the catalog's wins. Pure: configuration and catalog in, the
/// publications to capture and the alarms out.
public enum CatalogReconciliation {
    /// The hub's catalog entries of this node's resources (`GET /v1/catalog/mine`).
    public typealias Entry = CatalogEntry

    public static func reconcile(_ publish: [AgentConfiguration.Publish], with catalog: [Entry]) -> (publish: [AgentConfiguration.Publish], alarms: [String]) {
        var kept: [AgentConfiguration.Publish] = []
        var alarms: [String] = []
        for var entry in publish {
            let code = entry.mapping.resource
            guard let listed = catalog.first(where: { $0.code == code }) else {
                alarms.append("[[publish]] \(code) is not a resource this node provides in the hub's catalog: it is not captured")
                continue
            }
            if listed.share.rawValue != entry.share {
                alarms.append("[[publish]] \(code) says share = \"\(entry.share)\" but the hub's catalog says \"\(listed.share.rawValue)\": the catalog's share class applies")
                entry.share = listed.share.rawValue
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
