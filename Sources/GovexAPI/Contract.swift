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

/// One discrepancy as the node it is fed back to may see it (`GET /v1/discrepancies`).
/// A value the node is not entitled to is absent, with its `…_shown` false.
public struct DiscrepancyView: Codable, Sendable, Equatable {
    public var id: Int64
    public var change: Int64
    public var subject: String
    public var key: String
    /// `mismatch` or `invalid_identifier`.
    public var kind: String
    public var field: String?
    public var authority: String?
    public var authorityValue: String?
    public var authorityValueShown: Bool
    public var reportingNode: String
    public var reportedValue: String?
    public var reportedValueShown: Bool
    public var reason: String?
    /// `open` or `resolved`.
    public var status: String
    public var firstSeen: String
    public var lastSeen: String
    public var resolvedAt: String?

    public init(id: Int64, change: Int64, subject: String, key: String, kind: String, field: String?, authority: String?, authorityValue: String?,
                authorityValueShown: Bool, reportingNode: String, reportedValue: String?, reportedValueShown: Bool, reason: String?, status: String,
                firstSeen: String, lastSeen: String, resolvedAt: String?) {
        self.id = id
        self.change = change
        self.subject = subject
        self.key = key
        self.kind = kind
        self.field = field
        self.authority = authority
        self.authorityValue = authorityValue
        self.authorityValueShown = authorityValueShown
        self.reportingNode = reportingNode
        self.reportedValue = reportedValue
        self.reportedValueShown = reportedValueShown
        self.reason = reason
        self.status = status
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.resolvedAt = resolvedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, change, subject, key, kind, field, authority, authorityValue = "authority_value", authorityValueShown = "authority_value_shown",
             reportingNode = "reporting_node", reportedValue = "reported_value", reportedValueShown = "reported_value_shown", reason, status,
             firstSeen = "first_seen", lastSeen = "last_seen", resolvedAt = "resolved_at"
    }
}

/// A page of a node's feedback stream: ask again with `after = through`.
public struct DiscrepancyPage: Codable, Sendable, Equatable {
    public var through: Int64
    public var discrepancies: [DiscrepancyView]

    public init(through: Int64, discrepancies: [DiscrepancyView]) {
        self.through = through
        self.discrepancies = discrepancies
    }
}

/// A provider's accepted signing key (`GET /v1/nodes/NODE/keys`).
public struct NodeKeyListing: Codable, Sendable, Equatable {
    public var keyID: String
    public var algorithm: String
    public var publicKey: String

    public init(keyID: String, algorithm: String, publicKey: String) {
        self.keyID = keyID
        self.algorithm = algorithm
        self.publicKey = publicKey
    }

    enum CodingKeys: String, CodingKey {
        case keyID = "key_id", algorithm, publicKey = "public_key"
    }
}

/// `POST /v1/certificates`: a certificate request, and the certificate issued for it.
public struct CertificateRenewal: Codable, Sendable, Equatable {
    public var csr: String
    public init(csr: String) { self.csr = csr }
}

public struct IssuedCertificate: Codable, Sendable, Equatable {
    public var certificate: String
    public init(certificate: String) { self.certificate = certificate }
}
