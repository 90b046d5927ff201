import ArgumentParser
import Crypto
import Foundation
import GovexAPI
import GovexAgent
import GovexHub
import GovexMetrics
import GovexIdentity
import GovexKeyStore
import GovexLog
import GovexPostgres
import GovexSystemd
import GovexWire
import SwiftASN1

struct HubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hub",
        abstract: "The central hub: set it up, run it, and manage the nodes that may connect.",
        discussion: """
        Examples:
          govex hub init --config /etc/govex/hub.toml
          govex hub --config /etc/govex/hub.toml
          govex hub status --config /etc/govex/hub.toml
          govex hub node add gongan --config /etc/govex/hub.toml
          govex hub node revoke gongan --config /etc/govex/hub.toml
          govex hub catalog apply catalog.toml --config /etc/govex/hub.toml
        """,
        subcommands: [HubServe.self, HubInit.self, HubStatusCommand.self, HubNode.self, HubCatalog.self, HubSubscriptions.self, HubSubscription.self, HubAudit.self, HubRotate.self, HubDiscrepancies.self],
        defaultSubcommand: HubServe.self
    )
}

struct HubOptions: ParsableArguments {
    @Option(help: "The hub's TOML configuration.")
    var config: String = "/etc/govex/hub.toml"

    func load() throws -> HubConfiguration {
        do {
            return try loadOrThrow()
        } catch {
            printError("\(error)")
            throw ExitStatus.failure
        }
    }

    func loadOrThrow() throws -> HubConfiguration {
        try HubConfiguration.load(path: config, text: try KeyStore.readConfiguration(path: config))
    }
}

/// Runs `body`, printing any error as one line and exiting 2. A service (`journal` given)
/// writes it as a critical journal line, so `journalctl -p err` shows why it did not start.
func reportingFailure<T>(as journal: Journal? = nil, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        if let journal { journal.write(.critical, "cannot run: \(error)") } else { printError("\(error)") }
        throw ExitStatus.failure
    }
}

struct HubInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the hub's CA, signing key and TLS certificate, and its database schema.",
        discussion: """
        Writes data_dir/ca (ca.pem, ca.key), data_dir/keys (the hub's batch and receipt
        signing key) and data_dir/tls (server.pem for the configured hostnames and
        addresses, server.key). Private keys are mode 0600; nothing is overwritten, so
        running it again only migrates the schema.
        """
    )

    @OptionGroup var options: HubOptions

    func run() async throws {
        let configuration = try options.load()
        try await reportingFailure {
            let fileManager = FileManager.default
            if !fileManager.fileExists(atPath: configuration.caDirectory + "/" + CertificateAuthority.keyFileName) {
                let ca = try CertificateAuthority.create(commonName: "govex hub CA")
                try ca.write(to: configuration.caDirectory)
                print("created the hub CA: \(configuration.caDirectory)/\(CertificateAuthority.certificateFileName)")
            }
            if !fileManager.fileExists(atPath: configuration.keysDirectory + "/" + KeyStore.privateKeyFileName) {
                let key = try KeyStore.generate(.ed25519, directory: configuration.keysDirectory)
                print("created the hub signing key \(Hex.encode(key.publicKey.keyID)): \(key.publicKeyPath)")
            }
            if !fileManager.fileExists(atPath: configuration.serverKeyPath) {
                let ca = try CertificateAuthority.load(from: configuration.caDirectory)
                let key = P256.Signing.PrivateKey()
                let certificate = try ca.issueServerCertificate(publicKey: key.publicKey, hostnames: configuration.hostnames,
                                                                addresses: configuration.addresses)
                try KeyStore.writeSecret(path: configuration.serverKeyPath, contents: key.pemRepresentation)
                try KeyStore.writePublic(path: configuration.serverCertificatePath, contents: try certificate.serializeAsPEM().pemString)
                print("created the hub's TLS certificate for \((configuration.hostnames + configuration.addresses).joined(separator: ", ")): \(configuration.serverCertificatePath)")
            }
            let applied = try await PostgresConnection.with(configuration.database, name: "govex-hub-init") { sql in
                let applied = try await HubSchema.migrate(sql)
                try await HubSchema.ensurePartitions(sql)
                return applied
            }
            print(applied.isEmpty ? "the database schema is up to date (version \(HubSchema.latestVersion))"
                                  : "migrated the database schema to version \(HubSchema.latestVersion)")
        }
    }
}

struct HubServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the hub's HTTPS API (the default when `govex hub` is given no subcommand)."
    )

    @OptionGroup var options: HubOptions

    func run() async throws {
        try await reportingFailure(as: HubLog.journal) {
            let configuration = try options.loadOrThrow()
            let ca = try CertificateAuthority.load(from: configuration.caDirectory)
            let signingKey = try KeyStore.loadSigningKey(path: configuration.keysDirectory + "/" + KeyStore.privateKeyFileName)
            var settings = HubServer.Settings(
                host: configuration.host, port: configuration.port,
                serverCertificatePEM: try KeyStore.readPublic(path: configuration.serverCertificatePath),
                serverKeyPEM: try KeyStore.readSecret(path: configuration.serverKeyPath), ca: ca, hubSigningKey: signingKey)
            settings.maxBatchBytes = configuration.maxBatchBytes
            settings.limits = configuration.limits
            if let endorsements = try? Data(contentsOf: URL(fileURLWithPath: configuration.endorsementsPath)) {
                settings.hubKeyEndorsements = try JSONDecoder().decode([HubKeyEndorsement].self, from: endorsements)
            }
            let pool = ConnectionPool(conninfo: configuration.database)
            try await pool.withConnection { sql in try await HubSchema.migrate(sql) }
            // Partitions for this month and the next, and retention, now and every hour.
            let upkeep = Task {
                while !Task.isCancelled {
                    do {
                        let dropped = try await pool.withConnection { sql in
                            try await HubSchema.ensurePartitions(sql)
                            return try await HubSchema.dropExpiredPartitions(sql, retentionDays: configuration.batchRetentionDays)
                        }
                        for name in dropped { HubLog.write(6, "dropped expired batch partition \(name)") }
                    } catch {
                        HubLog.write(3, "partition upkeep failed: \(HubLog.describe(error))")
                    }
                    try? await Task.sleep(for: .seconds(3600))
                }
            }
            defer { upkeep.cancel() }
            var metricsServer: MetricsServer? = nil
            if let listen = configuration.metricsListen {
                metricsServer = try PrometheusExport.serve(on: listen)
                HubLog.write(6, "metrics on http://\(listen.split(separator: ":")[0]):\(metricsServer!.port)/metrics")
            }
            defer { _ = metricsServer }
            let server = HubServer(settings: settings, pool: pool)
            try await server.run(notifier: SystemdNotifier(environment: ProcessInfo.processInfo.environment)) { port in
                HubLog.write(6, "listening on https://\(configuration.host):\(port)")
            }
        }
    }
}

struct HubNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Add or revoke the nodes (department agents) that may connect, and manage their keys and certificates.",
        subcommands: [HubNodeAdd.self, HubNodeRevoke.self, HubNodeAcceptEpoch.self, HubNodeKeys.self, HubNodeAcceptKey.self,
                      HubNodeRetireKey.self, HubNodeRevokeCertificate.self]
    )
}

struct HubNodeAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Register a node and print a one-time enrollment token for it.",
        discussion: """
        Give the token to the department's operator, who runs
        `govex enroll --hub https://HUB:8443 --token-file FILE --ca-sha256 HASH --config agent.toml`
        before it expires. For a revoked node, the new enrollment reinstates it (its old
        certificates and signing keys are retired). The ids hub, hub-admin, govex, anonymous and
        the hub-, govex- prefixes are reserved.
        Example: govex hub node add gongan --config /etc/govex/hub.toml
        """
    )

    @Argument(help: "The node id: a-z, 0-9, _ and -.")
    var node: String

    @Option(help: "Hours the token stays valid.")
    var hours: Int = 24

    @OptionGroup var options: HubOptions

    func run() async throws {
        let configuration = try options.load()
        try await reportingFailure {
            let token = try await PostgresConnection.with(configuration.database, name: "govex-hub-node") { sql in
                try await Enrollment.createToken(for: node, hours: hours, on: sql)
            }
            let ca = try NodeIdentity.loadCertificate(path: configuration.caDirectory + "/" + CertificateAuthority.certificateFileName)
            let host = configuration.hostnames.first ?? configuration.addresses.first ?? configuration.host
            let url = "https://\(host.contains(":") ? "[\(host)]" : host):\(configuration.port)"
            print(token)
            FileOutput.writeStandardError("""
                govex: enrollment token for \(node), valid for \(hours) hours, usable once. On the department's agent run:
                  govex enroll --hub \(url) --token \(token) --ca-sha256 \(try AgentEnrollment.fingerprint(ca)) --config /etc/govex/agent.toml

                """)
        }
    }
}

struct HubNodeRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a node: every later request from it is refused."
    )

    @Argument(help: "The node id.")
    var node: String

    @OptionGroup var options: HubOptions

    func run() async throws {
        let configuration = try options.load()
        try await reportingFailure {
            let revoked = try await PostgresConnection.with(configuration.database, name: "govex-hub-node") { sql in
                try await HubStore.revoke(node, on: sql)
            }
            guard revoked else {
                printError("no node \(node) at this hub")
                throw ExitStatus.failure
            }
            print("revoked \(node)")
        }
    }
}

struct HubCatalog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "The catalog: which resources exist, who provides them, and how they may be shared.",
        subcommands: [HubCatalogApply.self, HubCatalogList.self]
    )
}

struct HubCatalogApply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Make the hub's catalog what FILE says: prints each change, then applies them in one transaction.",
        discussion: "Idempotent: applying the same file again changes nothing. Resources and subjects absent from FILE are removed."
    )

    @Argument(help: "The catalog TOML file.")
    var file: String

    @Flag(help: "Print the changes without applying them.")
    var dryRun = false

    @OptionGroup var options: HubOptions

    func run() async throws {
        let configuration = try options.load()
        let text = try readConfigurationFile(file)
        try await reportingFailure {
            let catalog = try Catalog.load(path: file, text: text)
            let plan = try await PostgresConnection.with(configuration.database, name: "govex-hub-catalog") { sql in
                try await catalog.apply(on: sql, dryRun: dryRun)
            }
            for line in plan { print(line) }
            print(plan.isEmpty ? "the catalog already matches \(file)" : (dryRun ? "\(plan.count) changes (dry run: nothing applied)" : "applied \(plan.count) changes"))
        }
    }
}

struct HubCatalogList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the catalog's resources and subjects.")

    @OptionGroup var options: HubOptions

    func run() async throws {
        let configuration = try options.load()
        try await reportingFailure {
            let catalog = try await PostgresConnection.with(configuration.database, name: "govex-hub-catalog") { try await Catalog.read(on: $0) }
            for resource in catalog.resources {
                print("resource \(resource.code)  \(resource.name)  provider \(resource.provider)  share \(resource.share)"
                      + (resource.legalBasis.map { "  legal basis: \($0)" } ?? "")
                      + "  key (\(resource.key.joined(separator: ", ")))  columns (\(resource.columns.joined(separator: ", ")))"
                      + (resource.updateFrequency.map { "  updated \($0)" } ?? ""))
            }
            for subject in catalog.subjects {
                print("subject \(subject.code)  \(subject.name)  key \(subject.keyKind)")
                for field in subject.fields {
                    print("  \(field.name) ← \(field.authority) (authoritative); sources \(field.sources.joined(separator: ", "))")
                }
            }
        }
    }
}

struct HubNodeAcceptEpoch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accept-epoch",
        abstract: "Accept the new epoch a node announced after its state or slot was reset; its sequences restart at 1.",
        discussion: """
        Until then the hub answers the node's pushes with 409 new_epoch. Check first why the node
        was reset (a restored backup, a dropped slot): batches of the old epoch after the last one
        the hub stored are lost, and the node's initial snapshot repeats its current state.
        """
    )

    @Argument(help: "The node id.")
    var node: String

    @OptionGroup var options: HubOptions

    func run() async throws {
        let configuration = try options.load()
        try await reportingFailure {
            let accepted = try await PostgresConnection.with(configuration.database, name: "govex-hub-node") { sql in
                try await HubStore.acceptEpoch(of: node, on: sql)
            }
            guard let accepted else {
                printError("node \(node) has no new epoch waiting")
                throw ExitStatus.failure
            }
            print("accepted epoch \(accepted) of \(node): its sequences restart at 1")
        }
    }
}
