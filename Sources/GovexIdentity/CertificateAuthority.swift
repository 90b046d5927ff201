import Crypto
import Foundation
import GovexKeyStore
import SwiftASN1
import X509

public struct IdentityError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The hub's certificate authority: it issues each enrolled node a client certificate
/// whose subject common name is the node id, and the hub its server certificate.
/// Keys are ECDSA P-256 (every TLS stack speaks it); certificates are X.509 v3.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    private let key: P256.Signing.PrivateKey

    public init(certificate: Certificate, key: P256.Signing.PrivateKey) throws {
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw IdentityError("the CA key does not belong to the CA certificate")
        }
        self.certificate = certificate
        self.key = key
    }

    /// A new self-signed CA, valid for `years` from `now`.
    public static func create(commonName: String, years: Int = 10, now: Date = Date()) throws -> CertificateAuthority {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("govex")
            CommonName(commonName)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now - 300, notValidAfter: now + Double(years) * 365.25 * 86_400,
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
            },
            issuerPrivateKey: .init(key))
        return try CertificateAuthority(certificate: certificate, key: key)
    }

    /// Issues a node's client certificate for its CSR. The CSR must be validly signed and
    /// name exactly `nodeID` as its common name: the certificate is the node's identity on
    /// every request, so the hub, not the requester, decides whose it is.
    public func issueClientCertificate(for request: CertificateSigningRequest, nodeID: String, days: Int = 365,
                                       now: Date = Date()) throws -> Certificate {
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw IdentityError("the certificate signing request's signature is invalid")
        }
        guard P256.Signing.PublicKey(request.publicKey) != nil else {
            throw IdentityError("the certificate signing request's key must be ECDSA P-256 (as `govex enroll` makes it), not \(request.publicKey)")
        }
        guard let requested = NodeIdentity.commonName(of: request.subject) else {
            throw IdentityError("the certificate signing request has no common name; it must be the node id \(nodeID)")
        }
        guard requested == nodeID else {
            throw IdentityError("the certificate signing request names \(requested), but the enrollment token is for \(nodeID)")
        }
        let subject = try DistinguishedName {
            OrganizationName("govex")
            CommonName(nodeID)
        }
        return try issue(publicKey: request.publicKey, subject: subject, days: days, now: now,
                         purpose: [try ExtendedKeyUsage([.clientAuth]).makeCertificateExtension()])
    }

    /// Whether this CA itself signed `leaf` (not an intermediate under it): node certificates
    /// sit right under the hub's CA, whatever a chain presented over TLS would allow.
    public func issuedDirectly(_ leaf: Certificate) -> Bool {
        leaf.issuer == certificate.subject && certificate.publicKey.isValidSignature(leaf.signature, for: leaf)
    }

    /// Issues the hub's own server certificate, naming the hosts and addresses agents dial.
    public func issueServerCertificate(publicKey: P256.Signing.PublicKey, hostnames: [String], addresses: [String],
                                       days: Int = 825, now: Date = Date()) throws -> Certificate {
        let subject = try DistinguishedName {
            OrganizationName("govex")
            CommonName(hostnames.first ?? addresses.first ?? "govex-hub")
        }
        var names: [GeneralName] = hostnames.map { .dnsName($0) }
        for address in addresses {
            guard let bytes = NodeIdentity.addressBytes(address) else { throw IdentityError("'\(address)' is not an IPv4 or IPv6 address") }
            names.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...])))
        }
        return try issue(publicKey: .init(publicKey), subject: subject, days: days, now: now, purpose: [
            try ExtendedKeyUsage([.serverAuth]).makeCertificateExtension(),
            try SubjectAlternativeNames(names).makeCertificateExtension(),
        ])
    }

    private func issue(publicKey: Certificate.PublicKey, subject: DistinguishedName, days: Int, now: Date,
                       purpose: [Certificate.Extension]) throws -> Certificate {
        let notAfter = min(now + Double(days) * 86_400, certificate.notValidAfter)
        var extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            SubjectKeyIdentifier(hash: publicKey)
            AuthorityKeyIdentifier(keyIdentifier: try certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        }
        for `extension` in purpose { try extensions.append(`extension`) }
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: publicKey, notValidBefore: now - 300, notValidAfter: notAfter,
            issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: .init(key))
    }

    public static func isIPAddress(_ text: String) -> Bool { NodeIdentity.addressBytes(text) != nil }

    // MARK: Files

    public static let certificateFileName = "ca.pem"
    public static let keyFileName = "ca.key"

    /// Writes the CA certificate (0644) and key (0600) into `directory`; never overwrites.
    public func write(to directory: String) throws {
        try KeyStore.writeSecret(path: directory + "/" + Self.keyFileName, contents: key.pemRepresentation)
        try KeyStore.writePublic(path: directory + "/" + Self.certificateFileName, contents: try certificate.serializeAsPEM().pemString)
    }

    /// Loads the CA from `directory`, refusing a key file readable by group or others.
    public static func load(from directory: String) throws -> CertificateAuthority {
        let keyPath = directory + "/" + keyFileName, certificatePath = directory + "/" + certificateFileName
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: try KeyStore.readSecret(path: keyPath))
        } catch let error as KeyStoreError {
            throw error
        } catch {
            throw IdentityError("\(keyPath): not a P-256 private key in PEM (\(error))")
        }
        return try CertificateAuthority(certificate: try NodeIdentity.loadCertificate(path: certificatePath), key: key)
    }
}
