import Foundation
import GovexAPI
import GovexIdentity
import GovexPostgres
import GovexWire
import Hummingbird
import NIOCore
import SwiftASN1
import X509

/// An enrolled node renews its TLS certificate and registers new signing keys, over its
/// current (valid, unrevoked) certificate (see docs/api.md).
extension HubServer {
    func addRotationRoutes(to router: Router<HubRequestContext>, authenticated: @escaping Authenticated) {
        let pool = self.pool, ca = settings.ca, endorsements = settings.hubKeyEndorsements

        // How agents that trust an older hub signing key learn the current one.
        router.get("/v1/hub/keys") { _, context -> Response in
            try await authenticated(context) { _ in
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                return Self.json(.ok, String(decoding: try encoder.encode(endorsements), as: UTF8.self))
            }
        }

        router.post("/v1/certificates") { request, context -> Response in
            try await authenticated(context) { node in
                struct Body: Decodable { let csr: String }
                let bytes = try await request.body.collect(upTo: 64 << 10)
                guard let body = try? JSONDecoder().decode(Body.self, from: Data(Array(buffer: bytes))) else {
                    return Self.error(.badRequest, "bad_request", "expected JSON {csr}")
                }
                let certificate: Certificate
                do {
                    certificate = try ca.issueClientCertificate(for: try NodeIdentity.parseRequest(pem: body.csr), nodeID: node)
                } catch let invalid as IdentityError {
                    return Self.error(.badRequest, "invalid_request", invalid.description)
                }
                let pem = try certificate.serializeAsPEM().pemString
                try await pool.withConnection { sql in
                    try await sql.transaction {
                        try await sql.query("""
                            INSERT INTO govex.certificates (serial, node_id, not_after, pem) VALUES ($1, $2, $3::timestamptz, $4)
                            """, [certificate.serialNumber.description, node, ISO8601DateFormatter().string(from: certificate.notValidAfter), pem])
                        try await HubStore.audit("certificate_renewed", subject: node, actor: node,
                                                 details: [("serial", BatchJSON.string(certificate.serialNumber.description))], on: sql)
                    }
                }
                return Self.json(.ok, BatchJSON.object([("certificate", BatchJSON.string(pem))]))
            }
        }

        router.post("/v1/keys") { request, context -> Response in
            try await authenticated(context) { node in
                struct Body: Decodable { let signing_key: String }
                let bytes = try await request.body.collect(upTo: 64 << 10)
                guard let body = try? JSONDecoder().decode(Body.self, from: Data(Array(buffer: bytes))),
                      let key = try? VerifyingKey(pem: body.signing_key) else {
                    return Self.error(.badRequest, "bad_request", "expected JSON {signing_key: a public key in PEM}")
                }
                try await pool.withConnection { sql in
                    try await sql.transaction {
                        try await HubStore.registerKey(key, for: node, on: sql)
                        try await HubStore.audit("signing_key_registered", subject: node, actor: node,
                                                 details: [("key_id", BatchJSON.string(Hex.encode(key.keyID))),
                                                           ("algorithm", BatchJSON.string(key.algorithm.description))], on: sql)
                    }
                }
                return Self.json(.ok, BatchJSON.object([("key_id", BatchJSON.string(Hex.encode(key.keyID)))]))
            }
        }
    }
}
