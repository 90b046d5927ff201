import ArgumentParser
import Foundation
import GovexAPI
import GovexHub
import GovexKeyStore
import GovexPostgres
import GovexWire

struct HubAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "The hub's audit trail: every enrollment, revocation, catalog change, subscription decision, batch and acknowledgement.",
        subcommands: [HubAuditVerify.self]
    )
}

struct HubAuditVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Recompute the audit trail's hash chain and check it against signed anchors; name the first bad entry.",
        discussion: """
        Anchors are receipts agents keep (data_dir/anchors/receipt-*.json): each carries the
        chain's head as the hub signed it, so a chain recomputed after an edit is caught too.
        Exit status 0 when the chain holds, 1 when an entry does not (named), 2 when the check
        could not run.

        Examples:
          govex hub audit verify --config /etc/govex/hub.toml
          govex hub audit verify --anchors /srv/anchors/gongan --anchors /srv/anchors/minzheng --config /etc/govex/hub.toml
        """
    )

    @Option(help: "A directory of receipts kept by an agent (repeatable).")
    var anchors: [String] = []

    @OptionGroup var hub: HubOptions

    func run() async throws {
        let configuration = try hub.load()
        let problem: AuditChain.Problem?
        let count: Int
        let anchorCount: Int
        do {
            let hubKeys = try Self.hubKeys(in: configuration.keysDirectory)
            let loaded = try anchors.flatMap { try Self.loadAnchors(in: $0, hubKeys: hubKeys) }
            let (entries, head) = try await PostgresConnection.with(configuration.database, name: "govex-audit") { sql in
                try await HubStore.auditTrail(on: sql)
            }
            problem = AuditChain.verify(entries, head: head, anchors: loaded)
            (count, anchorCount) = (entries.count, loaded.count)
        } catch {
            printError("\(error)")
            throw ExitStatus.failure
        }
        if let problem {
            print("audit trail BROKEN at \(problem)")
            throw ExitStatus.negative
        }
        print("audit trail holds: \(count) entries, \(anchorCount) anchors checked")
    }

    /// The anchors in `directory`: receipts whose hub signature verifies; any other file there is an error.
    /// The hub's current key and the ones it rotated away from (kept as `signing.<key id>.key`).
    static func hubKeys(in directory: String) throws -> [VerifyingKey] {
        var keys = [try KeyStore.loadVerifyingKey(path: directory + "/" + KeyStore.publicKeyFileName)]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasPrefix("signing.") && name.hasSuffix(".key")
            && name != KeyStore.privateKeyFileName {
            keys.append(try KeyStore.loadSigningKey(path: directory + "/" + name).publicKey)
        }
        return keys
    }

    static func loadAnchors(in directory: String, hubKeys: [VerifyingKey]) throws -> [AuditChain.Anchor] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
        return try names.compactMap { name in
            let path = directory + "/" + name
            let receipt: Receipt
            do {
                let signed = try SignedReceipt(wire: Array(try Data(contentsOf: URL(fileURLWithPath: path))))
                let key = hubKeys.first { Hex.encode($0.keyID) == signed.claimedKeyID } ?? hubKeys[0]
                receipt = try signed.verified(with: key)
            } catch {
                throw ValidationError("\(path) is not a receipt signed by this hub: \(error)")
            }
            guard let entry = receipt.auditEntry.flatMap({ UInt64($0) }), let digest = receipt.auditDigest.flatMap({ Hex.decode($0) }) else {
                return nil  // a receipt from before the audit trail
            }
            return AuditChain.Anchor(entry: entry, digest: digest, source: path)
        }
    }
}
