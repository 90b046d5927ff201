/// Every error the hub answers with, and its HTTP status: the one table hub, agent and
/// command line read. A batch the hub cannot read at all is answered 400 with the batch
/// decoder's own code (`truncated`, `bad_magic`, …: `BatchError.code`), outside this table.
public enum HubErrorCode: String, Codable, Sendable, CaseIterable {
    // The gate in front of every route but /v1/ca and /v1/enroll.
    case clientCertificateRequired = "client_certificate_required"
    case certificateUnreadable = "certificate_unreadable"
    case certificateChain = "certificate_chain"
    case certificateNode = "certificate_node"
    case reservedNode = "reserved_node"
    case unknownNode = "unknown_node"
    case nodeRevoked = "node_revoked"
    case certificateRetired = "certificate_retired"
    case certificateRevoked = "certificate_revoked"
    case certificateUnknown = "certificate_unknown"
    case unavailable

    // Any route.
    case badRequest = "bad_request"
    case invalidRequest = "invalid_request"
    case internalError = "internal_error"

    // Enrollment and keys.
    case enrollmentRefused = "enrollment_refused"
    case enrollmentRateLimited = "enrollment_rate_limited"
    case noProofOfPossession = "no_proof_of_possession"
    case keyInUse = "key_in_use"
    case keyRetired = "key_retired"
    case signingKeyNotEndorsed = "signing_key_not_endorsed"
    case noSuchKey = "no_such_key"

    // Pushed batches.
    case tooLarge = "too_large"
    case tooManyUploads = "too_many_uploads"
    case revoked
    case nodeMismatch = "node_mismatch"
    case staleEpoch = "stale_epoch"
    case newEpoch = "new_epoch"
    case sequenceNotStored = "sequence_not_stored"
    case digestConflict = "digest_conflict"
    case sequenceGap = "sequence_gap"

    // Subscriptions, decisions and deliveries.
    case unknownResource = "unknown_resource"
    case notShareable = "not_shareable"
    case ownResource = "own_resource"
    case purposeRequired = "purpose_required"
    case unknownColumns = "unknown_columns"
    case duplicateColumns = "duplicate_columns"
    case columnsNotRequested = "columns_not_requested"
    case badFilter = "bad_filter"
    case badMask = "bad_mask"
    case reasonRequired = "reason_required"
    case notProvider = "not_provider"
    case notPending = "not_pending"
    case notLive = "not_live"
    case unknownSubscription = "unknown_subscription"
    case subscriptionPending = "subscription_pending"
    case subscriptionRejected = "subscription_rejected"
    case subscriptionRevoked = "subscription_revoked"
    case deliveryExpired = "delivery_expired"
    case notDelivered = "not_delivered"

    public var httpStatus: Int {
        switch self {
        case .clientCertificateRequired: return 401
        case .certificateUnreadable, .certificateChain, .certificateNode, .reservedNode, .unknownNode, .nodeRevoked,
             .certificateRetired, .certificateRevoked, .certificateUnknown, .enrollmentRefused, .noProofOfPossession, .keyInUse,
             .keyRetired, .revoked, .nodeMismatch, .notShareable, .notProvider:
            return 403
        case .unavailable: return 503
        case .badRequest, .invalidRequest, .ownResource, .purposeRequired, .unknownColumns, .duplicateColumns, .columnsNotRequested,
             .badFilter, .badMask, .reasonRequired:
            return 400
        case .internalError: return 500
        case .enrollmentRateLimited, .tooManyUploads: return 429
        case .signingKeyNotEndorsed: return 202
        case .tooLarge: return 413
        case .staleEpoch, .newEpoch, .sequenceNotStored, .digestConflict, .sequenceGap, .notPending, .notLive,
             .subscriptionPending, .subscriptionRejected, .subscriptionRevoked, .notDelivered:
            return 409
        case .unknownResource, .unknownSubscription, .noSuchKey: return 404
        case .deliveryExpired: return 410
        }
    }

    /// The code for a subscription that is not active (`subscription_pending`, …).
    public static func subscription(_ status: String) -> HubErrorCode {
        HubErrorCode(rawValue: "subscription_" + status) ?? .notLive
    }
}

/// The body of every error answer: `{"error": code, "message": what happened and what to do}`.
public struct HubErrorBody: Codable, Sendable, Equatable {
    public var error: String
    public var message: String

    public init(error: String, message: String) {
        self.error = error
        self.message = message
    }

    /// The code, when it is one of the hub's own (not a batch decoder's).
    public var code: HubErrorCode? { HubErrorCode(rawValue: error) }
}
