import Crypto
import Foundation
import GovexKeyStore
import SwiftASN1
import X509

/// A node's TLS identity: its P-256 key, the request it sends at enrollment, and the
/// certificate the hub returns, whose common name is the node id.
public enum NodeIdentity {
    public static let keyFileName = "tls.key"
    public static let certificateFileName = "tls.pem"
    public static let caFileName = "hub-ca.pem"

    /// A new key and a certificate signing request naming `nodeID`.
    public static func makeRequest(nodeID: String) throws -> (key: P256.Signing.PrivateKey, request: CertificateSigningRequest) {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("govex")
            CommonName(nodeID)
        }
        let request = try CertificateSigningRequest(version: .v1, subject: subject, privateKey: .init(key),
                                                    attributes: .init(), signatureAlgorithm: .ecdsaWithSHA256)
        return (key, request)
    }

    /// The node a certificate identifies: its subject's common name.
    public static func nodeID(of certificate: Certificate) -> String? {
        commonName(of: certificate.subject)
    }

    static func commonName(of name: DistinguishedName) -> String? {
        for relativeName in name {
            for attribute in relativeName where attribute.type == .RDNAttributeType.commonName {
                if let text = String(describing: attribute.value) as String?, !text.isEmpty { return text }
            }
        }
        return nil
    }

    public static func loadCertificate(path: String) throws -> Certificate {
        let text = try KeyStore.readPublic(path: path)
        do {
            return try Certificate(pemEncoded: text)
        } catch {
            throw IdentityError("\(path): not a PEM certificate (\(error))")
        }
    }

    public static func parseRequest(pem: String) throws -> CertificateSigningRequest {
        do {
            return try CertificateSigningRequest(pemEncoded: pem)
        } catch {
            throw IdentityError("not a PEM certificate signing request (\(error))")
        }
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 address in text form.
    static func addressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
