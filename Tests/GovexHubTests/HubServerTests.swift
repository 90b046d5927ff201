import Crypto
import Foundation
import GovexAPI
import GovexHub
import GovexIdentity
import GovexPostgres
import GovexTestSupport
import GovexWire
import SwiftASN1
import Testing
import X509

/// The hub over real TLS, driven by `curl` with certificates the test creates:
/// enrollment without a certificate, pushes with one, and every way to be refused.
@Suite("Hub server over mutual TLS")
struct HubServerTests {
    struct Hub {
        let directory: String
        let port: Int
        let ca: CertificateAuthority
        let conninfo: String
        var url: String { "https://127.0.0.1:\(port)" }
    }

    /// A running hub on a free loopback port with a migrated database; stopped after `body`.
    static func withHub(limits: HubConfiguration.Limits = .init(), _ body: @escaping @Sendable (Hub) async throws -> Void) async throws {
        try await HubStoreTests.withHub { database, _ in
            let directory = Subprocess.temporaryDirectory("govex-hub")
            let ca = try CertificateAuthority.create(commonName: "govex test hub CA")
            let serverKey = P256.Signing.PrivateKey()
            let serverCertificate = try ca.issueServerCertificate(publicKey: serverKey.publicKey, hostnames: ["localhost"], addresses: ["127.0.0.1"])
            try ca.certificate.serializeAsPEM().pemString.write(toFile: directory + "/ca.pem", atomically: true, encoding: .utf8)
            var settings = HubServer.Settings(host: "127.0.0.1", port: 0, serverCertificatePEM: try serverCertificate.serializeAsPEM().pemString,
                                              serverKeyPEM: serverKey.pemRepresentation, ca: ca, hubSigningKey: VectorKeys.hub)
            settings.limits = limits
            let pool = ConnectionPool(conninfo: database.conninfo, size: 4)
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            let server = Task { try await HubServer(settings: settings, pool: pool).run { continuation.yield($0) } }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw TestSupportError("the hub did not start") }
            do {
                try await body(Hub(directory: directory, port: port, ca: ca, conninfo: database.conninfo))
            } catch {
                server.cancel()
                _ = await server.result
                await pool.close()
                throw error
            }
            server.cancel()
            _ = await server.result
            await pool.close()
        }
    }

    /// `curl` a route; returns the HTTP status (0 when TLS or the connection failed) and the body.
    static func curl(_ hub: Hub, _ path: String, body: [UInt8], identity: (certificate: String, key: String)? = nil) async throws -> (status: Int, body: String, output: String) {
        let input = hub.directory + "/request-\(UUID().uuidString.prefix(8))"
        let output = input + ".out"
        try Data(body).write(to: URL(fileURLWithPath: input))
        var argv = ["curl", "-sS", "--max-time", "20", "-o", output, "-w", "%{http_code}", "--cacert", hub.directory + "/ca.pem",
                    "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + input]
        if let identity { argv += ["--cert", identity.certificate, "--key", identity.key] }
        let result = try await Subprocess.run(argv + [hub.url + path], within: .seconds(30))
        let responseBody = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        return (Int(result.output.suffix(3)) ?? 0, responseBody, result.output)
    }

    /// `curl -X GET`: the response body as bytes (deliveries are binary).
    static func curlGet(_ hub: Hub, _ path: String, identity: (certificate: String, key: String)) async throws -> [UInt8] {
        let output = hub.directory + "/get-\(UUID().uuidString.prefix(8)).out"
        let result = try await Subprocess.run(["curl", "-sS", "--max-time", "40", "-o", output, "-w", "%{http_code}", "--cacert", hub.directory + "/ca.pem",
                                               "--cert", identity.certificate, "--key", identity.key, hub.url + path], within: .seconds(60))
        guard result.output.hasSuffix("200") else { throw TestSupportError("GET \(path): \(result.output)") }
        return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
    }

    static func curlStatus(_ hub: Hub, _ path: String, identity: (certificate: String, key: String)) async throws -> Int {
        let result = try await Subprocess.run(["curl", "-sS", "--max-time", "40", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", hub.directory + "/ca.pem",
                                               "--cert", identity.certificate, "--key", identity.key, hub.url + path], within: .seconds(60))
        return Int(result.output.suffix(3)) ?? 0
    }

    /// A client key and certificate in files, issued by `ca` for `node`, optionally long expired.
    /// A key and certificate for `node`, issued by the hub's CA (or `ca`); recorded at the hub as
    /// the node's current certificate, as enrollment would, unless `recorded` is false.
    static func identity(_ hub: Hub, node: String, ca: CertificateAuthority? = nil, expired: Bool = false,
                         recorded: Bool = true) async throws -> (certificate: String, key: String) {
        let (key, request) = try NodeIdentity.makeRequest(nodeID: node)
        let now = expired ? Date() - 400 * 86_400 : Date()
        let certificate = try (ca ?? hub.ca).issueClientCertificate(for: request, nodeID: node, days: expired ? 30 : 365, now: now)
        if recorded, ca == nil {
            try await PostgresConnection.with(hub.conninfo) { sql in
                try await HubStore.addNode(node, on: sql)
                try await NodeCertificates.recordCurrent(certificate, node: node, on: sql)
            }
        }
        let base = hub.directory + "/\(node)-\(UUID().uuidString.prefix(6))"
        try certificate.serializeAsPEM().pemString.write(toFile: base + ".pem", atomically: true, encoding: .utf8)
        try key.pemRepresentation.write(toFile: base + ".key", atomically: true, encoding: .utf8)
        return (base + ".pem", base + ".key")
    }

    @Test("enrollment: a token buys one certificate naming the node; reused, or for another node, it is refused")
    func enrollment() async throws {
        try await Self.withHub { hub in
            let token = try await PostgresConnection.with(hub.conninfo) { try await Enrollment.createToken(for: "minzheng", on: $0) }
            let (key, request) = try NodeIdentity.makeRequest(nodeID: "minzheng")
            let signingKey = VectorKeys.ed25519(seed: Array(repeating: 7, count: 32))
            func body(node: String, proofBy prover: SigningKey? = signingKey) throws -> [UInt8] {
                let statement = NodeKeyProof.enrollmentStatement(node: node, token: token, keyPEM: signingKey.publicKey.pem)
                return Array(BatchJSON.object([("node", BatchJSON.string(node)), ("token", BatchJSON.string(token)),
                                               ("csr", BatchJSON.string(try request.serializeAsPEM().pemString)),
                                               ("signing_key", BatchJSON.string(signingKey.publicKey.pem)),
                                               ("signing_key_proof", try prover.map { BatchJSON.string(try NodeKeyProof.sign(statement, with: $0)) } ?? "null")]).utf8)
            }
            // Proof of possession: a public key alone (someone else's, say) is not enough.
            let unproven = try await Self.curl(hub, "/v1/enroll", body: try body(node: "minzheng", proofBy: nil))
            #expect(unproven.status == 400 && unproven.body.contains("signing_key_proof"), "\(unproven)")
            let otherProver = try await Self.curl(hub, "/v1/enroll", body: try body(node: "minzheng", proofBy: VectorKeys.gongan))
            #expect(otherProver.status == 400 && otherProver.body.contains("signing_key_proof"), "\(otherProver)")
            let wrongNode = try await Self.curl(hub, "/v1/enroll", body: try body(node: "gongan"))
            #expect(wrongNode.status == 403 && wrongNode.body.contains("not valid for node gongan"), "\(wrongNode)")
            let granted = try await Self.curl(hub, "/v1/enroll", body: try body(node: "minzheng"))
            #expect(granted.status == 200, "\(granted)")
            struct Granted: Decodable { let certificate: String; let ca: String; let hub_signing_key: String }
            let reply = try JSONDecoder().decode(Granted.self, from: Data(granted.body.utf8))
            let certificate = try Certificate(pemEncoded: reply.certificate)
            #expect(NodeIdentity.nodeID(of: certificate) == "minzheng")
            #expect(certificate.publicKey == Certificate.PublicKey(key.publicKey))
            #expect(reply.hub_signing_key == VectorKeys.hub.publicKey.pem)
            let again = try await Self.curl(hub, "/v1/enroll", body: try body(node: "minzheng"))
            #expect(again.status == 403 && again.body.contains("already used"), "\(again)")
            let garbage = try await Self.curl(hub, "/v1/enroll", body: Array("{".utf8))
            #expect(garbage.status == 400)
        }
    }

    @Test("a push with the node's certificate gets a signed receipt; without one, or for another node, it is refused")
    func push() async throws {
        try await Self.withHub { hub in
            let gongan = try await Self.identity(hub, node: "gongan")
            let batch = try HubStoreTests.batch(1)
            let accepted = try await Self.curl(hub, "/v1/batches", body: batch, identity: gongan)
            #expect(accepted.status == 200, "\(accepted)")
            let receipt = try SignedReceipt(wire: Array(accepted.body.utf8)).verified(with: VectorKeys.hub.publicKey)
            #expect(receipt.status == .accepted && receipt.sequence == "1")

            let anonymous = try await Self.curl(hub, "/v1/batches", body: try HubStoreTests.batch(2))
            #expect(anonymous.status == 401 && anonymous.body.contains("client_certificate_required"))

            try await PostgresConnection.with(hub.conninfo) { try await HubStore.addNode("minzheng", on: $0) }
            let minzheng = try await Self.identity(hub, node: "minzheng")
            let impostor = try await Self.curl(hub, "/v1/batches", body: try HubStoreTests.batch(2), identity: minzheng)
            #expect(impostor.status == 403 && impostor.body.contains("node_mismatch"), "\(impostor)")
        }
    }

    @Test("TLS refuses another CA's certificate and an expired one; a revoked node is refused")
    func refused() async throws {
        try await Self.withHub { hub in
            let foreignCA = try CertificateAuthority.create(commonName: "not the hub's CA")
            let foreign = try await Self.curl(hub, "/v1/batches", body: try HubStoreTests.batch(1), identity: try await Self.identity(hub, node: "gongan", ca: foreignCA))
            #expect(foreign.status == 0 && foreign.output.contains("unknown ca"), "the handshake must fail: \(foreign)")
            let expired = try await Self.curl(hub, "/v1/batches", body: try HubStoreTests.batch(1), identity: try await Self.identity(hub, node: "gongan", expired: true))
            #expect(expired.status == 0 && expired.output.contains("certificate expired"), "the handshake must fail: \(expired)")

            try await PostgresConnection.with(hub.conninfo) { _ = try await $0.query("UPDATE govex.nodes SET revoked_at = now() WHERE node_id = 'gongan'") }
            let revoked = try await Self.curl(hub, "/v1/batches", body: try HubStoreTests.batch(1), identity: try await Self.identity(hub, node: "gongan"))
            #expect(revoked.status == 403 && revoked.body.contains("revoked"), "\(revoked)")
        }
    }
}
