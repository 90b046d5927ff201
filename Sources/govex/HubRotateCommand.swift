import ArgumentParser
import Crypto
import Foundation
import GovexAPI
import GovexHub
import GovexIdentity
import GovexKeyStore
import GovexPostgres
import GovexWire
import SwiftASN1
import X509

struct HubRotate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Rotate the hub's signing key or its TLS certificate; restart the hub (every replica) to use them.",
        discussion: """
        signing: a new Ed25519 key signs receipts and deliveries from the next start; the old
        one endorses it (data_dir/keys/endorsements.json, served at GET /v1/hub/keys), so
        agents that trust the old key learn the new one by themselves; the old private key is
        kept as signing.<key id>.key. Copy data_dir/keys to every replica.
        tls: a new server key and certificate from the hub's CA for [hub] hostnames and
        addresses (agents trust the CA, so nothing changes for them).

        Examples:
          govex hub rotate signing --config /etc/govex/hub.toml
          govex hub rotate tls --config /etc/govex/hub.toml
        """
    )

    @Argument(help: "signing or tls.")
    var what: String

    @OptionGroup var hub: HubOptions

    func run() async throws {
        guard what == "signing" || what == "tls" else {
            printError("rotate what? 'signing' (the hub's receipt and delivery key) or 'tls' (its server certificate), not '\(what)'")
            throw ExitStatus.failure
        }
        let configuration = try hub.load()
        try await reportingFailure {
            let (action, details): (String, [(String, String)])
            if what == "signing" {
                let keyPath = configuration.keysDirectory + "/" + KeyStore.privateKeyFileName
                let current = try KeyStore.loadSigningKey(path: keyPath)
                let fresh = try SigningKey.generate(.ed25519)
                var endorsements = (try? JSONDecoder().decode([HubKeyEndorsement].self,
                                                              from: Data(contentsOf: URL(fileURLWithPath: configuration.endorsementsPath)))) ?? []
                endorsements.append(try HubKeyEndorsement.endorse(fresh.publicKey, with: current))
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
                try KeyStore.writeSecret(path: configuration.keysDirectory + "/signing." + Hex.encode(current.publicKey.keyID) + ".key",
                                         contents: try KeyStore.readSecret(path: keyPath))
                try KeyStore.replace(configuration.endorsementsPath, with: String(decoding: try encoder.encode(endorsements), as: UTF8.self), secret: false)
                try KeyStore.replace(keyPath, with: try fresh.pkcs8PEM(), secret: true)
                try KeyStore.replace(configuration.keysDirectory + "/" + KeyStore.publicKeyFileName, with: fresh.publicKey.pem, secret: false)
                (action, details) = ("hub_signing_key_rotated", [("old_key_id", BatchJSON.string(Hex.encode(current.publicKey.keyID))),
                                                                 ("new_key_id", BatchJSON.string(Hex.encode(fresh.publicKey.keyID)))])
                print("the hub signs with key \(Hex.encode(fresh.publicKey.keyID)) from its next start, endorsed by \(Hex.encode(current.publicKey.keyID))")
            } else {
                let ca = try CertificateAuthority.load(from: configuration.caDirectory)
                let key = P256.Signing.PrivateKey()
                let certificate = try ca.issueServerCertificate(publicKey: key.publicKey, hostnames: configuration.hostnames,
                                                                addresses: configuration.addresses)
                try KeyStore.replace(configuration.serverKeyPath, with: key.pemRepresentation, secret: true)
                try KeyStore.replace(configuration.serverCertificatePath, with: try certificate.serializeAsPEM().pemString, secret: false)
                (action, details) = ("hub_tls_certificate_rotated", [("serial", BatchJSON.string(certificate.serialNumber.description))])
                print("new TLS certificate for \((configuration.hostnames + configuration.addresses).joined(separator: ", ")), valid until \(ISO8601DateFormatter().string(from: certificate.notValidAfter)); restart the hub to serve it")
            }
            _ = try await PostgresConnection.with(configuration.database, name: "govex-hub-admin") { sql in
                try await sql.transaction {
                    try await HubStore.audit(action, subject: "hub", actor: SubscriptionRules.hubAdministrator, details: details, on: sql)
                }
            }
        }
    }
}
