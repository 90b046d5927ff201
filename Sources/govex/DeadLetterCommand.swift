import ArgumentParser
import Foundation
import GovexAgent
import GovexApply
import GovexPostgres
import GovexWire

struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deadletter",
        abstract: "Deliveries this subscriber's database refused: list, show, replay after a fix, or skip.",
        discussion: """
        A delivery that fails [apply] attempts times (a constraint, a type, a missing table or
        column) is kept in govex.dead_letters and raises an alarm; later deliveries of the same
        subscription wait behind it while other subscriptions keep flowing. Fix the cause,
        then replay it; or skip it, knowingly leaving its changes out of the local table.

        Examples:
          govex deadletter list --config /etc/govex/agent.toml
          govex deadletter show 3 --config /etc/govex/agent.toml
          govex deadletter replay 3 --config /etc/govex/agent.toml
          govex deadletter skip 3 --reason "rows re-entered by hand, ticket 1234" --config /etc/govex/agent.toml
        """,
        subcommands: [List.self, Show.self, Replay.self, Skip.self]
    )

    struct Options: ParsableArguments {
        @Option(help: "The agent's TOML configuration (its [source] conninfo is the subscriber's database).")
        var config: String = "/etc/govex/agent.toml"

        func withDatabase<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
            let text = try readConfigurationFile(config)
            return try await reportingFailure {
                let configuration = try AgentConfiguration.load(path: config, text: text)
                return try await PostgresConnection.with(configuration.conninfo, name: "govex-deadletter", body)
            }
        }
    }

    static func json(_ letter: DeadLetter) -> String {
        func optional(_ value: String?) -> String { value.map(BatchJSON.string) ?? "null" }
        return BatchJSON.object([
            ("id", String(letter.id)), ("subscription", String(letter.subscription)), ("resource", BatchJSON.string(letter.resource)),
            ("table", BatchJSON.string(letter.target)), ("delivery", String(letter.delivery)),
            ("origin", BatchJSON.object([("node", BatchJSON.string(letter.origin.node)), ("epoch", String(letter.origin.epoch)),
                                         ("sequence", String(letter.origin.sequence))])),
            ("status", BatchJSON.string(letter.status.rawValue)), ("attempts", String(letter.attempts)), ("error", BatchJSON.string(letter.error)),
            ("dead_at", BatchJSON.string(letter.deadAt)), ("resolved_at", optional(letter.resolvedAt)), ("resolved_by", optional(letter.resolvedBy)),
            ("reason", optional(letter.reason)), ("payload_bytes", String(letter.payloadBytes)),
        ])
    }

    /// Before the first subscription ran there is no table: nothing has died.
    static func tableExists(_ sql: PostgresConnection) async throws -> Bool {
        try await sql.query("SELECT to_regclass('govex.dead_letters') IS NOT NULL").rows.first?[0] == "t"
    }

    static func letters(status: DeadLetter.Status?, on sql: PostgresConnection) async throws -> [DeadLetter] {
        try await tableExists(sql) ? try await DeadLetters.list(status: status, on: sql) : []
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters (by default those still waiting).")
        @Option(help: "dead, replay, skip, replayed or skipped; default: every one not resolved.") var status: String?
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: Options

        func run() async throws {
            var wanted: DeadLetter.Status?
            if let status {
                guard let parsed = DeadLetter.Status(rawValue: status) else {
                    printError("--status must be one of \(DeadLetter.Status.allCases.map(\.rawValue).joined(separator: ", ")), not '\(status)'")
                    throw ExitStatus.failure
                }
                wanted = parsed
            }
            let letters = try await options.withDatabase { try await DeadLetterCommand.letters(status: wanted, on: $0) }
            if json {
                print("[" + letters.map(DeadLetterCommand.json).joined(separator: ",") + "]")
                return
            }
            print("ID\tSTATUS\tSUBSCRIPTION\tRESOURCE\tTABLE\tDELIVERY\tTRIES\tDEAD SINCE\tERROR")
            for letter in letters {
                print("\(letter.id)\t\(letter.status.rawValue)\t\(letter.subscription)\t\(letter.resource)\t\(letter.target)\t\(letter.delivery)\t"
                      + "\(letter.attempts)\t\(letter.deadAt)\t\(letter.error.prefix(200))")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one dead letter in full.")
        @Argument(help: "The dead letter's id.") var id: Int64
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: Options

        func run() async throws {
            let letter = try await options.withDatabase { sql in
                try await DeadLetterCommand.tableExists(sql) ? try await DeadLetters.find(id, on: sql) : nil
            }
            guard let letter else {
                printError("there is no dead letter \(id) (see govex deadletter list)")
                throw ExitStatus.failure
            }
            if json {
                print(DeadLetterCommand.json(letter))
                return
            }
            print("""
                dead letter \(letter.id): \(letter.status.rawValue)
                  subscription \(letter.subscription) (\(letter.resource) → \(letter.target)), delivery \(letter.delivery)
                  from \(letter.origin.node) batch \(letter.origin.epoch)/\(letter.origin.sequence), \(letter.payloadBytes) bytes kept
                  \(letter.attempts) tries, dead since \(letter.deadAt)
                  error: \(letter.error)
                """)
            if let by = letter.resolvedBy { print("  \(letter.status == .replay || letter.status == .skip ? "requested" : "resolved") by \(by)\(letter.resolvedAt.map { " at \($0)" } ?? "")") }
            if let reason = letter.reason { print("  reason: \(reason)") }
        }
    }

    /// Asks the running agent to act on dead letter `id`, then waits for it to have.
    static func request(_ action: DeadLetter.Status, id: Int64, reason: String?, wait: Int, options: Options) async throws {
        let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? NSUserName()
        let host = ProcessInfo.processInfo.hostName
        let outcome = try await options.withDatabase { sql -> DeadLetter? in
            guard try await tableExists(sql) else { throw DeadLetters.RequestError(description: "there is no dead letter \(id) (see govex deadletter list)") }
            try await DeadLetters.request(action, id: id, by: "\(user)@\(host)", reason: reason, on: sql)
            let deadline = ContinuousClock.now + .seconds(wait)
            while ContinuousClock.now < deadline {
                if let letter = try await DeadLetters.find(id, on: sql), letter.status != action { return letter }
                try await Task.sleep(for: .milliseconds(250))
            }
            return nil
        }
        guard let outcome else {
            print("dead letter \(id): \(action.rawValue) requested; the agent has not acted on it within \(wait) s (is it running?). "
                  + "It acts when it runs; see govex deadletter show \(id)")
            return
        }
        switch outcome.status {
        case .replayed: print("dead letter \(id) replayed: delivery \(outcome.delivery) is applied; later deliveries follow")
        case .skipped: print("dead letter \(id) skipped: the cursor is past delivery \(outcome.delivery); later deliveries follow")
        default:
            printError("dead letter \(id) failed again: \(outcome.error)")
            throw ExitStatus.negative
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Apply a dead letter again, once its cause is fixed.")
        @Argument(help: "The dead letter's id.") var id: Int64
        @Option(help: "Seconds to wait for the agent to apply it.") var wait = 30
        @OptionGroup var options: Options

        func run() async throws { try await DeadLetterCommand.request(.replay, id: id, reason: nil, wait: wait, options: options) }
    }

    struct Skip: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move past a dead letter without applying it (its changes stay out of the table).")
        @Argument(help: "The dead letter's id.") var id: Int64
        @Option(help: "Why (recorded with the dead letter).") var reason: String
        @Option(help: "Seconds to wait for the agent to act.") var wait = 30
        @OptionGroup var options: Options

        func run() async throws { try await DeadLetterCommand.request(.skip, id: id, reason: reason, wait: wait, options: options) }
    }
}
