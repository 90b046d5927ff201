import Foundation
import GovexAgent
import GovexHub
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
}
