import Foundation
import GovexAPI
import GovexIdentity
import GovexKeyStore
import GovexWire
import X509

extension ConfigurationCheck {
    /// What `govex check` verifies besides the database: the signing key (present, private,
    /// a key, of the configured algorithm), the enrollment (certificate present and valid),
    /// the hub (reachable with that certificate) and, for a publishing agent, that what it
    /// publishes is what the hub's catalog lists. Each problem names what to do.
    public static func environment(_ configuration: AgentConfiguration) async -> [Finding] {
        var findings: [Finding] = []
        func add(_ severity: Finding.Severity, _ subject: String, _ message: String) {
            findings.append(Finding(severity: severity, subject: subject, message: message, fix: nil))
        }

        do {
            let key = try KeyStore.loadSigningKey(path: configuration.signingKeyPath)
            if key.algorithm != configuration.signingAlgorithm {
                add(.error, "signing key", "\(configuration.signingKeyPath) holds an \(key.algorithm) key but [signing] algorithm is \(configuration.signingAlgorithm)")
            } else {
                add(.ok, "signing key", "\(configuration.signingKeyPath): \(key.algorithm), mode 0600")
            }
        } catch {
            add(.error, "signing key", "\(error)" + (FileManager.default.fileExists(atPath: configuration.signingKeyPath)
                ? "" : " (make one: govex keygen --out \((configuration.signingKeyPath as NSString).deletingLastPathComponent))"))
        }

        guard let url = configuration.hubURL else {
            add(.warning, "hub", "no [hub] url: batches stay in the spool and nothing is received")
            return findings
        }
        let files = AgentEnrollment.Files(dataDirectory: configuration.dataDirectory)
        guard FileManager.default.fileExists(atPath: files.certificate) else {
            add(.error, "enrollment", "not enrolled (no \(files.certificate)): govex hub node add on the hub, then govex enroll here, before the first start")
            return findings
        }
        if let certificate = try? NodeIdentity.loadCertificate(path: files.certificate) {
            if let warning = AgentRotation.expiryWarning(notAfter: certificate.notValidAfter) {
                add(certificate.notValidAfter < Date() ? .error : .warning, "certificate", warning)
            } else {
                add(.ok, "certificate", "valid until \(ISO8601DateFormatter().string(from: certificate.notValidAfter))")
            }
        } else {
            add(.error, "certificate", "\(files.certificate) is not a certificate: enroll again (remove \(files.directory) first)")
        }

        let client: HubClient
        do {
            client = try AgentRunner.connectToHub(url: url, configuration: configuration).client
        } catch {
            add(.error, "enrollment", "\(error)")
            return findings
        }
        let catalog: [CatalogReconciliation.Entry]
        do {
            let response = try await client.closing { try await $0.get(HubRoute.catalogMine) }
            guard response.status == 200 else {
                add(.error, "hub", "\(url) answered HTTP \(response.status): \(response.text.prefix(200))")
                return findings
            }
            catalog = try JSONDecoder().decode([CatalogReconciliation.Entry].self, from: Data(response.body))
            add(.ok, "hub", "\(url) answers, with this node's certificate")
        } catch {
            add(.error, "hub", "\(url) cannot be reached: \(error)")
            return findings
        }
        guard !configuration.publish.isEmpty else { return findings }
        do {
            let (_, alarms, mismatches) = try await AgentRunner.compareWithCatalog(configuration, catalog: catalog)
            // As at start: a disagreement the agent works around is an alarm, columns that differ stop it.
            for alarm in alarms { add(.warning, "catalog", alarm) }
            for mismatch in mismatches { add(.error, "catalog", mismatch) }
            if alarms.isEmpty && mismatches.isEmpty { add(.ok, "catalog", "[[publish]] agrees with the hub's catalog") }
        } catch {
            add(.error, "catalog", "cannot compare [[publish]] with the hub's catalog: \(error)")
        }
        return findings
    }
}
