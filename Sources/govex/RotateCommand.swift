import ArgumentParser
import Foundation
import GovexAgent

struct Rotate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Renew this agent's TLS certificate, or introduce a new batch-signing key.",
        discussion: """
        Both go through the hub over the current certificate, which must still be valid;
        then reload the agent (systemctl reload govex-agent) to use them. The agent warns
        from 30 days before its certificate expires. A new signing key gets a new key id;
        the old one stays registered, so batches it signed still verify.

        Examples:
          govex rotate tls --config /etc/govex/agent.toml
          govex rotate signing --config /etc/govex/agent.toml
        """
    )

    @Argument(help: "tls or signing.")
    var what: String

    @Option(help: "The agent's TOML configuration.")
    var config: String = "/etc/govex/agent.toml"

    func run() async throws {
        guard what == "tls" || what == "signing" else {
            printError("rotate what? 'tls' (the certificate) or 'signing' (the batch-signing key), not '\(what)'")
            throw ExitStatus.failure
        }
        let text = try readConfigurationFile(config)
        try await reportingFailure {
            let configuration = try AgentConfiguration.load(path: config, text: text)
            try await hubClient(configuration, path: config).closing { client in
                if what == "tls" {
                    let notAfter = try await AgentRotation.rotateTLS(configuration, client: client)
                    print("renewed the TLS certificate of \(configuration.nodeID): valid until \(ISO8601DateFormatter().string(from: notAfter)); reload the agent to use it")
                } else {
                    let keyID = try await AgentRotation.rotateSigning(configuration, client: client)
                    print("registered and installed signing key \(keyID); reload the agent to sign with it")
                }
            }
        }
    }
}
