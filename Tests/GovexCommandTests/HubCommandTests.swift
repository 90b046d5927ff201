import Foundation
import GovexHub
import GovexIdentity
import GovexPostgres
import GovexTestSupport
import GovexWire
import SwiftASN1
import Testing

/// `govex hub` as an operator runs it: init, node add, serve, enrollment, revoke.
@Suite("govex hub")
struct HubCommandTests {
    /// `metrics`: a Prometheus endpoint on a free loopback port (the hub logs which).
    static func config(dataDir: String, conninfo: String, port: Int, metrics: Bool = false) -> String {
        """
        [hub]
        data_dir = "\(dataDir)"
        listen = "127.0.0.1:\(port)"
        database = "\(conninfo)"
        hostnames = ["localhost"]
        addresses = ["127.0.0.1"]
        """ + (metrics ? "\n[metrics]\nlisten = \"127.0.0.1:0\"\n" : "")
    }

    @Test("init creates keys 0600 once and migrates; node add prints a token that enrolls over HTTPS; revoke refuses unknown nodes")
    func operatorFlow() async throws {
        try await TestPostgres.withDatabase { database in
            let dataDir = Subprocess.temporaryDirectory("govex-hub-cli")
            let port = try freeLoopbackPort()
            let path = try AgentCommandTests.write(Self.config(dataDir: dataDir, conninfo: database.conninfo, port: port))
            let govex = AgentCommandTests.govex

            // hub.toml may hold the database password: a copy every user can read is refused.
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
            let worldReadable = try await Subprocess.run([govex, "hub", "init", "--config", path])
            #expect(worldReadable.status == 2 && worldReadable.output.contains("run `chmod 640 \(path)`"), "\(worldReadable.output)")
            try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
            let initialized = try await Subprocess.run([govex, "hub", "init", "--config", path])
            #expect(initialized.status == 0 && initialized.output.contains("migrated the database schema"), "\(initialized.output)")
            for secret in ["/ca/ca.key", "/keys/signing.key", "/tls/server.key"] {
                let mode = try FileManager.default.attributesOfItem(atPath: dataDir + secret)[.posixPermissions] as? Int
                #expect(mode == 0o600, "\(secret)")
            }
            let caBefore = try String(contentsOfFile: dataDir + "/ca/ca.pem", encoding: .utf8)
            let again = try await Subprocess.run([govex, "hub", "init", "--config", path])
            #expect(again.status == 0 && again.output.contains("up to date"), "\(again.output)")
            #expect(try String(contentsOfFile: dataDir + "/ca/ca.pem", encoding: .utf8) == caBefore, "nothing is overwritten")

            let added = try await Subprocess.run([govex, "hub", "node", "add", "gongan", "--config", path])
            #expect(added.status == 0, "\(added.output)")
            // Standard output holds the token alone; the note beside it goes to standard error.
            let token = try #require(added.output.split(separator: "\n").first { !$0.contains(" ") }.map(String.init))
            let badNode = try await Subprocess.run([govex, "hub", "node", "add", "Gong An", "--config", path])
            #expect(badNode.status == 2 && badNode.output.contains("must be 1 to 63 characters"), "\(badNode.output)")
            let discrepancies = try await Subprocess.run([govex, "hub", "discrepancies", "--status", "open", "--json", "--config", path])
            #expect(discrepancies.status == 0 && discrepancies.output.hasSuffix("[]\n"), "\(discrepancies.output)")
            let badStatus = try await Subprocess.run([govex, "hub", "discrepancies", "--status", "closed", "--config", path])
            #expect(badStatus.status == 2 && badStatus.output.contains("open or resolved"))
            let audit = try await Subprocess.run([govex, "hub", "audit", "verify", "--config", path])
            #expect(audit.status == 0 && audit.output.contains("holds: 1 entries"), "the token issued is the first entry: \(audit.output)")

            let hub = try Subprocess.start([govex, "hub", "--config", path])
            var listening = false
            for _ in 0..<100 where !listening {
                try await Task.sleep(for: .milliseconds(100))
                listening = (try? String(contentsOfFile: hub.outputPath, encoding: .utf8))?.contains("listening on") ?? false
            }
            #expect(listening, "\((try? String(contentsOfFile: hub.outputPath, encoding: .utf8)) ?? "")")

            // The agent's side: govex enroll with the token and the CA hash that node add printed.
            let command = try #require(added.output.split(separator: "\n").first { $0.contains("govex enroll") })
            let caHash = try #require(command.split(separator: " ").drop { $0 != "--ca-sha256" }.dropFirst().first.map(String.init))
            let agentDir = Subprocess.temporaryDirectory("govex-enroll")
            try Subprocess.check([govex, "keygen", "--out", agentDir + "/keys"])
            let agentConfig = try AgentCommandTests.write(AgentCommandTests.config(dataDir: agentDir, conninfo: database.conninfo, slot: "unused"))
            let hubURL = "https://127.0.0.1:\(port)"
            let wrongCA = try await Subprocess.run([govex, "enroll", "--hub", hubURL, "--token", token, "--ca-sha256", String(repeating: "ab", count: 32),
                                                    "--config", agentConfig])
            #expect(wrongCA.status == 2 && wrongCA.output.contains("do not enroll"), "\(wrongCA.output)")
            #expect(!FileManager.default.fileExists(atPath: agentDir + "/tls/tls.key"))
            // The token from a file, so that it never shows in `ps`; and from standard input.
            let tokenFile = agentDir + "/token"
            try (token + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let enrolled = try await Subprocess.run([govex, "enroll", "--hub", hubURL, "--token-file", tokenFile, "--ca-sha256", caHash, "--config", agentConfig])
            #expect(enrolled.status == 0 && enrolled.output.contains("enrolled gongan"), "\(enrolled.output)")
            let mode = try FileManager.default.attributesOfItem(atPath: agentDir + "/tls/tls.key")[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let certificate = try NodeIdentity.loadCertificate(path: agentDir + "/tls/tls.pem")
            #expect(NodeIdentity.nodeID(of: certificate) == "gongan")
            #expect(try String(contentsOfFile: agentDir + "/tls/hub-ca.pem", encoding: .utf8) == caBefore)
            let twice = try await Subprocess.run(["bash", "-c", "\(govex) enroll --hub \(hubURL) --token-file - --ca-sha256 \(caHash) --config \(agentConfig) < \(tokenFile)"])
            #expect(twice.status == 2 && twice.output.contains("already enrolled"), "\(twice.output)")

            // The administrator's view of the node's keys, and a mistyped key id.
            let keys = try await Subprocess.run([govex, "hub", "node", "keys", "gongan", "--json", "--config", path])
            #expect(keys.status == 0 && keys.output.contains(#""state":"current""#), "\(keys.output)")
            let typo = try await Subprocess.run([govex, "hub", "node", "retire-key", "gongan", "0123", "--config", path])
            #expect(typo.status == 2 && typo.output.contains("node gongan has no signing key 0123"), "\(typo.output)")
            let serial = try await PostgresConnection.with(database.conninfo) { sql in
                try await sql.query("SELECT serial FROM govex.certificates WHERE node_id = 'gongan' AND retired_at IS NULL").rows.first?[0] ?? ""
            }
            let revokedCertificate = try await Subprocess.run([govex, "hub", "node", "revoke-cert", serial, "--config", path])
            #expect(revokedCertificate.status == 0 && revokedCertificate.output.contains("revoked certificate \(serial) of gongan"), "\(revokedCertificate.output)")

            let revoked = try await Subprocess.run([govex, "hub", "node", "revoke", "gongan", "--config", path])
            #expect(revoked.status == 0 && revoked.output.contains("revoked gongan"))
            let unknown = try await Subprocess.run([govex, "hub", "node", "revoke", "nobody", "--config", path])
            #expect(unknown.status == 2 && unknown.output.contains("no node nobody"))

            hub.signal(SIGTERM)
            let stopped = await hub.finish(within: .seconds(30))
            #expect(stopped.status == 0, "a graceful stop: \(stopped.output)")
        }
    }

    @Test("hub.toml mistakes name the file, the line and the key", arguments: [
        ("[hub]\nlisten = \"127.0.0.1:8443\"\n", "hub.toml:1: [hub] data_dir: missing; expected a string"),
        ("[hub]\ndata_dir = \"/d\"\ndatabase = \"x\"\naddresses = [\"example.org\"]\n", "hub.toml:4: [hub] addresses: 'example.org' is not an IPv4 or IPv6 address"),
        ("[hub]\ndata_dir = \"/d\"\ndatabase = \"x\"\naddresses = [\"127.0.0.1\"]\nlisten = \"8443\"\n", "hub.toml:5: [hub] listen: '8443' must be host:port"),
        ("[hub]\ndata_dir = \"/d\"\ndatabase = \"x\"\n", "hub.toml:1: [hub] hostnames: give the names or addresses"),
        ("[hubb]\n", "hub.toml:1: hubb: unknown section; did you mean hub? expected one of hub, metrics"),
        ("[hub]\ndata_dir = \"/d\"\ndatabase = \"x\"\naddresses = [\"127.0.0.1\"]\n[metrics]\nlisten = \"9188\"\n", "hub.toml:6: [metrics] listen: '9188' must be host:port"),
        ("[hub]\ndata_dir = \"/d\"\ndatabase = \"x\"\naddresses = [\"127.0.0.1\"]\n[metrics]\nport = 9188\n", "hub.toml:6: [metrics] port: unknown key; expected one of listen"),
    ])
    func configurationErrors(text: String, expected: String) {
        #expect {
            _ = try HubConfiguration.load(path: "hub.toml", text: text)
        } throws: { error in
            "\(error)".hasPrefix(expected)
        }
    }
}
