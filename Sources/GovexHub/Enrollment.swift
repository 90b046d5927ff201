import Crypto
import Foundation
import GovexAPI
import GovexIdentity
import GovexPostgres
import GovexWire
import SwiftASN1
import X509

/// One-time, expiring enrollment tokens and the enrollment itself: a node proves it holds
/// a token, and receives a client certificate naming it while its batch-signing key is
/// registered. Only a token's SHA-256 is stored.
public enum Enrollment {
    public struct Granted: Sendable {
        public let certificatePEM: String
        public let caPEM: String
        public let hubSigningKeyPEM: String
    }

    /// Adds the node (if new) and a token valid for `hours`; returns the token to hand over.
    public static func createToken(for nodeID: String, hours: Int = 24, on sql: PostgresConnection) async throws -> String {
        try checkNodeID(nodeID)
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        // base64url may begin with "-", which a command line would take for an option: a prefix keeps it a value.
        let token = "gvx_" + Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        try await sql.transaction {
            try await HubStore.addNode(nodeID, on: sql)
            try await sql.query("""
                INSERT INTO govex.enrollment_tokens (token_hash, node_id, expires_at) VALUES ($1::bytea, $2, now() + $3::int * interval '1 hour')
                """, [tokenHash(token), nodeID, String(hours)])
            try await HubStore.audit("enrollment_token_issued", subject: nodeID, actor: SubscriptionRules.hubAdministrator,
                                     details: [("valid_hours", String(hours))], on: sql)
        }
        return token
    }

    /// How a token is stored: its SHA-256, as a bytea literal.
    static func tokenHash(_ token: String) -> String {
        "\\x" + Hex.encode(SHA256.hash(data: Array(token.utf8)))
    }

    /// Names the hub itself acts under (the provider of golden records, the administrator in
    /// decisions and the audit trail): a node enrolled under one could act as the hub.
    public static let reservedNodeIDs: Set<String> = [Catalog.hubProvider, SubscriptionRules.hubAdministrator, "govex", "anonymous"]

    public static func isReserved(_ id: String) -> Bool {
        reservedNodeIDs.contains(id) || id.hasPrefix("hub-") || id.hasPrefix("govex-")
    }

    /// A node id the hub will enroll: well-formed and not one the hub acts under.
    public static func checkNodeID(_ nodeID: String) throws(IdentityError) {
        guard Self.isValidNodeID(nodeID) else {
            throw IdentityError("node id '\(nodeID)' must be 1 to 63 characters from a-z, 0-9, _ and -")
        }
        guard !isReserved(nodeID) else {
            throw IdentityError("node id '\(nodeID)' is reserved for the hub itself (hub, hub-admin, govex, anonymous and the hub-, govex- prefixes); choose the department's own name")
        }
    }

    public static func isValidNodeID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 63 && id.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45 }
    }

    /// Spends a token: checks it (unused, unexpired, for this node), issues the certificate
    /// and registers the signing key, all in one transaction.
    /// `signingKeyProof` is the signing key's signature over `NodeKeyProof.enrollmentStatement`:
    /// nobody registers a public key they cannot sign with (nor another node's). Enrolling a
    /// revoked node again (a token the administrator issued after the revocation) reinstates it:
    /// its earlier certificates and signing keys are retired.
    public static func enroll(nodeID: String, token: String, requestPEM: String, signingKeyPEM: String, signingKeyProof: String?,
                              ca: CertificateAuthority, hubSigningKey: VerifyingKey, on sql: PostgresConnection) async throws -> Granted {
        try checkNodeID(nodeID)
        let request = try NodeIdentity.parseRequest(pem: requestPEM)
        let signingKey: VerifyingKey
        do {
            signingKey = try VerifyingKey(pem: signingKeyPEM)
        } catch {
            throw IdentityError("signing_key is not a public key in PEM: \(error)")
        }
        guard NodeKeyProof.isValid(signingKeyProof, over: NodeKeyProof.enrollmentStatement(node: nodeID, token: token, keyPEM: signingKey.pem), by: signingKey) else {
            throw IdentityError("signing_key_proof is not the signing key's signature over the enrollment statement: update govex on the agent, and enroll with the key it holds")
        }
        let hash = tokenHash(token)
        return try await sql.transaction {
            let row = try await sql.query("""
                SELECT node_id, used_at IS NOT NULL, expires_at < now() FROM govex.enrollment_tokens WHERE token_hash = $1::bytea FOR UPDATE
                """, [hash]).rows.first
            guard let row, row[0] == nodeID else { throw EnrollmentRefused("the enrollment token is not valid for node \(nodeID)") }
            guard row[1] == "f" else { throw EnrollmentRefused("the enrollment token was already used; ask the hub administrator for a new one") }
            guard row[2] == "f" else { throw EnrollmentRefused("the enrollment token has expired; ask the hub administrator for a new one") }
            let certificate = try ca.issueClientCertificate(for: request, nodeID: nodeID)
            let pem = try certificate.serializeAsPEM().pemString
            try await sql.query("UPDATE govex.enrollment_tokens SET used_at = now() WHERE token_hash = $1::bytea",
                                [hash])
            let reinstated = try await sql.query("UPDATE govex.nodes SET revoked_at = NULL WHERE node_id = $1 AND revoked_at IS NOT NULL",
                                                 [nodeID]).affectedRows == 1
            if reinstated {
                try await sql.query("UPDATE govex.node_keys SET retired_at = coalesce(retired_at, now()) WHERE node_id = $1", [nodeID])
                try await HubStore.audit("node_reinstated", subject: nodeID, actor: SubscriptionRules.hubAdministrator, on: sql)
            }
            if try await sql.query("SELECT 1 FROM govex.node_keys WHERE node_id = $1 AND key_id = $2 AND retired_at IS NOT NULL",
                                   [nodeID, Hex.encode(signingKey.keyID)]).rows.first != nil {
                throw EnrollmentRefused("signing key \(Hex.encode(signingKey.keyID)) was retired at the hub; make a new one (govex keygen) and enroll with it")
            }
            try await NodeCertificates.recordCurrent(certificate, node: nodeID, on: sql)
            try await HubStore.registerKey(signingKey, for: nodeID, on: sql)
            try await HubStore.audit("node_enrolled", subject: nodeID, actor: nodeID,
                                     details: [("certificate_serial", BatchJSON.string(certificate.serialNumber.description)),
                                               ("signing_key_id", BatchJSON.string(Hex.encode(signingKey.keyID)))], on: sql)
            return Granted(certificatePEM: pem, caPEM: try ca.certificate.serializeAsPEM().pemString, hubSigningKeyPEM: hubSigningKey.pem)
        }
    }
}

public struct EnrollmentRefused: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
