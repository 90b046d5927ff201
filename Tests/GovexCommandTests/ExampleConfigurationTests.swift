import Foundation
import GovexAgent
import GovexCapture
import GovexHub
import GovexMetrics
import GovexTestSupport
import Testing

/// The example files under Deploy/ are what operators copy: they must stay valid.
@Suite("Example configurations")
struct ExampleConfigurationTests {
    static func read(_ name: String) throws -> String {
        try String(contentsOfFile: Subprocess.buildDirectory + "/../../../Deploy/" + name, encoding: .utf8)
    }

    @Test("agent.example.toml, hub.example.toml and catalog.example.toml load")
    func examples() throws {
        let agent = try AgentConfiguration.load(path: "agent.example.toml", text: try Self.read("agent.example.toml"))
        #expect(agent.hubURL == "https://hub.exchange.example.gov.cn:8443")
        #expect(agent.capturedMappings.map(\.resource) == ["GA-RK-0001"])
        let hub = try HubConfiguration.load(path: "hub.example.toml", text: try Self.read("hub.example.toml"))
        #expect(hub.port == 8443 && hub.batchRetentionDays == 365)
        let catalog = try Catalog.load(path: "catalog.example.toml", text: try Self.read("catalog.example.toml"))
        #expect(catalog.resources.count == 3)
    }

    @Test("the example agent agrees with the example catalog: what it publishes is listed under its node with the same columns; what it subscribes to exists and holds the columns it asks for")
    func agentMatchesCatalog() throws {
        let agent = try AgentConfiguration.load(path: "agent.example.toml", text: try Self.read("agent.example.toml"))
        let catalog = try Catalog.load(path: "catalog.example.toml", text: try Self.read("catalog.example.toml"))
        for entry in agent.publish {
            let listed = try #require(catalog.resources.first { $0.code == entry.mapping.resource }, "\(entry.mapping.resource) is not in the catalog")
            #expect(listed.provider == agent.nodeID, "\(listed.code)")
            #expect(listed.share == entry.share, "\(listed.code): share \(entry.share) here, \(listed.share) in the catalog")
            guard entry.share != "none" else { continue }
            guard case .only(let columns) = entry.mapping.columns else { continue }
            #expect(Set(columns.map(entry.mapping.publishedName)) == Set(listed.columns), "\(listed.code): published columns differ from the catalog's")
            #expect(entry.mapping.key.map(entry.mapping.publishedName) == listed.key)
        }
        for entry in agent.subscribe {
            let listed = try #require(catalog.resources.first { $0.code == entry.resource }, "\(entry.resource) is not in the catalog")
            #expect(Set(entry.columns).isSubset(of: Set(listed.columns)) && Set(listed.key).isSubset(of: Set(entry.columns)),
                    "\(entry.resource): asks for \(entry.columns), the catalog lists \(listed.columns) with key \(listed.key)")
        }
    }

    static func repositoryFile(_ path: String) throws -> String {
        try String(contentsOfFile: Subprocess.buildDirectory + "/../../../" + path, encoding: .utf8)
    }

    @Test("every metric the alert rules and the Grafana dashboard use exists, and every metric has its # HELP")
    func monitoringNamesExist() throws {
        let known = Set(MetricHelp.text.keys)
        for file in ["Deploy/prometheus/govex-alerts.yml", "Deploy/grafana/govex-dashboard.json"] {
            let text = try Self.repositoryFile(file)
            let used = Set(text.matches(of: /govex_[a-z0-9_]+/).map { String($0.output) })
            #expect(!used.isEmpty)
            #expect(used.subtracting(known).isEmpty, "\(file) names metrics govex does not export: \(used.subtracting(known).sorted())")
        }
        let sources = try FileManager.default.subpathsOfDirectory(atPath: Subprocess.buildDirectory + "/../../../Sources")
            .filter { $0.hasSuffix(".swift") && !$0.hasSuffix("MetricHelp.swift") }
            .map { try Self.repositoryFile("Sources/" + $0) }.joined()
        for name in known {
            #expect(sources.contains("\"\(name)\""), "MetricHelp describes \(name), which no code records")
        }
    }
}
