import ArgumentParser
import Foundation

@main
struct Govex: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "govex",
        abstract: "The government data-exchange daemon: department agents and the central hub.",
        discussion: """
        Examples:
          govex keygen --algorithm ed25519 --out /var/lib/govex/keys
          govex batch inspect spool/00000000000000000042.gvxb --limit 10
          govex batch verify spool/00000000000000000042.gvxb --key gongan.pub
          govex hub init --config /etc/govex/hub.toml
        """,
        version: "0.2.0",
        subcommands: [Agent.self, Status.self, Check.self, Keygen.self, Enroll.self, Subscribe.self, Subscriptions.self, Approve.self, Reject.self, Revoke.self, Rotate.self, Discrepancies.self, DeadLetterCommand.self, BatchCommand.self, Diff.self, HubCommand.self]
    )
}

/// Exit statuses shared by every command: 0 success, 1 a negative answer
/// (a batch that does not verify), 2 a usage or environment error.
enum ExitStatus {
    static let negative = ExitCode(1)
    static let failure = ExitCode(2)
}

/// A configuration file's text, or a one-line error and exit status 2.
func readConfigurationFile(_ path: String) throws -> String {
    do {
        return try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        printError("cannot read \(path): \(error.localizedDescription)")
        throw ExitStatus.failure
    }
}

func printError(_ message: String) {
    var stderr = StandardError()
    print("govex: \(message)", to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileOutput.writeStandardError(string)
    }
}
