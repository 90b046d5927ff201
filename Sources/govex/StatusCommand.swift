import ArgumentParser
import Foundation
import GovexAPI
import GovexAgent

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what the agent is doing and whether it is healthy (for people and for monitoring).",
        discussion: """
        Reads the running agent's status file (data_dir/status.json), its spool and, from
        the department's database, the replication slot and the dead letters. It changes
        nothing, and works whether or not the agent runs.
        Exit status 0 ok, 1 warning (the hub unreachable, a subscription not active),
        2 critical (the agent not running, a dead letter, slot WAL over [alarms]
        retained_wal, the spool full, the database unreachable), 3 when it cannot run.

        Examples:
          govex status --config /etc/govex/agent.toml
          govex status --config /etc/govex/agent.toml --json
        """
    )

    @Option(help: "The agent's TOML configuration.")
    var config: String = "/etc/govex/agent.toml"

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "No colours, even on a terminal.")
    var noColour = false

    func run() async throws {
        let configuration: AgentConfiguration
        do {
            let text = try String(contentsOfFile: config, encoding: .utf8)
            configuration = try AgentConfiguration.load(path: config, text: text)
        } catch {
            printError(error is CocoaError ? "cannot read \(config): \(error.localizedDescription)" : "\(error)")
            throw ExitCode(3)
        }
        let report = StatusReport.assess(await StatusReport.Facts.gather(configuration))
        try printHealth(report, level: report.level, text: report.text, json: json, noColour: noColour)
    }
}

/// A health report as JSON or as coloured lines (colour only on a terminal, never with
/// NO_COLOR or --no-colour); exits with its level's status when it is not ok.
func printHealth<Report: Encodable>(_ report: Report, level: HealthLevel, text: (Bool) -> String, json: Bool, noColour: Bool) throws {
    if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    } else {
        print(text(!noColour && isatty(1) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil))
    }
    if level != .ok { throw ExitCode(level.exitCode) }
}
