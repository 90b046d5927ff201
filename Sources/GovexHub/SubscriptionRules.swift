import Foundation

/// A subscription as the hub holds it.
public struct Subscription: Sendable, Equatable {
    public var id: Int64
    public var subscriber: String
    public var resource: String
    public var columns: [String]
    public var purpose: String
    /// `pending`, `active`, `rejected` or `revoked`.
    public var status: String
    public var reason: String?
    public var requestedAt: String
    /// The last delivery the subscriber acknowledged; the stream's next delivery is `nextDelivery`.
    public var ackedThrough: UInt64
    public var nextDelivery: UInt64

    public init(id: Int64, subscriber: String, resource: String, columns: [String], purpose: String, status: String, reason: String? = nil,
                requestedAt: String = "", ackedThrough: UInt64 = 0, nextDelivery: UInt64 = 1) {
        self.id = id
        self.subscriber = subscriber
        self.resource = resource
        self.columns = columns
        self.purpose = purpose
        self.status = status
        self.reason = reason
        self.requestedAt = requestedAt
        self.ackedThrough = ackedThrough
        self.nextDelivery = nextDelivery
    }
}

/// What the catalog's share class makes of a subscription request: pure, so every
/// rule is tested without a database.
public enum SubscriptionRules {
    public enum Decision: Sendable, Equatable {
        /// Stored with this status (`active` for unconditional, `pending` for conditional) and these columns.
        case store(status: String, columns: [String])
        case refuse(code: String, message: String)
    }

    public static let maxPurposeLength = 1_000

    /// `columns` empty means every column the catalog lists. Keys are always delivered,
    /// so that the subscriber's rows line up with the provider's.
    public static func decide(subscriber: String, resourceCode: String, resource: Catalog.Resource?, columns requested: [String],
                              purpose: String) -> Decision {
        guard let resource else {
            return .refuse(code: "unknown_resource", message: "\(resourceCode) is not in the hub's catalog; `govex hub catalog list` shows what is")
        }
        let trimmedPurpose = purpose.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmedPurpose.isEmpty, purpose.count <= maxPurposeLength else {
            return .refuse(code: "purpose_required", message: "give the purpose of the subscription (--purpose, 1 to \(maxPurposeLength) characters): it is recorded with the request")
        }
        guard resource.provider != subscriber else {
            return .refuse(code: "own_resource", message: "\(resource.code) is provided by \(subscriber) itself")
        }
        if resource.share == "none" {
            return .refuse(code: "not_shareable",
                           message: "\(resource.code) is not shared (share class none); legal basis: \(resource.legalBasis ?? "not recorded")")
        }
        let unknown = requested.filter { !resource.columns.contains($0) }
        guard unknown.isEmpty else {
            return .refuse(code: "unknown_columns",
                           message: "\(resource.code) has no column \(unknown.joined(separator: ", ")); its columns are \(resource.columns.joined(separator: ", "))")
        }
        guard Set(requested).count == requested.count else {
            return .refuse(code: "duplicate_columns", message: "a column is named twice in \(requested.joined(separator: ", "))")
        }
        // Catalog order, keys included, whatever order the request named them in.
        let columns = requested.isEmpty ? resource.columns : resource.columns.filter { requested.contains($0) || resource.key.contains($0) }
        return .store(status: resource.share == "unconditional" ? "active" : "pending", columns: columns)
    }
}
