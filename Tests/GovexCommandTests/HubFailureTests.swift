import Foundation
import GovexAgent
import GovexHub
import GovexTestSupport
import NIOCore
import Testing

/// What the agent logs when the hub gives no answer: the reason in words, never a network
/// library's type dump (`NIOConnectionError(host: …, connectionErrors: [SingleConnectionFailure(…)])`).
@Suite("Hub failures said plainly")
struct HubFailureTests {
    static func libraryNames(_ text: String) -> Bool {
        ["NIO", "Error(", "HTTPClient", "BoringSSL", "SingleConnectionFailure", "errno"].contains { text.contains($0) }
    }

    static func failure(_ request: () async throws -> HubClient.Response) async -> String? {
        do {
            _ = try await request()
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test("nothing listens: 'Connection refused'")
    func refused() async throws {
        let port = try freeLoopbackPort()
        let client = try HubClient(baseURL: "https://127.0.0.1:\(port)", caPEM: nil, identity: nil)
        let reason = await Self.failure { try await client.get("/v1/health") }
        await client.shutdown()
        #expect(reason == "Connection refused", "was: connection reset (error set): Connection refused (errno: 111)")
    }

    @Test("a hub whose certificate the CA did not sign: 'the TLS handshake failed: certificate verify failed'")
    func wrongCA() async throws {
        let directory = Subprocess.temporaryDirectory("govex-tls")
        let made = try await Subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                             "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem", "-days", "1",
                                             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        #expect(made.status == 0, "\(made.output)")
        let other = try await Subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                              "-keyout", directory + "/other-key.pem", "-out", directory + "/other.pem", "-days", "1", "-subj", "/CN=other"])
        #expect(other.status == 0, "\(other.output)")
        let port = try freeLoopbackPort()
        let server = try Subprocess.start(["openssl", "s_server", "-quiet", "-accept", "127.0.0.1:\(port)",
                                           "-cert", directory + "/cert.pem", "-key", directory + "/key.pem"])
        defer { server.signal(SIGKILL); _ = server.wait() }
        #expect(try await eventually { HubStatus.listening(host: "127.0.0.1", port: port) })
        let client = try HubClient(baseURL: "https://127.0.0.1:\(port)", caPEM: try String(contentsOfFile: directory + "/other.pem", encoding: .utf8), identity: nil)
        let reason = await Self.failure { try await client.get("/v1/health") }
        await client.shutdown()
        #expect(reason == "the TLS handshake failed: certificate verify failed")
    }

    @Test("each library error becomes words, none keeps a type name")
    func plainWords() {
        let cases: [(any Error, String)] = [
            (IOError(errnoCode: ECONNRESET, reason: "read"), "Connection reset by peer"),
            (ChannelError.connectTimeout(.seconds(10)), "connecting timed out"),
            (ChannelError.eof, "the connection closed"),
        ]
        for (error, expected) in cases {
            #expect(HubFailure(error).reason == expected)
        }
        for error in cases.map(\.0) {
            #expect(!Self.libraryNames(HubFailure(error).reason), "\(HubFailure(error).reason)")
        }
    }
}
