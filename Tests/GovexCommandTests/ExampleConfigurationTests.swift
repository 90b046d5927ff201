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

    /// Each `key =` of every TOML block in the guides and of every example, with the section it is in.
    static func tomlKeys(_ text: String, whole: Bool) -> [(section: String, key: String, line: String)] {
        var found: [(String, String, String)] = []
        var inBlock = whole, section = "", openBrackets = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if !whole, raw.hasPrefix("```") {
                inBlock = raw == "```toml"
                section = ""
                continue
            }
            guard inBlock else { continue }
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?
                .trimmingCharacters(in: .whitespaces) ?? ""
            if openBrackets > 0 {
                openBrackets += line.filter { $0 == "[" }.count - line.filter { $0 == "]" }.count
                continue
            }
            if let header = line.firstMatch(of: /^\[\[?([a-z_.]+)\]\]?$/) {
                section = String(header.1)
                continue
            }
            if let assignment = line.firstMatch(of: /^([a-z_]+)\s*=\s*(.*)$/) {
                found.append((section, String(assignment.1), raw))
                let value = assignment.2
                openBrackets = value.filter { $0 == "[" }.count - value.filter { $0 == "]" }.count
            }
        }
        return found
    }

    @Test("every configuration key the guides and examples show is one agent.toml, hub.toml or catalog.toml accepts, in that section")
    func documentedKeysExist() throws {
        var known: [String: Set<String>] = [:]
        for table in [AgentConfiguration.knownKeys, HubConfiguration.knownKeys, Catalog.knownKeys] {
            for (section, keys) in table { known[section, default: []].formUnion(keys) }
        }
        let guides = ["README.md"] + (try FileManager.default.contentsOfDirectory(atPath: Subprocess.buildDirectory + "/../../../docs"))
            .filter { $0.hasSuffix(".md") }.map { "docs/" + $0 }
        var checked = 0
        for file in guides + ["Deploy/agent.example.toml", "Deploy/hub.example.toml", "Deploy/catalog.example.toml"] {
            for (section, key, line) in Self.tomlKeys(try Self.repositoryFile(file), whole: file.hasSuffix(".toml")) {
                checked += 1
                #expect(known[section]?.contains(key) == true, "\(file): `\(line.trimmingCharacters(in: .whitespaces))` — [\(section)] has no key \(key)")
            }
        }
        #expect(checked > 60, "the scan found the guides' TOML (\(checked) keys)")
    }
}
