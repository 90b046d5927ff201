import Crypto
import Foundation
import GovexHub
import GovexIdentity
import GovexPostgres
import GovexTestSupport
import GovexWire
import SwiftASN1
import Testing

/// The hub under a slowloris attack, as a process with the file limit systemd gives a
/// service by default (1,024): idle connections that never start TLS are closed after the
/// handshake timeout, accepts stay below the file limit, and a legitimate push still lands.
@Suite("Hub resource limits")
struct HubLimitsTests {
    /// A process that opens `count` TCP connections to the port, one after another (each
    /// connect waits until the hub's listen queue takes it), never sends a byte, prints how
    /// many it opened, and holds them for `seconds`.
    static func idleConnections(_ count: Int, port: Int, seconds: Int) throws -> Subprocess.Running {
        try Subprocess.start(["python3", "-c", """
            import socket, sys, time
            held = []
            for _ in range(\(count)):
                s = socket.socket(); s.settimeout(5)
                try:
                    s.connect(("127.0.0.1", \(port))); held.append(s)
                except OSError:
                    pass
            print("opened", len(held), flush=True)
            time.sleep(\(seconds))
            """])
    }

    @Test("1,100 idle connections do not stop a legitimate push; the flood is audited once, not 1,100 times")
    func slowloris() async throws {
        try await TestPostgres.withDatabase { database in
            let dataDir = Subprocess.temporaryDirectory("govex-hub-limits")
            let port = try freeLoopbackPort()
            let path = try AgentCommandTests.write(HubCommandTests.config(dataDir: dataDir, conninfo: database.conninfo, port: port)
                                                   + "\n[limits]\nhandshake_timeout = \"2s\"\n")
            let govex = AgentCommandTests.govex
            try await Subprocess.checkAsync([govex, "hub", "init", "--config", path])
            let ca = try CertificateAuthority.load(from: dataDir + "/ca")
            let (key, request) = try NodeIdentity.makeRequest(nodeID: "gongan")
            let certificate = try ca.issueClientCertificate(for: request, nodeID: "gongan")
            try await PostgresConnection.with(database.conninfo) { sql in
                try await HubStore.addNode("gongan", on: sql)
                try await HubStore.registerKey(VectorKeys.gongan.publicKey, for: "gongan", on: sql)
                try await NodeCertificates.recordCurrent(certificate, node: "gongan", on: sql)
            }
            try certificate.serializeAsPEM().pemString.write(toFile: dataDir + "/gongan.pem", atomically: true, encoding: .utf8)
            try key.pemRepresentation.write(toFile: dataDir + "/gongan.key", atomically: true, encoding: .utf8)
            var metadata = SampleBatches.metadata(sequence: 1)
            metadata.nodeEpoch = 7
            try Data(try SampleBatches.seal(SampleBatches.mixedRecords(), key: VectorKeys.gongan, metadata: metadata))
                .write(to: URL(fileURLWithPath: dataDir + "/batch"))

            let hub = try Subprocess.start(["bash", "-c", "ulimit -n 1024 && exec \(govex) hub --config \(path)"])
            func log() -> String { (try? String(contentsOfFile: hub.outputPath, encoding: .utf8)) ?? "" }
            _ = try await eventually { log().contains("listening on") }
            #expect(log().contains("listening on"), "\(log())")

            // Each connection is accepted, or waits in the listen queue: the flood is in place
            // before the legitimate agent comes (against the hub before this fix, 1,024 files were
            // exhausted and the agent's connection was never answered).
            let flood = try Self.idleConnections(1_100, port: port, seconds: 60)
            func opened() -> String { (try? String(contentsOfFile: flood.outputPath, encoding: .utf8)) ?? "" }
            _ = try await eventually { opened().contains("opened") }
            #expect(opened().contains("opened 1100"), "\(opened())")
            let started = ContinuousClock.now
            let pushed = try await Subprocess.run(["curl", "-sS", "--max-time", "40", "-o", "/dev/null", "-w", "%{http_code}",
                                                   "--cacert", dataDir + "/ca/ca.pem", "--cert", dataDir + "/gongan.pem", "--key", dataDir + "/gongan.key",
                                                   "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + dataDir + "/batch",
                                                   "https://127.0.0.1:\(port)/v1/batches"], within: .seconds(60))
            let waited = ContinuousClock.now - started
            #expect(pushed.output.hasSuffix("200"), "the legitimate push after \(waited): \(pushed.output)\n\(log().suffix(2000))")
            #expect(waited < .seconds(30))

            func audited() async throws -> Int {
                try await PostgresConnection.with(database.conninfo) { sql in
                    Int(try await sql.query("""
                        SELECT count(*) FROM govex.audit_log WHERE action = 'request_refused' AND details::jsonb ->> 'reason' = 'tls_handshake_timeout'
                        """).rows[0][0] ?? "") ?? -1
                }
            }
            // The idle connections the hub accepted time out after 2 s; give the rest of them time to be recorded too.
            _ = try await eventually { try await audited() >= 1 }
            try await Task.sleep(for: .seconds(1))
            #expect(try await audited() == 1, "one entry for the flood from one address, not one per connection")
            flood.signal(SIGTERM)
            _ = await flood.finish(within: .seconds(10))
            hub.signal(SIGTERM)
            _ = await hub.finish(within: .seconds(30))
        }
    }
}
