import GovexAPI
import ArgumentParser
import Foundation
import GovexAgent
import GovexWire

/// The enrolled agent's client for its hub, from `agent.toml`.
func hubClient(_ configuration: AgentConfiguration, path: String) throws -> HubClient {
    guard let url = configuration.hubURL else {
        printError("\(path): no [hub] url; name the hub, e.g. [hub] url = \"https://hub.example.gov.cn:8443\"")
        throw ExitStatus.failure
    }
    return try AgentRunner.connectToHub(url: url, configuration: configuration).client
}

struct Subscribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the hub for a subscription to another department's resource.",
        discussion: """
        The resource needs a [[subscribe]] entry in agent.toml naming the local table it is
        applied into; --purpose and --columns default to that entry's. An unconditional
        resource is active at once; a conditional one waits for the provider's approval;
        a resource of share class none is refused with its legal basis.

        Example:
          govex subscribe --resource MZ-HY-0003 --purpose "check marital status for housing subsidies" \\
            --columns id_number,marital_status --config /etc/govex/agent.toml
        """
    )

    @Option(help: "The catalog code of the resource.")
    var resource: String

    @Option(help: "Why this node needs the data (recorded with the request).")
    var purpose: String?

    @Option(help: "Comma-separated columns (keys are always included); default: the [[subscribe]] entry's, or all.")
    var columns: String?

    @Flag(help: "Print the subscription as JSON.")
    var json = false

    @Option(help: "The agent's TOML configuration.")
    var config: String = "/etc/govex/agent.toml"

    func run() async throws {
        let text = try readConfigurationFile(config)
        try await reportingFailure {
            let configuration = try AgentConfiguration.load(path: config, text: text)
            guard let entry = configuration.subscribe.first(where: { $0.resource == resource }) else {
                printError("\(config) has no [[subscribe]] for \(resource): add one naming the local table, e.g.\n[[subscribe]]\nresource = \"\(resource)\"\ntable = \"shared.\(resource.lowercased().replacing("-", with: "_"))\"\npurpose = \"…\"")
                throw ExitStatus.failure
            }
            let requestedColumns = columns.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? entry.columns
            let body = try JSONEncoder().encode(SubscriptionRequest(resource: resource, purpose: purpose ?? entry.purpose, columns: requestedColumns))
            let response = try await hubClient(configuration, path: config).closing {
                try await $0.post(HubRoute.subscriptions, body: Array(body), contentType: "application/json")
            }
            guard response.status == 200, let subscription = try? JSONDecoder().decode(SubscriptionView.self, from: Data(response.body)) else {
                printError("the hub refused the subscription (HTTP \(response.status)): \(response.text)")
                throw ExitStatus.negative
            }
            if json {
                print(response.text)
            } else {
                print("subscription \(subscription.id) to \(subscription.resource) is \(subscription.status): columns \(subscription.columns.joined(separator: ", "))")
                if subscription.status == .active { print("the running agent starts applying it into \(entry.qualifiedTable) within 15 seconds") }
            }
        }
    }
}

struct Subscriptions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List this node's subscriptions at the hub, and those to the resources it provides.",
        discussion: """
        Example:
          govex subscriptions --config /etc/govex/agent.toml --json
        """
    )

    @Flag(help: "Only those waiting for approval.")
    var pending = false

    @Flag(help: "Print JSON.")
    var json = false

    @Option(help: "The agent's TOML configuration.")
    var config: String = "/etc/govex/agent.toml"

    func run() async throws {
        let text = try readConfigurationFile(config)
        try await reportingFailure {
            let configuration = try AgentConfiguration.load(path: config, text: text)
            let response = try await hubClient(configuration, path: config).closing { try await $0.get(HubRoute.subscriptions) }
            guard response.status == 200, let list = try? JSONDecoder().decode([SubscriptionView].self, from: Data(response.body)) else {
                printError("the hub answered HTTP \(response.status): \(response.text)")
                throw ExitStatus.failure
            }
            try printSubscriptions(list.filter { !pending || $0.status == .pending }, json: json)
        }
    }
}
