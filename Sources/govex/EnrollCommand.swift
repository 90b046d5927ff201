import ArgumentParser
import Foundation
import GovexAgent

struct Enroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Enroll this agent at the hub with a one-time token: obtain its TLS certificate and register its signing key.",
        discussion: """
        The hub administrator runs `govex hub node add NODE` and hands over the token and the
        hub CA's SHA-256. The CA is accepted only if it matches. Writes data_dir/tls: tls.key
        (0600), tls.pem, hub-ca.pem, hub-signing.pub. Run `govex keygen` first.

        Example:
          govex enroll --hub https://hub.example.gov.cn:8443 --token-file /root/token --ca-sha256 H --config /etc/govex/agent.toml
          printf '%s' "$TOKEN" | govex enroll --hub https://hub.example.gov.cn:8443 --token-file - --ca-sha256 H

        `--token` also works, but a token on the command line is visible to every user in `ps`.
        """
    )

    @Option(help: "The hub's URL, https://HOST:PORT.")
    var hub: String

    @Option(help: "The one-time enrollment token (visible in `ps`: prefer --token-file).")
    var token: String?

    @Option(help: "A file holding the enrollment token, or - to read it from standard input.")
    var tokenFile: String?

    @Option(name: .customLong("ca-sha256"), help: "The SHA-256 of the hub's CA certificate, as the hub administrator gave it.")
    var caSHA256: String

    @Option(help: "The agent's TOML configuration.")
    var config: String = "/etc/govex/agent.toml"

    func validate() throws {
        guard (token == nil) != (tokenFile == nil) else { throw ValidationError("give the token with --token-file FILE (or - for standard input), or --token") }
    }

    /// The token, from the command line, a file or standard input, without surrounding whitespace.
    func readToken() throws -> String {
        if let token { return token }
        let data = tokenFile == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: tokenFile!))
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw ValidationError("\(tokenFile == "-" ? "standard input" : tokenFile!) holds no enrollment token") }
        return text
    }

    func run() async throws {
        let text = try readConfigurationFile(config)
        let token = try readToken()
        try await reportingFailure {
            let configuration = try AgentConfiguration.load(path: config, text: text)
            let files = try await AgentEnrollment.enroll(
                nodeID: configuration.nodeID, dataDirectory: configuration.dataDirectory, signingKeyPath: configuration.signingKeyPath,
                hubURL: hub, token: token, caSHA256: caSHA256)
            print("enrolled \(configuration.nodeID) at \(hub): certificate \(files.certificate), key \(files.key)")
        }
    }
}
