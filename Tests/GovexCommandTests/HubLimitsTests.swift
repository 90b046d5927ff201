import Crypto
import Foundation
import GovexHub
import GovexIdentity
import GovexPostgres
import GovexTestSupport
import GovexWire
import SwiftASN1
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The hub under a slowloris attack, as a process with the file limit systemd gives a
/// service by default (1,024): idle connections that never start TLS are closed after the
/// handshake timeout, accepts stay below the file limit, and a legitimate push still lands.
@Suite("Hub resource limits")
struct HubLimitsTests {
    /// Opens `count` TCP connections to the port that never send a byte.
    static func idleConnections(_ count: Int, port: Int) -> [Int32] {
        var sockets: [Int32] = []
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { break }
            _ = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            sockets.append(fd)
        }
        return sockets
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

            let idle = Self.idleConnections(1_100, port: port)
            #expect(idle.count == 1_100)
            try await Task.sleep(for: .milliseconds(500))
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
            for fd in idle { close(fd) }
            hub.signal(SIGTERM)
            _ = await hub.finish(within: .seconds(30))
        }
    }
}
