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
        router.get(RouterPath(HubRoute.hubKeys)) { _, context -> Response in
            try await authenticated(context) { _ in
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                return Self.json(.ok, String(decoding: try encoder.encode(endorsements), as: UTF8.self))
            }
        }

        router.post(RouterPath(HubRoute.certificates)) { request, context -> Response in
            try await authenticated(context) { node in
                let bytes = try await request.body.collect(upTo: 64 << 10)
                guard let body = try? JSONDecoder().decode(CertificateRenewal.self, from: Data(Array(buffer: bytes))) else {
                    return Self.error(.badRequest, "expected JSON {csr}")
                }
                let certificate: Certificate
                do {
                    certificate = try ca.issueClientCertificate(for: try NodeIdentity.parseRequest(pem: body.csr), nodeID: node)
                } catch let invalid as IdentityError {
                    return Self.error(.invalidRequest, invalid.description)
                }
                let pem = try certificate.serializeAsPEM().pemString
                try await pool.withConnection { sql in
                    try await sql.transaction {
                        // The certificate this request came with is retired: only the newest one counts.
                        try await NodeCertificates.recordCurrent(certificate, node: node, on: sql)
                        try await HubStore.audit("certificate_renewed", subject: node, actor: node,
                                                 details: [("serial", BatchJSON.string(certificate.serialNumber.description))], on: sql)
                    }
                }
                HubLog.write(5, "node \(node) renewed its certificate (serial \(certificate.serialNumber)); the previous one is retired")
                return try Self.encoded(IssuedCertificate(certificate: pem))
            }
        }

        router.post(RouterPath(HubRoute.keys)) { request, context -> Response in
            try await authenticated(context) { node in
                let bytes = try await request.body.collect(upTo: 64 << 10)
                guard let body = try? JSONDecoder().decode(KeyRegistrationRequest.self, from: Data(Array(buffer: bytes))) else {
                    return Self.error(.badRequest, "expected JSON {signing_key, proof, endorsed_by, endorsement}")
                }
                do {
                    let registered = try await pool.withConnection { sql in try await NodeKeys.register(body, from: node, on: sql) }
                    // An unendorsed key is kept for the administrator, but the request is still a refusal to record.
                    var response = try Self.encoded(registered, status: registered.status == .registered ? .ok : .accepted)
                    if registered.status == .pendingAdministrator { response.headers[HubGateMiddleware.refusalHeader] = HubErrorCode.signingKeyNotEndorsed.rawValue }
                    HubLog.write(registered.status == .registered ? 5 : 4, registered.status == .registered
                        ? "node \(node) registered signing key \(registered.keyID), endorsed by a current key"
                        : "node \(node) registered signing key \(registered.keyID) without an endorsement: it waits for govex hub node accept-key")
                    return response
                } catch let refused as NodeKeys.Refused {
                    return Self.error(refused.code, refused.description)
                }
            }
        }
    }
}
