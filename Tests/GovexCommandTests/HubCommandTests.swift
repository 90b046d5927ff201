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
    static func config(dataDir: String, conninfo: String, port: Int) -> String {
        """
        [hub]
        data_dir = "\(dataDir)"
        listen = "127.0.0.1:\(port)"
        database = "\(conninfo)"
        hostnames = ["localhost"]
        addresses = ["127.0.0.1"]
        """
    }

    @Test("init creates keys 0600 once and migrates; node add prints a token that enrolls over HTTPS; revoke refuses unknown nodes")
    func operatorFlow() async throws {
        try await TestPostgres.withDatabase { database in
            let dataDir = Subprocess.temporaryDirectory("govex-hub-cli")
            let port = try freeLoopbackPort()
            let path = try AgentCommandTests.write(Self.config(dataDir: dataDir, conninfo: database.conninfo, port: port))
            let govex = AgentCommandTests.govex

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

            let hub = try Subprocess.start([govex, "hub", "--config", path])
            var listening = false
            for _ in 0..<100 where !listening {
                try await Task.sleep(for: .milliseconds(100))
                listening = (try? String(contentsOfFile: hub.outputPath, encoding: .utf8))?.contains("listening on") ?? false
            }
            #expect(listening, "\((try? String(contentsOfFile: hub.outputPath, encoding: .utf8)) ?? "")")

            let (_, request) = try NodeIdentity.makeRequest(nodeID: "gongan")
            let body = BatchJSON.object([("node", BatchJSON.string("gongan")), ("token", BatchJSON.string(token)),
                                         ("csr", BatchJSON.string(try request.serializeAsPEM().pemString)),
                                         ("signing_key", BatchJSON.string(VectorKeys.gongan.publicKey.pem))])
            let bodyPath = dataDir + "/enroll.json"
            try body.write(toFile: bodyPath, atomically: true, encoding: .utf8)
            let enrolled = try await Subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", "--cacert", dataDir + "/ca/ca.pem",
                                                     "--data-binary", "@" + bodyPath, "https://127.0.0.1:\(port)/v1/enroll"])
            #expect(enrolled.output.hasSuffix("\n200") && enrolled.output.contains("BEGIN CERTIFICATE"), "\(enrolled.output)")

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
        ("[hubb]\n", "hub.toml:1: hubb: unknown section; expected [hub]"),
    ])
    func configurationErrors(text: String, expected: String) {
        #expect {
            _ = try HubConfiguration.load(path: "hub.toml", text: text)
        } throws: { error in
            "\(error)".hasPrefix(expected)
        }
    }
}
