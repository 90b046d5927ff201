import ArgumentParser
import Foundation
import GovexAPI
import GovexAgent
import GovexHub
import GovexKeyStore
import GovexPostgres
import GovexWire

/// What `approve`, `reject` and `revoke` take, on an agent and at the hub.
struct DecisionOptions: ParsableArguments {
    @Argument(help: "The subscription's id (see `govex subscriptions`).")
    var subscription: Int64

    @Option(help: "Why: recorded with the decision.")
    var reason: String

    func request(_ decision: String, columns: String? = nil, filter: String? = nil, masks: [String] = []) throws -> SubscriptionRules.DecisionRequest {
        var parsed: [String: String] = [:]
        for mask in masks {
            let parts = mask.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty else {
                printError("--mask '\(mask)' must be COLUMN=MASK, e.g. --mask 'id_number=keep(6,4)'")
                throw ExitStatus.failure
            }
            parsed[parts[0]] = parts[1]
        }
        return SubscriptionRules.DecisionRequest(
            decision: decision, reason: reason,
            columns: columns.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } },
            filter: filter, masks: parsed)
    }
}

/// The narrowing an approval may add.
struct ApprovalTerms: ParsableArguments {
    @Option(help: "Comma-separated columns, within those requested (keys are always included).")
    var columns: String?

    @Option(help: "A row filter in govex's filter language, e.g. \"district = '朝阳区'\".")
    var filter: String?

    @Option(help: "COLUMN=MASK: keep(FIRST,LAST), redact, null, or pseudonym (the only one allowed on a key column). Repeatable.")
    var mask: [String] = []
}

/// Sends a decision to the hub as this (providing) node and prints the result.
private func decideAtHub(_ request: SubscriptionRules.DecisionRequest, subscription: Int64, config: String) async throws {
    let text = try readConfigurationFile(config)
    try await reportingFailure {
        let configuration = try AgentConfiguration.load(path: config, text: text)
        guard let decision = SubscriptionDecision(rawValue: request.decision) else { throw ValidationError("decide approve, reject or revoke") }
        let body = try JSONEncoder().encode(DecisionRequest(decision: decision, reason: request.reason, columns: request.columns,
                                                            filter: request.filter, masks: request.masks))
        let response = try await hubClient(configuration, path: config).closing {
            try await $0.post(HubRoute.decision(subscription), body: Array(body), contentType: "application/json")
        }
        guard response.status == 200, let decided = try? JSONDecoder().decode(SubscriptionView.self, from: Data(response.body)) else {
            printError("the hub refused (HTTP \(response.status)): \(response.text)")
            throw ExitStatus.negative
        }
        printDecision(decided)
    }
}

func printDecision(_ subscription: SubscriptionView) {
    var line = "subscription \(subscription.id) of \(subscription.subscriber) to \(subscription.resource) is \(subscription.status)"
    if subscription.status == .active {
        line += ": columns \(subscription.columns.joined(separator: ", "))"
        if let filter = subscription.filter { line += "; rows where \(filter)" }
        if let masks = subscription.masks, !masks.isEmpty {
            line += "; masks " + masks.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        }
    }
    print(line)
}

struct Approve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Approve a subscription to a resource this node provides, optionally narrowed.",
        discussion: """
        Also changes the terms of an active subscription. Example:
          govex approve 12 --reason "marriage registration, Art. 5" --columns id_number,name \\
            --filter "district = '朝阳区'" --mask 'name=keep(1,0)' --config /etc/govex/agent.toml
        """
    )
    @OptionGroup var options: DecisionOptions
    @OptionGroup var terms: ApprovalTerms
    @Option(help: "The agent's TOML configuration.") var config: String = "/etc/govex/agent.toml"

    func run() async throws {
        try await decideAtHub(try options.request("approve", columns: terms.columns, filter: terms.filter, masks: terms.mask),
                              subscription: options.subscription, config: config)
    }
}

struct Reject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reject a pending subscription to a resource this node provides.",
        discussion: "Example:\n  govex reject 12 --reason \"purpose not covered by the agreement\" --config /etc/govex/agent.toml"
    )
    @OptionGroup var options: DecisionOptions
    @Option(help: "The agent's TOML configuration.") var config: String = "/etc/govex/agent.toml"

    func run() async throws {
        try await decideAtHub(try options.request("reject"), subscription: options.subscription, config: config)
    }
}

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke a subscription to a resource this node provides: delivery stops at once.",
        discussion: "Example:\n  govex revoke 12 --reason \"agreement expired\" --config /etc/govex/agent.toml"
    )
    @OptionGroup var options: DecisionOptions
    @Option(help: "The agent's TOML configuration.") var config: String = "/etc/govex/agent.toml"

    func run() async throws {
        try await decideAtHub(try options.request("revoke"), subscription: options.subscription, config: config)
    }
}

// MARK: The hub administrator

struct HubSubscription: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscription",
        abstract: "Decide on subscriptions as the hub administrator (recorded as hub-admin).",
        subcommands: [HubSubscriptionDecide.self]
    )
}

struct HubSubscriptionDecide: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decide",
        abstract: "Approve, reject or revoke a subscription.",
        discussion: """
        Example:
          govex hub subscription decide approve 12 --reason "urgent, approved by the data office" --config /etc/govex/hub.toml
        """
    )
    @Argument(help: "approve, reject or revoke.") var decision: String
    @OptionGroup var options: DecisionOptions
    @OptionGroup var terms: ApprovalTerms
    @OptionGroup var hub: HubOptions

    func run() async throws {
        let configuration = try hub.load()
        let request = try options.request(decision, columns: terms.columns, filter: terms.filter, masks: terms.mask)
        try await reportingFailure {
            // Backfill pages are signed with the hub's key.
            let store = HubStore(hubKey: try KeyStore.loadSigningKey(path: configuration.keysDirectory + "/" + KeyStore.privateKeyFileName))
            let outcome = try await PostgresConnection.with(configuration.database, name: "govex-hub-admin") { sql in
                try await store.decide(subscription: options.subscription, request, by: SubscriptionRules.hubAdministrator, on: sql)
            }
            switch outcome {
            case .decided(let subscription):
                printDecision(subscription.view)
            case .refused(let code, let message):
                printError("\(code.rawValue): \(message)")
                throw ExitStatus.negative
            }
        }
    }
}

struct HubSubscriptions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscriptions",
        abstract: "List every subscription at the hub.",
        discussion: "Example:\n  govex hub subscriptions --pending --config /etc/govex/hub.toml"
    )
    @Flag(help: "Only those waiting for a decision.") var pending = false
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var hub: HubOptions

    func run() async throws {
        let configuration = try hub.load()
        try await reportingFailure {
            let all = try await PostgresConnection.with(configuration.database, name: "govex-hub-admin") { sql in
                try await HubStore.subscriptions(of: nil, on: sql)
            }
            let listed = all.map(\.view)
            try printSubscriptions(listed.filter { !pending || $0.status == .pending }, json: json)
        }
    }
}

/// The table (or JSON) both `govex subscriptions` and `govex hub subscriptions` print.
func printSubscriptions(_ list: [SubscriptionView], json: Bool) throws {
    if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(list), as: UTF8.self))
        return
    }
    print("ID\tSUBSCRIBER\tRESOURCE\tSTATUS\tDELIVERED\tACKED\tCOLUMNS\tFILTER\tMASKS\tPURPOSE")
    for item in list {
        let masks = (item.masks ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        print("\(item.id)\t\(item.subscriber)\t\(item.resource)\t\(item.status)\t\(item.deliveredThrough)\t\(item.ackedThrough)\t"
              + "\(item.columns.joined(separator: ","))\t\(item.filter ?? "-")\t\(masks.isEmpty ? "-" : masks)\t\(item.purpose)")
    }
}
