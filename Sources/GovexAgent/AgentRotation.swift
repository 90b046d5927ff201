import Crypto
import Foundation
import GovexAPI
import GovexIdentity
import GovexKeyStore
import GovexWire
import SwiftASN1
import X509
#if canImport(Glibc)
import Glibc
#endif

/// `govex rotate tls|signing`: a new TLS certificate before the current one expires, and a
/// new batch-signing key under a new key id, both obtained over the current identity. The
/// old signing key stays registered at the hub, so batches it signed (in the spool, or
/// stored) stay verifiable.
public enum AgentRotation {
    public static let warningDays = 30

    /// The warning an agent logs at start when its certificate expires within `warningDays`.
    public static func expiryWarning(notAfter: Date, now: Date = Date()) -> String? {
        let days = Int(notAfter.timeIntervalSince(now) / 86_400)
        guard days < warningDays else { return nil }
        return days < 0
            ? "the TLS certificate expired on \(ISO8601DateFormatter().string(from: notAfter)): the hub refuses it; enroll again with a new token"
            : "the TLS certificate expires in \(days) days (\(ISO8601DateFormatter().string(from: notAfter))): run govex rotate tls"
    }

    /// A new TLS key and certificate (the hub's CA must sign it, for this node), replacing
    /// the current pair; returns the new certificate's expiry.
    public static func rotateTLS(_ configuration: AgentConfiguration, client: HubClient) async throws -> Date {
        let files = AgentEnrollment.Files(dataDirectory: configuration.dataDirectory)
        let ca = try Certificate(pemEncoded: try KeyStore.readPublic(path: files.hubCA))
        let (key, request) = try NodeIdentity.makeRequest(nodeID: configuration.nodeID)
        let body = try JSONEncoder().encode(CertificateRenewal(csr: try request.serializeAsPEM().pemString))
        let response = try await client.post(HubRoute.certificates, body: Array(body), contentType: "application/json")
        guard response.status == 200, let issued = try? JSONDecoder().decode(IssuedCertificate.self, from: Data(response.body)) else {
            throw IdentityError("the hub refused to renew the certificate (HTTP \(response.status)): \(response.text)")
        }
        let certificate = try Certificate(pemEncoded: issued.certificate)
        guard NodeIdentity.nodeID(of: certificate) == configuration.nodeID, certificate.publicKey == Certificate.PublicKey(key.publicKey),
              ca.publicKey.isValidSignature(certificate.signature, for: certificate) else {
            throw IdentityError("the hub returned a certificate that is not this node's or not signed by its CA")
        }
        try KeyStore.replace(files.key, with: key.pemRepresentation, secret: true)
        try KeyStore.replace(files.certificate, with: issued.certificate, secret: false)
        return certificate.notValidAfter
    }

    /// A new signing key: registered at the hub first, then put in place of the current one,
    /// which is kept beside it as `signing.<old key id>.key`. Returns the new key's id.
    public static func rotateSigning(_ configuration: AgentConfiguration, client: HubClient) async throws -> String {
        let current = try KeyStore.loadSigningKey(path: configuration.signingKeyPath)
        let fresh = try SigningKey.generate(configuration.signingAlgorithm)
        let body = try JSONEncoder().encode(KeyRegistrationRequest.make(node: configuration.nodeID, fresh: fresh, current: current))
        let response = try await client.post(HubRoute.keys, body: Array(body), contentType: "application/json")
        guard response.status == 200 else {
            throw IdentityError("the hub did not register the new signing key (HTTP \(response.status)): \(response.text); the current key stays in use")
        }
        let path = configuration.signingKeyPath
        let directory = (path as NSString).deletingLastPathComponent
        let retired = directory + "/signing." + Hex.encode(current.publicKey.keyID) + ".key"
        try KeyStore.writeSecret(path: retired, contents: try KeyStore.readSecret(path: path))
        try KeyStore.replace(path, with: try fresh.pkcs8PEM(), secret: true)
        let publicPath = (path as NSString).deletingPathExtension + ".pub"
        if FileManager.default.fileExists(atPath: publicPath) { try KeyStore.replace(publicPath, with: fresh.publicKey.pem, secret: false) }
        return Hex.encode(fresh.publicKey.keyID)
    }
}
