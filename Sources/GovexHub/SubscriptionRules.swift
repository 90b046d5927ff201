import Foundation
import GovexAPI
import GovexPolicy

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
    /// The columns asked for; an approval may narrow `columns` within them, never widen.
    public var requestedColumns: [String] = []
    /// The approval's row filter, in the filter language; nil: every row.
    public var filter: String? = nil
    /// Column → mask spec (`keep(6,4)`, `redact`, `null`, `pseudonym`).
    public var masks: [String: String] = [:]
    public var decidedBy: String? = nil
    public var decidedAt: String? = nil

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

extension Subscription {
    /// The subscription as the contract shows it to its subscriber and provider.
    public var view: SubscriptionView {
        SubscriptionView(id: id, subscriber: subscriber, resource: resource, columns: columns, purpose: purpose,
                         status: SubscriptionStatus(rawValue: status) ?? .revoked, reason: reason, requestedAt: requestedAt,
                         ackedThrough: String(ackedThrough), deliveredThrough: String(nextDelivery - 1), requestedColumns: requestedColumns,
                         filter: filter, masks: masks, decidedBy: decidedBy, decidedAt: decidedAt)
    }
}

/// What the catalog's share class makes of a subscription request: pure, so every
/// rule is tested without a database.
public enum SubscriptionRules {
    public enum Decision: Sendable, Equatable {
        /// Stored with this status (`active` for unconditional, `pending` for conditional) and these columns.
        case store(status: String, columns: [String])
        case refuse(code: HubErrorCode, message: String)
    }

    public static let maxPurposeLength = 1_000

    /// `columns` empty means every column the catalog lists. Keys are always delivered,
    /// so that the subscriber's rows line up with the provider's.
    public static func decide(subscriber: String, resourceCode: String, resource: Catalog.Resource?, columns requested: [String],
                              purpose: String) -> Decision {
        guard let resource else {
            return .refuse(code: .unknownResource, message: "\(resourceCode) is not in the hub's catalog; `govex hub catalog list` shows what is")
        }
        let trimmedPurpose = purpose.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmedPurpose.isEmpty, purpose.count <= maxPurposeLength else {
            return .refuse(code: .purposeRequired, message: "give the purpose of the subscription (--purpose, 1 to \(maxPurposeLength) characters): it is recorded with the request")
        }
        guard resource.provider != subscriber else {
            return .refuse(code: .ownResource, message: "\(resource.code) is provided by \(subscriber) itself")
        }
        if resource.share == "none" {
            return .refuse(code: .notShareable,
                           message: "\(resource.code) is not shared (share class none); legal basis: \(resource.legalBasis ?? "not recorded")")
        }
        let unknown = requested.filter { !resource.columns.contains($0) }
        guard unknown.isEmpty else {
            return .refuse(code: .unknownColumns,
                           message: "\(resource.code) has no column \(unknown.joined(separator: ", ")); its columns are \(resource.columns.joined(separator: ", "))")
        }
        guard Set(requested).count == requested.count else {
            return .refuse(code: .duplicateColumns, message: "a column is named twice in \(requested.joined(separator: ", "))")
        }
        // Catalog order, keys included, whatever order the request named them in.
        let columns = requested.isEmpty ? resource.columns : resource.columns.filter { requested.contains($0) || resource.key.contains($0) }
        return .store(status: resource.share == "unconditional" ? "active" : "pending", columns: columns)
    }

    /// A provider's (or the hub administrator's) answer to a subscription.
    public struct DecisionRequest: Sendable, Equatable {
        /// `approve` (also: change an active subscription's terms), `reject` (a pending one),
        /// `revoke` (an active or pending one).
        public var decision: String
        public var reason: String
        public var columns: [String]?
        public var filter: String?
        public var masks: [String: String]

        public init(decision: String, reason: String, columns: [String]? = nil, filter: String? = nil, masks: [String: String] = [:]) {
            self.decision = decision
            self.reason = reason
            self.columns = columns
            self.filter = filter
            self.masks = masks
        }
    }

    public enum DecisionOutcome: Sendable, Equatable {
        case update(status: String, columns: [String], filter: String?, masks: [String: String])
        case refuse(code: HubErrorCode, message: String)
    }

    /// Who may decide: the resource's provider, or the hub administrator.
    public static let hubAdministrator = "hub-admin"

    public static func decide(_ request: DecisionRequest, on subscription: Subscription, resource: Catalog.Resource?,
                              by actor: String) -> DecisionOutcome {
        guard let resource else {
            return .refuse(code: .unknownResource, message: "\(subscription.resource) is no longer in the catalog")
        }
        guard actor == resource.provider || actor == hubAdministrator else {
            return .refuse(code: .notProvider, message: "only \(resource.provider), which provides \(resource.code), or the hub administrator decides on its subscriptions")
        }
        let reason = request.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty, reason.count <= maxPurposeLength else {
            return .refuse(code: .reasonRequired, message: "give the reason for the decision (--reason, 1 to \(maxPurposeLength) characters): it is recorded")
        }
        let id = subscription.id
        switch request.decision {
        case "reject":
            guard subscription.status == "pending" else {
                return .refuse(code: .notPending, message: "subscription \(id) is \(subscription.status); revoke an active one instead")
            }
            return .update(status: "rejected", columns: subscription.columns, filter: subscription.filter, masks: subscription.masks)
        case "revoke":
            guard subscription.status == "pending" || subscription.status == "active" else {
                return .refuse(code: .notLive, message: "subscription \(id) is already \(subscription.status)")
            }
            return .update(status: "revoked", columns: subscription.columns, filter: subscription.filter, masks: subscription.masks)
        case "approve":
            guard subscription.status == "pending" || subscription.status == "active" else {
                return .refuse(code: .notLive, message: "subscription \(id) is \(subscription.status); the node must ask again")
            }
            let requested = subscription.requestedColumns.isEmpty ? subscription.columns : subscription.requestedColumns
            let narrowed = request.columns ?? subscription.columns
            let outside = narrowed.filter { !requested.contains($0) }
            guard outside.isEmpty else {
                return .refuse(code: .columnsNotRequested,
                               message: "an approval may only narrow the columns asked for (\(requested.joined(separator: ", "))); not \(outside.joined(separator: ", "))")
            }
            let columns = resource.columns.filter { narrowed.contains($0) || resource.key.contains($0) }
            if let filter = request.filter {
                do {
                    let parsed = try RowFilter.parse(filter)
                    let unknown = parsed.columns.filter { !resource.columns.contains($0) }
                    guard unknown.isEmpty else {
                        return .refuse(code: .badFilter, message: "the filter names \(unknown.sorted().joined(separator: ", ")), not a column of \(resource.code)")
                    }
                } catch {
                    return .refuse(code: .badFilter, message: error.description)
                }
            }
            var masks: [String: ColumnMask] = [:]
            for (column, spec) in request.masks {
                do {
                    masks[column] = try ColumnMask(spec: spec)
                } catch {
                    return .refuse(code: .badMask, message: "\(column): \(error.description)")
                }
            }
            if let problem = SharingPolicy.checkMasks(masks, key: resource.key, columns: columns) {
                return .refuse(code: .badMask, message: problem)
            }
            return .update(status: "active", columns: columns, filter: request.filter ?? subscription.filter,
                           masks: request.masks.isEmpty ? subscription.masks : masks.mapValues(\.description))
        default:
            return .refuse(code: .badRequest, message: "decision '\(request.decision)' must be approve, reject or revoke")
        }
    }
}
