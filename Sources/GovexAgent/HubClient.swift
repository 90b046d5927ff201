import AsyncHTTPClient
import Foundation
import GovexIdentity
import NIOCore
import NIOHTTP1
import NIOSSL

/// The agent's HTTPS connection to the hub: TLS 1.2+, the hub's CA as the only trust
/// root, and the node's certificate as client identity once enrolled.
public final class HubClient: Sendable {
    public struct Identity: Sendable {
        public var certificatePEM: String
        public var keyPEM: String
        public init(certificatePEM: String, keyPEM: String) {
            self.certificatePEM = certificatePEM
            self.keyPEM = keyPEM
        }
    }

    public struct Response: Sendable {
        public let status: Int
        public let body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    let baseURL: String
    let http: HTTPClient

    /// `caPEM` nil means: do not verify the hub at all. Only the CA download before
    /// enrollment uses that, and it checks what it downloaded against a pinned hash.
    public init(baseURL: String, caPEM: String?, identity: Identity?) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        // Closing waits this long for the hub's close_notify: a long-poll cancelled by a stop
        // has nothing more to say, and 5 s (the default) held every subscriber's stop up.
        tls.shutdownTimeout = .milliseconds(500)
        if let caPEM {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        } else {
            tls.certificateVerification = .none
        }
        if let identity {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(identity.certificatePEM.utf8)).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.keyPEM.utf8), format: .pem))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        // A hub that cannot be reached fails the request at once: the pusher then logs it
        // and backs off itself, instead of the request waiting out its whole deadline.
        configuration.connectionPool.retryConnectionEstablishment = false
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func get(_ path: String, limit: Int = 1 << 20) async throws -> Response {
        try await send(HTTPClientRequest(url: baseURL + path), limit: limit)
    }

    public func post(_ path: String, body: [UInt8], contentType: String, headers: [(String, String)] = [], limit: Int = 1 << 20) async throws -> Response {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        return try await send(request, limit: limit)
    }

    /// Throws `HubFailure` (a plain reason) when the hub gives no answer, CancellationError on a stop.
    private func send(_ request: HTTPClientRequest, limit: Int) async throws -> Response {
        do {
            let response = try await http.execute(request, timeout: .seconds(120))
            let body = try await response.body.collect(upTo: limit)
            return Response(status: Int(response.status.code), body: Array(buffer: body))
        } catch let error as CancellationError {
            throw error
        } catch {
            throw HubFailure(error)
        }
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    /// Runs `body` with this client and shuts it down afterwards, whether `body` returns or
    /// throws: a client left running aborts a debug build when it is released.
    public func closing<T>(_ body: (HubClient) async throws -> T) async throws -> T {
        let result: T
        do {
            result = try await body(self)
        } catch {
            await shutdown()
            throw error
        }
        await shutdown()
        return result
    }
}
