import ArgumentParser
import Foundation
import GovexHub
import GovexPostgres

/// The administrator's side of node keys and certificates: a signing key that arrived without
/// its node's endorsement waits here; a compromised key or certificate is retired or revoked.
struct HubNodeKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List a node's batch-signing keys: current, waiting for accept-key, or retired.",
        discussion: "Example: govex hub node keys gongan --config /etc/govex/hub.toml"
    )

    @Argument(help: "The node id.")
    var node: String

    @Flag(help: "Print JSON for scripts.")
    var json = false

    @OptionGroup var options: HubOptions

    func run() async throws {
        let configuration = try options.load()
        try await reportingFailure {
            let keys = try await PostgresConnection.with(configuration.database, name: "govex-hub-node") { sql in
                try await NodeKeys.list(node: node, on: sql)
            }
            if json {
                print("[" + keys.map { #"{"key_id":"\#($0.keyID)","algorithm":"\#($0.algorithm)","state":"\#($0.state)"}"# }.joined(separator: ",") + "]")
            } else {
                for key in keys { print("\(key.keyID)  \(key.algorithm)  \(key.state)") }
            }
        }
    }
}

/// A node and one of its signing keys, as `govex hub node keys NODE` lists them.
struct NodeKeyArguments: ParsableArguments {
    @Argument(help: "The node id.")
    var node: String

    @Argument(help: "The key id (hex), as `govex hub node keys NODE` lists it.")
    var keyID: String

    @OptionGroup var options: HubOptions

    /// Carries out an administrator's act on the key and prints what was done.
    func act(_ done: String, _ body: @escaping @Sendable (String, String, PostgresConnection) async throws -> Void) async throws {
        let configuration = try options.load()
        let (node, keyID) = (node, keyID)
        try await reportingFailure {
            try await PostgresConnection.with(configuration.database, name: "govex-hub-node") { sql in try await body(node, keyID, sql) }
            print("\(done) signing key \(keyID) of \(node)")
        }
    }
}

struct HubNodeAcceptKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accept-key",
        abstract: "Accept a signing key a node registered without an endorsement by its current key.",
        discussion: """
        A key registered with the node's TLS certificate alone (a lost signing key, or an attacker
        holding the TLS key) signs nothing the hub accepts until this. Confirm the key id with the
        department first (`govex keygen` prints it), out of band.
        Example: govex hub node accept-key gongan 3f2a… --config /etc/govex/hub.toml
        """
    )

    @OptionGroup var key: NodeKeyArguments

    func run() async throws {
        try await key.act("accepted") { node, keyID, sql in try await NodeKeys.accept(node: node, keyID: keyID, on: sql) }
    }
}

struct HubNodeRetireKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retire-key",
        abstract: "Retire a node's signing key: batches signed with it are rejected from now on.",
        discussion: "Example: govex hub node retire-key gongan 3f2a… --config /etc/govex/hub.toml"
    )

    @OptionGroup var key: NodeKeyArguments

    func run() async throws {
        try await key.act("retired") { node, keyID, sql in try await NodeKeys.retire(node: node, keyID: keyID, on: sql) }
    }
}

struct HubNodeRevokeCertificate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke-cert",
        abstract: "Revoke one node certificate by serial; the node itself stays enrolled.",
        discussion: """
        Open connections of the node are closed on every hub replica. To let the node in again
        with a new certificate, issue it a token (`govex hub node add NODE`) and enroll it again.
        Example: govex hub node revoke-cert 1234567890 --config /etc/govex/hub.toml
        """
    )

    @Argument(help: "The certificate's serial number, as in the audit trail (node_enrolled, certificate_renewed).")
    var serial: String

    @OptionGroup var options: HubOptions

    func run() async throws {
        let configuration = try options.load()
        try await reportingFailure {
            let node = try await PostgresConnection.with(configuration.database, name: "govex-hub-node") { sql in
                try await NodeCertificates.revoke(serial: serial, on: sql)
            }
            guard let node else {
                printError("no certificate with serial \(serial) at this hub")
                throw ExitStatus.failure
            }
            print("revoked certificate \(serial) of \(node)")
        }
    }
}
