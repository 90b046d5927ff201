import Crypto
import Foundation
import GovexIdentity
import GovexKeyStore
import GovexTestSupport
import Testing
import SwiftASN1
import X509

/// The hub's CA, checked by `openssl verify`, not only by itself.
@Suite("Certificate authority")
struct CertificateAuthorityTests {
    static func write(_ certificate: Certificate, _ directory: String, _ name: String) throws -> String {
        let path = directory + "/" + name
        try certificate.serializeAsPEM().pemString.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func verify(ca: String, _ certificate: String, purpose: String) throws -> Subprocess.Result {
        try Subprocess.run(["openssl", "verify", "-CAfile", ca, "-purpose", purpose, certificate])
    }

    @Test("a node's certificate names the node, is for client authentication, and openssl verifies it against the CA")
    func clientCertificate() throws {
        let directory = Subprocess.temporaryDirectory("govex-ca")
        let ca = try CertificateAuthority.create(commonName: "govex hub CA")
        let (_, request) = try NodeIdentity.makeRequest(nodeID: "gongan")
        let certificate = try ca.issueClientCertificate(for: request, nodeID: "gongan")
        #expect(NodeIdentity.nodeID(of: certificate) == "gongan")
        let caPath = try Self.write(ca.certificate, directory, "ca.pem")
        let nodePath = try Self.write(certificate, directory, "node.pem")
        let client = try Self.verify(ca: caPath, nodePath, purpose: "sslclient")
        #expect(client.status == 0 && client.output.contains("OK"), "\(client.output)")
        let asServer = try Self.verify(ca: caPath, nodePath, purpose: "sslserver")
        #expect(asServer.status != 0, "a node certificate must not serve TLS: \(asServer.output)")
    }

    @Test("the hub's server certificate names its host and loopback address")
    func serverCertificate() throws {
        let directory = Subprocess.temporaryDirectory("govex-ca")
        let ca = try CertificateAuthority.create(commonName: "govex hub CA")
        let key = P256.Signing.PrivateKey()
        let certificate = try ca.issueServerCertificate(publicKey: key.publicKey, hostnames: ["localhost"], addresses: ["127.0.0.1", "::1"])
        let caPath = try Self.write(ca.certificate, directory, "ca.pem")
        let serverPath = try Self.write(certificate, directory, "server.pem")
        let result = try Self.verify(ca: caPath, serverPath, purpose: "sslserver")
        #expect(result.status == 0, "\(result.output)")
        let names = try Subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", serverPath]).output
        #expect(names.contains("DNS:localhost") && names.contains("IP Address:127.0.0.1") && names.contains("IP Address:0:0:0:0:0:0:0:1"), "\(names)")
        #expect(throws: IdentityError.self) {
            _ = try ca.issueServerCertificate(publicKey: key.publicKey, hostnames: [], addresses: ["not-an-address"])
        }
    }

    @Test("another CA's certificate and an expired one fail openssl verify")
    func foreignAndExpired() throws {
        let directory = Subprocess.temporaryDirectory("govex-ca")
        let ca = try CertificateAuthority.create(commonName: "govex hub CA")
        let other = try CertificateAuthority.create(commonName: "someone else's CA")
        let caPath = try Self.write(ca.certificate, directory, "ca.pem")
        let (_, request) = try NodeIdentity.makeRequest(nodeID: "gongan")
        let foreign = try Self.write(try other.issueClientCertificate(for: request, nodeID: "gongan"), directory, "foreign.pem")
        let foreignResult = try Self.verify(ca: caPath, foreign, purpose: "sslclient")
        #expect(foreignResult.status != 0 && foreignResult.output.contains("unable to get local issuer certificate"), "\(foreignResult.output)")
        let longAgo = Date() - 400 * 86_400
        let expired = try Self.write(try ca.issueClientCertificate(for: request, nodeID: "gongan", days: 30, now: longAgo), directory, "expired.pem")
        let expiredResult = try Self.verify(ca: caPath, expired, purpose: "sslclient")
        #expect(expiredResult.status != 0 && expiredResult.output.contains("expired"), "\(expiredResult.output)")
    }

    @Test("a request for another node, or with a broken signature, is refused; one made by openssl is accepted")
    func requests() throws {
        let ca = try CertificateAuthority.create(commonName: "govex hub CA")
        let (_, request) = try NodeIdentity.makeRequest(nodeID: "minzheng")
        #expect { _ = try ca.issueClientCertificate(for: request, nodeID: "gongan") } throws: { error in
            (error as? IdentityError)?.description.contains("names minzheng, but the enrollment token is for gongan") == true
        }
        // Flip one bit inside the signature of the DER encoding.
        var der = try request.serializeAsPEM().derBytes
        der[der.count - 5] ^= 0x01
        let tampered = try CertificateSigningRequest(derEncoded: der)
        #expect { _ = try ca.issueClientCertificate(for: tampered, nodeID: "minzheng") } throws: { error in
            (error as? IdentityError)?.description.contains("signature is invalid") == true
        }

        let directory = Subprocess.temporaryDirectory("govex-ca")
        try Subprocess.check(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                              "-keyout", directory + "/k.pem", "-out", directory + "/r.pem", "-subj", "/O=govex/CN=gongan"])
        let fromOpenSSL = try NodeIdentity.parseRequest(pem: String(contentsOfFile: directory + "/r.pem", encoding: .utf8))
        let certificate = try ca.issueClientCertificate(for: fromOpenSSL, nodeID: "gongan")
        #expect(NodeIdentity.nodeID(of: certificate) == "gongan")
    }

    @Test("the CA is stored with a 0600 key, loads back, and a key others can read is refused")
    func files() throws {
        let directory = Subprocess.temporaryDirectory("govex-ca") + "/ca"
        let ca = try CertificateAuthority.create(commonName: "govex hub CA")
        try ca.write(to: directory)
        let mode = try FileManager.default.attributesOfItem(atPath: directory + "/ca.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try CertificateAuthority.load(from: directory).certificate == ca.certificate)
        #expect(throws: KeyStoreError.exists(path: directory + "/ca.key")) { try ca.write(to: directory) }
        chmod(directory + "/ca.key", 0o644)
        #expect(throws: KeyStoreError.self) { _ = try CertificateAuthority.load(from: directory) }
    }
}
