import Foundation
import GovexHub
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// The operator guide's reset path, end to end: a department's data directory is lost.
@Suite("Agent reset, end to end")
struct AgentResetEndToEndTests {
    @Test("a wiped data directory: new key, enrolled again, a new epoch the hub waits on, then accepted; nothing committed meanwhile is lost")
    func wipedDataDirectory() async throws {
        try await AgentPushTests.withExchange("govex-reset") { exchange, _ in
            let govex = AgentCommandTests.govex
            func hubRows() async throws -> String {
                try await exchange.hubSQL.query("SELECT count(*) FROM govex.resource_rows WHERE resource = 'GA-RK-0001'").rows[0][0] ?? ""
            }
            try await exchange.sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(1, 50) g")
            var agent = try Subprocess.start([govex, "agent", "--config", exchange.agentConfig])
            #expect(try await AgentPushTests.eventually { try await hubRows() == "50" })
            agent.signal(SIGTERM)
            #expect(await agent.finish().status == 0)

            // The machine loses /var/lib/govex; meanwhile the department goes on writing.
            try FileManager.default.removeItem(atPath: exchange.dataDir)
            try await exchange.sql.query("INSERT INTO residents SELECT g, 'n' || g, 's' FROM generate_series(51, 60) g")
            try await exchange.sql.query("UPDATE residents SET name = 'renamed' WHERE id = 7")
            try Subprocess.check([govex, "keygen", "--out", exchange.dataDir + "/keys"])
            let added = try await Subprocess.run([govex, "hub", "node", "add", "gongan", "--config", exchange.hubConfig])
            let token = try #require(added.output.split(separator: "\n").first { !$0.contains(" ") }.map(String.init), "\(added.output)")
            let command = try #require(added.output.split(separator: "\n").first { $0.contains("govex enroll") })
            let words = command.split(separator: " ").map(String.init)
            let hubURL = try #require(words.drop { $0 != "--hub" }.dropFirst().first)
            let caHash = try #require(words.drop { $0 != "--ca-sha256" }.dropFirst().first)
            try await Subprocess.checkAsync([govex, "enroll", "--hub", hubURL, "--token", token, "--ca-sha256", caHash, "--config", exchange.agentConfig])

            agent = try Subprocess.start([govex, "agent", "--config", exchange.agentConfig])
            // The hub holds the new epoch back until an administrator accepts it; govex hub status says so.
            #expect(try await AgentPushTests.eventually {
                let status = try await Subprocess.run([govex, "hub", "status", "--config", exchange.hubConfig])
                return status.status == 1 && status.output.contains("node gongan: a new epoch")
            })
            #expect(try await hubRows() == "50")
            let accepted = try await Subprocess.run([govex, "hub", "node", "accept-epoch", "gongan", "--config", exchange.hubConfig])
            #expect(accepted.status == 0, "\(accepted.output)")
            #expect(try await AgentPushTests.eventually {
                let renamed = try await exchange.hubSQL.query("""
                    SELECT count(*) FROM govex.resource_rows WHERE resource = 'GA-RK-0001' AND key = '["7"]'
                    """).rows[0][0]
                return try await hubRows() == "60" && renamed == "1"
            }, "everything committed while the data directory was gone reached the hub")
            let copy = try await HubCopy.rows(of: "GA-RK-0001", on: exchange.hubSQL)
            #expect(copy.first { $0.key == "[\"7\"]" }?.value(of: "name") == .text("renamed"))
            agent.signal(SIGTERM)
            #expect(await agent.finish().status == 0)
        }
    }
}
