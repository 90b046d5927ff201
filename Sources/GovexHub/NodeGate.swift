import Foundation
import GovexAPI
import GovexIdentity
import GovexPostgres
import GovexWire
import SwiftASN1
import X509

/// A request the hub refuses: the HTTP status, a stable code for scripts, and a message for
/// the person who must act. Every refusal is recorded once (`RefusalRecorder`).
public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: HubErrorCode
    public var message: String

    public init(_ code: HubErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var status: Int { code.httpStatus }
    public var description: String { "\(status) \(code.rawValue): \(message)" }
}

/// What the TLS layer showed of a client: its certificate, if it presented one.
public struct PresentedCertificate: Sendable, Equatable {
    public var node: String?
    public var serial: String
    /// Signed by the hub's CA itself, not through an intermediate (the CA's pathlen:0, enforced here).
    public var issuedDirectlyByHubCA: Bool
    /// A CA certificate used as a client identity (basicConstraints CA:TRUE).
    public var isAuthority: Bool

    public init(node: String?, serial: String, issuedDirectlyByHubCA: Bool, isAuthority: Bool) {
        self.node = node
        self.serial = serial
        self.issuedDirectlyByHubCA = issuedDirectlyByHubCA
        self.isAuthority = isAuthority
    }

    public init(_ certificate: Certificate, ca: CertificateAuthority) {
        let constraints = try? certificate.extensions.basicConstraints
        self.init(node: NodeIdentity.nodeID(of: certificate), serial: certificate.serialNumber.description,
                  issuedDirectlyByHubCA: ca.issuedDirectly(certificate),
                  isAuthority: { if case .isCertificateAuthority = constraints { return true } else { return false } }())
    }
}

/// What the hub's database says of the presented node and certificate.
public struct NodeStanding: Sendable, Equatable {
    public var nodeRevoked: Bool
    /// nil: the hub never issued this serial to this node.
    public var certificate: CertificateState?

    public enum CertificateState: String, Sendable, Equatable {
        case current, retired, revoked
    }

    public init(nodeRevoked: Bool, certificate: CertificateState?) {
        self.nodeRevoked = nodeRevoked
        self.certificate = certificate
    }
}

/// The one gate every authenticated route passes: certificate → node, or a refusal. Pure,
/// so that each way in is tested without TLS or a database.
public enum NodeGateRules {
    public static func admit(_ presented: PresentedCertificate?, standing: NodeStanding?) -> Result<String, Refusal> {
        guard let presented else {
            return .failure(Refusal(.clientCertificateRequired, "this route needs the node's client certificate issued by the hub"))
        }
        guard presented.issuedDirectlyByHubCA, !presented.isAuthority else {
            return .failure(Refusal(.certificateChain, "the client certificate must be issued by the hub's CA itself (no intermediate, not a CA)"))
        }
        guard let node = presented.node, Enrollment.isValidNodeID(node) else {
            return .failure(Refusal(.certificateNode, "the client certificate names no valid node id"))
        }
        guard !Enrollment.isReserved(node) else {
            return .failure(Refusal(.reservedNode, "node id \(node) is reserved for the hub itself"))
        }
        guard let standing else {
            return .failure(Refusal(.unknownNode, "node \(node) is not enrolled at this hub"))
        }
        guard !standing.nodeRevoked else {
            return .failure(Refusal(.nodeRevoked, "node \(node) has been revoked at the hub"))
        }
        switch standing.certificate {
        case .current?: return .success(node)
        case .retired?:
            return .failure(Refusal(.certificateRetired, "certificate \(presented.serial) of node \(node) was replaced by a newer one; use the current certificate"))
        case .revoked?:
            return .failure(Refusal(.certificateRevoked, "certificate \(presented.serial) of node \(node) has been revoked at the hub"))
        case nil:
            return .failure(Refusal(.certificateUnknown, "certificate \(presented.serial) was not issued to node \(node) by this hub"))
        }
    }
}

/// A node's certificates as the hub issued them: only the newest is current; rotation retires
/// the one before; the administrator can revoke one serial, and a new enrollment reinstates a
/// revoked node.
public enum NodeCertificates {
    /// Records a certificate the CA just issued as the node's current one, retiring the others.
    public static func recordCurrent(_ certificate: Certificate, node: String, on sql: PostgresConnection) async throws {
        let serial = certificate.serialNumber.description
        try await sql.query("UPDATE govex.certificates SET retired_at = now() WHERE node_id = $1 AND retired_at IS NULL AND serial <> $2", [node, serial])
        try await sql.query("""
            INSERT INTO govex.certificates (serial, node_id, not_after, pem) VALUES ($1, $2, $3::timestamptz, $4)
            """, [serial, node, ISO8601DateFormatter().string(from: certificate.notValidAfter), try certificate.serializeAsPEM().pemString])
    }

    /// The standing of `node` presenting `serial`; nil when the node is not enrolled.
    static func standing(node: String, serial: String, on sql: PostgresConnection) async throws -> NodeStanding? {
        try await sql.query("""
            SELECT n.revoked_at IS NOT NULL,
                   CASE WHEN c.serial IS NULL THEN NULL WHEN c.revoked_at IS NOT NULL THEN 'revoked'
                        WHEN c.retired_at IS NOT NULL THEN 'retired' ELSE 'current' END
            FROM govex.nodes n LEFT JOIN govex.certificates c ON c.node_id = n.node_id AND c.serial = $2
            WHERE n.node_id = $1
            """, [node, serial]).rows.first.map { row in
            NodeStanding(nodeRevoked: row[0] == "t", certificate: row[1].flatMap { NodeStanding.CertificateState(rawValue: $0) })
        }
    }

    /// `govex hub node revoke-cert SERIAL`: returns the node it was issued to, nil when unknown.
    /// Every hub replica closes the node's connections (its other, current certificate reconnects).
    public static func revoke(serial: String, on sql: PostgresConnection) async throws -> String? {
        try await sql.transaction {
            guard let node = try await sql.query("""
                UPDATE govex.certificates SET revoked_at = coalesce(revoked_at, now()) WHERE serial = $1 RETURNING node_id
                """, [serial]).rows.first?[0] ?? nil else { return nil }
            try await sql.query("SELECT pg_catalog.pg_notify($1, $2)", [HubStore.revocationChannel, node])
            try await HubStore.audit("certificate_revoked", subject: node, actor: SubscriptionRules.hubAdministrator,
                                     details: [("serial", BatchJSON.string(serial))], on: sql)
            return node
        }
    }
}
