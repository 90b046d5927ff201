import GovexAPI
import GovexPostgres
import GovexWire

/// A node's batch-signing keys. A key counts (its batches are accepted) only once accepted:
/// proven at enrollment, endorsed by a current key of the node at rotation, or accepted by the
/// administrator; and only until it is retired. A client certificate alone never adds one.
public enum NodeKeys {
    /// Why a key registration or an administrator's act was refused.
    public struct Refused: Error, Equatable, CustomStringConvertible {
        public let code: HubErrorCode
        public let description: String
        init(_ code: HubErrorCode, _ description: String) {
            self.code = code
            self.description = description
        }
    }

    /// Adds an accepted key (enrollment, after its proof was checked).
    static func insertAccepted(_ key: VerifyingKey, for nodeID: String, on sql: PostgresConnection) async throws {
        try await refuseForeign(key, for: nodeID, on: sql)
        try await sql.query("""
            INSERT INTO govex.node_keys (node_id, key_id, algorithm, public_key_pem, accepted_at) VALUES ($1, $2, $3, $4, now())
            ON CONFLICT (node_id, key_id) DO NOTHING
            """, [nodeID, Hex.encode(key.keyID), key.algorithm.description, key.pem])
    }

    /// One public key belongs to one node: the same key under two nodes would let one sign as the other.
    static func refuseForeign(_ key: VerifyingKey, for nodeID: String, on sql: PostgresConnection) async throws {
        if let other = try await sql.query("SELECT node_id FROM govex.node_keys WHERE key_id = $1 AND node_id <> $2 LIMIT 1",
                                           [Hex.encode(key.keyID), nodeID]).rows.first?[0] {
            throw Refused(.keyInUse, "signing key \(Hex.encode(key.keyID)) is already registered for node \(other ?? "?"): every node signs with its own key")
        }
    }

    /// `POST /v1/keys` from `nodeID` (already authenticated by its current certificate).
    public static func register(_ request: KeyRegistrationRequest, from nodeID: String, on sql: PostgresConnection) async throws -> KeyRegistrationResponse {
        let key: VerifyingKey
        do {
            key = try VerifyingKey(pem: request.signingKey)
        } catch {
            throw Refused(.badRequest, "signing_key is not an Ed25519 or SM2 public key in PEM: \(error)")
        }
        let statement = NodeKeyProof.rotationStatement(node: nodeID, keyPEM: key.pem)
        guard NodeKeyProof.isValid(request.proof, over: statement, by: key) else {
            throw Refused(.noProofOfPossession, "proof is not the new key's signature over its rotation statement: the node must hold the key it registers")
        }
        return try await sql.transaction {
            try await refuseForeign(key, for: nodeID, on: sql)
            var endorsed = false
            if let endorser = request.endorsedBy,
               let pem = try await sql.query("""
                   SELECT public_key_pem FROM govex.node_keys
                   WHERE node_id = $1 AND key_id = $2 AND accepted_at IS NOT NULL AND retired_at IS NULL
                   """, [nodeID, endorser]).rows.first?[0],
               let current = try? VerifyingKey(pem: pem) {
                endorsed = NodeKeyProof.isValid(request.endorsement, over: statement, by: current)
            }
            let keyID = Hex.encode(key.keyID)
            let inserted = try await sql.query("""
                INSERT INTO govex.node_keys (node_id, key_id, algorithm, public_key_pem, accepted_at)
                VALUES ($1, $2, $3, $4, CASE WHEN $5::boolean THEN now() END)
                ON CONFLICT (node_id, key_id) DO UPDATE SET accepted_at = coalesce(node_keys.accepted_at, EXCLUDED.accepted_at)
                    WHERE node_keys.retired_at IS NULL
                RETURNING accepted_at IS NOT NULL
                """, [nodeID, keyID, key.algorithm.description, key.pem, endorsed ? "t" : "f"]).rows.first
            guard let inserted else { throw Refused(.keyRetired, "signing key \(keyID) was retired and cannot be registered again: make a new key") }
            let status: KeyRegistrationResponse.Status = inserted[0] == "t" ? .registered : .pendingAdministrator
            try await HubStore.audit(status == .registered ? "signing_key_registered" : "signing_key_pending", subject: nodeID, actor: nodeID,
                                     details: [("key_id", BatchJSON.string(keyID)), ("algorithm", BatchJSON.string(key.algorithm.description)),
                                               ("endorsed_by", request.endorsedBy.map(BatchJSON.string) ?? "null"), ("endorsed", endorsed ? "true" : "false")],
                                     on: sql)
            return KeyRegistrationResponse(keyID: keyID, status: status)
        }
    }

    /// `govex hub node accept-key NODE KEYID`: a key that arrived without a valid endorsement.
    public static func accept(node nodeID: String, keyID: String, on sql: PostgresConnection) async throws {
        try await administer("signing_key_accepted", node: nodeID, keyID: keyID, on: sql, """
            UPDATE govex.node_keys SET accepted_at = coalesce(accepted_at, now())
            WHERE node_id = $1 AND key_id = $2 AND retired_at IS NULL
            """, otherwise: "node \(nodeID) has no signing key \(keyID) waiting (a retired key cannot be accepted)")
    }

    /// `govex hub node retire-key NODE KEYID`: from now on batches signed with it are rejected.
    public static func retire(node nodeID: String, keyID: String, on sql: PostgresConnection) async throws {
        try await administer("signing_key_retired", node: nodeID, keyID: keyID, on: sql, """
            UPDATE govex.node_keys SET retired_at = coalesce(retired_at, now()) WHERE node_id = $1 AND key_id = $2
            """, otherwise: "node \(nodeID) has no signing key \(keyID); `govex hub node keys \(nodeID)` lists them")
    }

    static func administer(_ action: String, node nodeID: String, keyID: String, on sql: PostgresConnection, _ statement: String,
                           otherwise: String) async throws {
        try await sql.transaction {
            guard try await sql.query(statement, [nodeID, keyID]).affectedRows == 1 else { throw Refused(.noSuchKey, otherwise) }
            try await HubStore.audit(action, subject: nodeID, actor: SubscriptionRules.hubAdministrator,
                                     details: [("key_id", BatchJSON.string(keyID))], on: sql)
        }
    }

    public struct Listed: Sendable, Equatable {
        public var keyID: String
        public var algorithm: String
        public var state: String
    }

    /// A node's keys with their state: current, waiting or retired.
    public static func list(node nodeID: String, on sql: PostgresConnection) async throws -> [Listed] {
        try await sql.query("""
            SELECT key_id, algorithm, CASE WHEN retired_at IS NOT NULL THEN 'retired' WHEN accepted_at IS NULL THEN 'waiting' ELSE 'current' END
            FROM govex.node_keys WHERE node_id = $1 ORDER BY registered_at, key_id
            """, [nodeID]).rows.map { Listed(keyID: $0[0] ?? "", algorithm: $0[1] ?? "", state: $0[2] ?? "") }
    }

    /// The key a batch names, if it counts now (accepted and not retired).
    static func current(node nodeID: String, keyID: [UInt8], on sql: PostgresConnection) async throws -> VerifyingKey? {
        try await sql.query("""
            SELECT public_key_pem FROM govex.node_keys WHERE node_id = $1 AND key_id = $2 AND accepted_at IS NOT NULL AND retired_at IS NULL
            """, [nodeID, Hex.encode(keyID)]).rows.first?[0].flatMap { try? VerifyingKey(pem: $0) }
    }
}
