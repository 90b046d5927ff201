import ArgumentParser
import Foundation
import GovexAPI
import GovexHub
import GovexPostgres

struct HubStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the hub's health: its nodes, the merge queue, what waits for an administrator, recent refusals.",
        discussion: """
        Reads the hub's database (nothing is written) and connects to its listener. For each
        node: its last push, epoch and next sequence, a new epoch or signing keys waiting,
        batches rejected in the last hour. Then the merge queue, pending subscriptions and
        the last hour's refusals by reason.
        Exit status 0 ok, 1 warning (a node silent for an hour, something waiting for an
        administrator, merging lagging), 2 critical (nothing listening, merging stuck),
        3 when it cannot run.

        Examples:
          govex hub status --config /etc/govex/hub.toml
          govex hub status --config /etc/govex/hub.toml --json
        """
    )

    @OptionGroup var options: HubOptions

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "No colours, even on a terminal.")
    var noColour = false

    func run() async throws {
        let status: HubStatus
        do {
            let configuration = try options.loadOrThrow()
            let facts = try await PostgresConnection.with(configuration.database, name: "govex-hub-status") { sql in
                try await HubStatus.gather(configuration, on: sql)
            }
            status = HubStatus.assess(facts)
        } catch {
            printError("\(error)")
            throw ExitCode(3)
        }
        try printHealth(status, level: status.level, text: status.text, json: json, noColour: noColour)
    }
}
