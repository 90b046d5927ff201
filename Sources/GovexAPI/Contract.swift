/// What crosses the wire between hub, agents and the command line, as typed Codable values:
/// the hub encodes them, agent and commands decode the same types (docs/api.md). Field
/// names on the wire are snake_case.

/// A resource's share class (共享类型).
public enum ShareClass: String, Codable, Sendable, CaseIterable {
    /// 无条件共享: any registered department may subscribe.
    case unconditional
    /// 有条件共享: the provider approves each subscription.
    case conditional
    /// 不予共享: the negative list; never leaves the department.
    case none
}

public enum SubscriptionStatus: String, Codable, Sendable, CaseIterable {
    case pending, active, rejected, revoked
}

/// What a provider (or the hub's administrator) decides on a subscription.
public enum SubscriptionDecision: String, Codable, Sendable, CaseIterable {
    /// Approve a pending subscription, or change an active one's terms.
    case approve
    /// Refuse a pending one.
    case reject
    /// End an active or pending one.
    case revoke
}

/// A catalog entry: `GET /v1/catalog`, `GET /v1/catalog/mine`.
public struct CatalogEntry: Codable, Sendable, Equatable {
    public var code: String
    public var name: String
    public var provider: String
    public var share: ShareClass
    public var legalBasis: String?
    public var key: [String]
    public var columns: [String]
    public var updateFrequency: String?

    public init(code: String, name: String = "", provider: String = "", share: ShareClass = .unconditional, legalBasis: String? = nil,
                key: [String], columns: [String], updateFrequency: String? = nil) {
        self.code = code
        self.name = name
        self.provider = provider
        self.share = share
        self.legalBasis = legalBasis
        self.key = key
        self.columns = columns
        self.updateFrequency = updateFrequency
    }

    enum CodingKeys: String, CodingKey {
        case code, name, provider, share, legalBasis = "legal_basis", key, columns, updateFrequency = "update_frequency"
    }
}

/// `POST /v1/enroll`.
public struct EnrollRequest: Codable, Sendable, Equatable {
    public var node: String
    public var token: String
    /// A PKCS#10 request (PEM) for a P-256 key whose common name is the node id.
    public var csr: String
    public var signingKey: String
    /// The signing key's signature over `NodeKeyProof.enrollmentStatement`, base64.
    public var signingKeyProof: String?

    public init(node: String, token: String, csr: String, signingKey: String, signingKeyProof: String?) {
        self.node = node
        self.token = token
        self.csr = csr
        self.signingKey = signingKey
        self.signingKeyProof = signingKeyProof
    }

    enum CodingKeys: String, CodingKey {
        case node, token, csr, signingKey = "signing_key", signingKeyProof = "signing_key_proof"
    }
}

/// The answer to an enrollment.
public struct EnrollResponse: Codable, Sendable, Equatable {
    public var certificate: String
    public var ca: String
    public var hubSigningKey: String

    public init(certificate: String, ca: String, hubSigningKey: String) {
        self.certificate = certificate
        self.ca = ca
        self.hubSigningKey = hubSigningKey
    }

    enum CodingKeys: String, CodingKey {
        case certificate, ca, hubSigningKey = "hub_signing_key"
    }
}

/// `POST /v1/subscriptions`.
public struct SubscriptionRequest: Codable, Sendable, Equatable {
    public var resource: String
    public var purpose: String
    /// Nil or empty: every column the catalog lists.
    public var columns: [String]?

    public init(resource: String, purpose: String, columns: [String]?) {
        self.resource = resource
        self.purpose = purpose
        self.columns = columns
    }
}

/// `POST /v1/subscriptions/ID/decision`.
public struct DecisionRequest: Codable, Sendable, Equatable {
    public var decision: SubscriptionDecision
    public var reason: String
    public var columns: [String]?
    public var filter: String?
    /// Column → mask (`keep(6,4)`, `redact`, `null`, `pseudonym`).
    public var masks: [String: String]?

    public init(decision: SubscriptionDecision, reason: String, columns: [String]? = nil, filter: String? = nil, masks: [String: String]? = nil) {
        self.decision = decision
        self.reason = reason
        self.columns = columns
        self.filter = filter
        self.masks = masks
    }
}

/// A subscription as the hub shows it to its subscriber and its provider.
public struct SubscriptionView: Codable, Sendable, Equatable {
    public var id: Int64
    public var subscriber: String
    public var resource: String
    public var columns: [String]
    public var purpose: String
    public var status: SubscriptionStatus
    public var reason: String?
    public var requestedAt: String
    /// The last delivery the subscriber acknowledged, and the last one issued (decimal text).
    public var ackedThrough: String
    public var deliveredThrough: String
    public var requestedColumns: [String]?
    public var filter: String?
    public var masks: [String: String]?
    public var decidedBy: String?
    public var decidedAt: String?

    public init(id: Int64, subscriber: String, resource: String, columns: [String], purpose: String, status: SubscriptionStatus, reason: String?,
                requestedAt: String, ackedThrough: String, deliveredThrough: String, requestedColumns: [String]?, filter: String?,
                masks: [String: String]?, decidedBy: String?, decidedAt: String?) {
        self.id = id
        self.subscriber = subscriber
        self.resource = resource
        self.columns = columns
        self.purpose = purpose
        self.status = status
        self.reason = reason
        self.requestedAt = requestedAt
        self.ackedThrough = ackedThrough
        self.deliveredThrough = deliveredThrough
        self.requestedColumns = requestedColumns
        self.filter = filter
        self.masks = masks
        self.decidedBy = decidedBy
        self.decidedAt = decidedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, subscriber, resource, columns, purpose, status, reason, requestedAt = "requested_at", ackedThrough = "acked_through",
             deliveredThrough = "delivered_through", requestedColumns = "requested_columns", filter, masks, decidedBy = "decided_by",
             decidedAt = "decided_at"
    }
}

/// `POST /v1/deliveries/ack`.
public struct AckRequest: Codable, Sendable, Equatable {
    public var subscription: Int64
    /// The last delivery applied, as decimal text (a UInt64 does not survive every JSON reader).
    public var through: String

    public init(subscription: Int64, through: String) {
        self.subscription = subscription
        self.through = through
    }
}
