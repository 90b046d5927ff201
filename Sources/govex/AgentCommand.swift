import ArgumentParser
import Foundation
import GovexAgent
import GovexLog

struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the department agent: capture mapped tables into signed batches in the spool.",
        discussion: """
        Runs until SIGTERM or SIGINT, then seals, spools and confirms what it holds.
        Under systemd (Type=notify) it reports READY=1 once streaming, WATCHDOG=1
        while alive and STOPPING=1 on shutdown. Logs go to stderr.

        Example:
          govex agent --config /etc/govex/agent.toml
        """
    )

    @Option(help: "The agent's TOML configuration.")
    var config: String = "/etc/govex/agent.toml"

    @Flag(help: "Load the configuration and the signing key, say what is wrong, and exit (the unit's ExecReload runs it first).")
    var validate = false

    func run() async throws {
        try await reportingFailure(as: AgentRunner.journal) {
            let text: String
            do { text = try String(contentsOfFile: config, encoding: .utf8) } catch {
                throw CommandError("cannot read \(config): \(error.localizedDescription)")
            }
            if validate {
                try AgentRunner.validate(configurationPath: config, text: text)
                print("\(config): loads, and its signing key with it")
                return
            }
            try await AgentRunner.run(configurationPath: config, text: text, environment: ProcessInfo.processInfo.environment)
        }
    }
}
