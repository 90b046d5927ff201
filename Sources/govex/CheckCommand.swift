import GovexAPI
import ArgumentParser
import Foundation
import GovexAgent
import GovexWire

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check an agent configuration against the live database and print the SQL that fixes it.",
        discussion: """
        Checks the signing key (present, mode 0600, a key of the configured algorithm), the
        enrollment (certificate present and valid), the hub (reachable with it) and that
        [[publish]] agrees with the hub's catalog; then wal_level, slots, the role's REPLICATION attribute and privileges, and for
        every [[publish]]: the table and columns exist, the key is unique and NOT NULL,
        the replica identity carries it (FULL when filtered), the publication holds it.
        For every [[subscribe]]: the local table exists with the delivered columns, a unique
        index on the key and the privileges an apply needs (when it is missing, its DDL, from
        the hub's catalog); the replication origin can be used; govex's own tables exist or
        the role may create them (else their DDL and grants).
        Exit status 0 when ready, 1 when something must be fixed, 2 when the check could not run.

        Examples:
          govex check --config /etc/govex/agent.toml
          govex check --config /etc/govex/agent.toml --apply    # run the printed SQL, then check again
        """
    )

    @Option(help: "The agent's TOML configuration.")
    var config: String = "/etc/govex/agent.toml"

    @Flag(help: "Run the suggested SQL (as the configured role), then check again.")
    var apply = false

    @Flag(help: "Print the findings as JSON.")
    var json = false

    func run() async throws {
        let configuration: AgentConfiguration
        var result: ConfigurationCheck
        do {
            let text = try String(contentsOfFile: config, encoding: .utf8)
            configuration = try AgentConfiguration.load(path: config, text: text)
            let catalog = await Self.subscribedResources(configuration)
            let environment = await ConfigurationCheck.environment(configuration)
            result = ConfigurationCheck(findings: environment + (try await ConfigurationCheck.run(configuration, catalog: catalog)).findings)
            if apply && !result.fixes.isEmpty {
                print("applying:")
                for statement in result.fixes { print("  \(statement);") }
                try await ConfigurationCheck.apply(result.fixes, conninfo: configuration.conninfo)
                result = ConfigurationCheck(findings: environment + (try await ConfigurationCheck.run(configuration, catalog: catalog)).findings)
            }
        } catch {
            printError("\(error)")
            throw ExitStatus.failure
        }
        if json {
            let items = result.findings.map { finding in
                BatchJSON.object([
                    ("severity", BatchJSON.string(finding.severity.rawValue)), ("subject", BatchJSON.string(finding.subject)),
                    ("message", BatchJSON.string(finding.message)), ("fix", finding.fix.map(BatchJSON.string) ?? "null"),
                ])
            }
            print(BatchJSON.object([("ready", result.errors.isEmpty ? "true" : "false"), ("findings", "[" + items.joined(separator: ",") + "]")]))
        } else {
            for finding in result.findings {
                print("\(finding.severity.rawValue.uppercased().padding(toLength: 7, withPad: " ", startingAt: 0)) \(finding.subject): \(finding.message)")
            }
            if !result.fixes.isEmpty {
                print("\nSQL to run (or use --apply):")
                for statement in result.fixes { print("  \(statement);") }
            }
            let ready = [configuration.publish.isEmpty ? nil : "capture", configuration.subscribe.isEmpty ? nil : "apply"].compactMap { $0 }
            print(result.errors.isEmpty ? "\nready to " + ready.joined(separator: " and ") : "\n\(result.errors.count) problem(s) to fix")
        }
        if !result.errors.isEmpty { throw ExitStatus.negative }
    }

    /// The hub's catalog, for the DDL of subscribed tables; nil when there is nothing to
    /// subscribe or the hub cannot be asked (not enrolled, unreachable).
    static func subscribedResources(_ configuration: AgentConfiguration) async -> [String: SubscribedResource]? {
        guard !configuration.subscribe.isEmpty, let url = configuration.hubURL,
              let client = try? AgentRunner.connectToHub(url: url, configuration: configuration).client else { return nil }
        let response = try? await client.get(HubRoute.catalog)
        await client.shutdown()
        guard let response, response.status == 200,
              let resources = try? JSONDecoder().decode([SubscribedResource].self, from: Data(response.body)) else { return nil }
        return Dictionary(resources.map { ($0.code, $0) }, uniquingKeysWith: { first, _ in first })
    }
}
