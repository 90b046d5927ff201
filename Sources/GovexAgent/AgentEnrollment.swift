import Crypto
import Foundation
import GovexAPI
import GovexIdentity
import GovexKeyStore
import GovexWire
import SwiftASN1
import X509

/// `govex enroll`: the agent obtains its TLS identity from the hub with a one-time token.
/// The hub's CA is downloaded and accepted only if its SHA-256 matches the one the hub
/// administrator handed over with the token; everything after that is verified TLS.
public enum AgentEnrollment {
    public struct Files: Sendable {
        public let directory: String
        public var key: String { directory + "/" + NodeIdentity.keyFileName }
        public var certificate: String { directory + "/" + NodeIdentity.certificateFileName }
        public var hubCA: String { directory + "/" + NodeIdentity.caFileName }
        public var hubSigningKey: String { directory + "/hub-signing.pub" }

        public init(dataDirectory: String) {
            directory = dataDirectory + "/tls"
        }
    }

    /// The SHA-256 of a certificate's DER encoding, lower-case hex: what `govex hub node add` prints.
    public static func fingerprint(_ certificate: Certificate) throws -> String {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return Hex.encode(SHA256.hash(data: serializer.serializedBytes))
    }

    public static func enroll(nodeID: String, dataDirectory: String, signingKeyPath: String, hubURL: String, token: String,
                              caSHA256: String) async throws -> Files {
        let files = Files(dataDirectory: dataDirectory)
        guard !FileManager.default.fileExists(atPath: files.key) else {
            throw IdentityError("\(files.key) exists: this agent is already enrolled (remove \(files.directory) to enroll again)")
        }
        let signingKey = try KeyStore.loadSigningKey(path: signingKeyPath)
        let pinned = caSHA256.lowercased().replacingOccurrences(of: ":", with: "")

        let caResponse: HubClient.Response
        do {
            caResponse = try await HubClient(baseURL: hubURL, caPEM: nil, identity: nil).closing { try await $0.get(HubRoute.ca) }
        } catch {
            throw IdentityError("cannot reach the hub at \(hubURL): \(error)")
        }
        guard caResponse.status == 200, let ca = try? Certificate(pemEncoded: caResponse.text) else {
            throw IdentityError("the hub at \(hubURL) did not return its CA certificate (HTTP \(caResponse.status))")
        }
        let actual = try fingerprint(ca)
        guard actual == pinned else {
            throw IdentityError("the hub's CA has SHA-256 \(actual), not the \(pinned) you were given: do not enroll; check the hub address with its administrator")
        }

        let (key, request) = try NodeIdentity.makeRequest(nodeID: nodeID)
        let body = try JSONEncoder().encode(EnrollRequest(
            node: nodeID, token: token, csr: try request.serializeAsPEM().pemString, signingKey: signingKey.publicKey.pem,
            signingKeyProof: try NodeKeyProof.sign(NodeKeyProof.enrollmentStatement(node: nodeID, token: token, keyPEM: signingKey.publicKey.pem),
                                                   with: signingKey)))
        let caPEM = try ca.serializeAsPEM().pemString
        let response = try await HubClient(baseURL: hubURL, caPEM: caPEM, identity: nil).closing {
            try await $0.post(HubRoute.enroll, body: Array(body), contentType: "application/json")
        }
        guard response.status == 200, let granted = try? JSONDecoder().decode(EnrollResponse.self, from: Data(response.body)) else {
            throw IdentityError("the hub refused the enrollment (HTTP \(response.status)): \(response.text)")
        }
        let certificate = try Certificate(pemEncoded: granted.certificate)
        guard NodeIdentity.nodeID(of: certificate) == nodeID, certificate.publicKey == Certificate.PublicKey(key.publicKey),
              ca.publicKey.isValidSignature(certificate.signature, for: certificate) else {
            throw IdentityError("the hub returned a certificate that is not this node's or not signed by its CA")
        }
        let hubSigningKey = try VerifyingKey(pem: granted.hubSigningKey)
        try KeyStore.writeSecret(path: files.key, contents: key.pemRepresentation)
        try KeyStore.writePublic(path: files.certificate, contents: granted.certificate)
        try KeyStore.writePublic(path: files.hubCA, contents: caPEM)
        try KeyStore.writePublic(path: files.hubSigningKey, contents: hubSigningKey.pem)
        return files
    }
}
