import Foundation
import GovexAPI
import GovexIdentity
import GovexPostgres
import GovexSystemd
import ServiceLifecycle
import UnixSignals
import GovexWire
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// Each request's context: the channel, so a route can ask the TLS layer which
/// certificate (if any) the client presented.
public struct HubRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel
    /// The node the gate admitted (`HubGateMiddleware`); nil on the public routes.
    var node: String? = nil

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Batches are up to 64 MiB; the route enforces its own limit.
    public var maxUploadSize: Int { 64 << 20 }

}

/// The hub's HTTPS API (see docs/api.md).
public struct HubServer: Sendable {
    public struct Settings: Sendable {
        public var host: String
        public var port: Int
        public var serverCertificatePEM: String
        public var serverKeyPEM: String
        public var ca: CertificateAuthority
        public var hubSigningKey: SigningKey
        public var maxBatchBytes: Int = 64 << 20
        /// The hub's rotated signing keys, each endorsed by the one before (`govex hub rotate signing`).
        public var hubKeyEndorsements: [HubKeyEndorsement] = []
        /// `[limits]` of hub.toml: handshake and idle timeouts, connection and upload caps.
        public var limits = HubConfiguration.Limits()

        public init(host: String, port: Int, serverCertificatePEM: String, serverKeyPEM: String, ca: CertificateAuthority, hubSigningKey: SigningKey) {
            self.host = host
            self.port = port
            self.serverCertificatePEM = serverCertificatePEM
            self.serverKeyPEM = serverKeyPEM
            self.ca = ca
            self.hubSigningKey = hubSigningKey
        }
    }

    let settings: Settings
    let pool: ConnectionPool
    let store: HubStore
    let wakeups = DeliveryWakeups()
    /// Batches waiting for their predecessor, by node.
    let ledgerWakeups = Wakeups<String>()
    let merger = GoldenMerger()
    let connections = NodeConnections()
    let enrollmentAttempts = AttemptLimiter(perMinute: 10)
    let uploadSlots: UploadSlots
    let recorder: RefusalRecorder
    let backlog: NodeBacklog

    public init(settings: Settings, pool: ConnectionPool) {
        self.settings = settings
        self.pool = pool
        self.store = HubStore(hubKey: settings.hubSigningKey)
        self.uploadSlots = UploadSlots(total: settings.limits.uploads, perNode: settings.limits.uploadsPerNode)
        self.recorder = RefusalRecorder(pool: pool)
        self.backlog = NodeBacklog(pool: pool)
    }

    /// TLS 1.2 at least, the hub's certificate, client certificates verified against the
    /// hub's CA when presented.
    func tlsConfiguration() throws -> TLSConfiguration {
        let caCertificate = try NIOSSLCertificate(bytes: Array(try settings.ca.certificate.serializeAsPEM().pemString.utf8), format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(settings.serverCertificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(settings.serverKeyPEM.utf8), format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        // TLS 1.2 with forward-secret AEAD suites only (TLS 1.3's are all AEAD): no CBC, no SHA-1
        // MACs, no static RSA; with nothing weak on offer the client's order cannot pick one.
        tls.cipherSuites = Self.tls12CipherSuites
        // A closing connection (shutdown, revocation) waits this long for the client's close_notify.
        tls.shutdownTimeout = .seconds(1)
        tls.certificateVerification = .optionalVerification
        tls.trustRoots = .certificates([caCertificate])
        return tls
    }

    static let spoolHeader = HTTPField.Name(SpoolReport.header)!

    public static let tls12CipherSuites = [
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-GCM-SHA256",
    ].joined(separator: ":")


    func router() -> Router<HubRequestContext> {
        let router = Router(context: HubRequestContext.self)
        let store = self.store, pool = self.pool, settings = self.settings, merger = self.merger, ledgerWakeups = self.ledgerWakeups
        let uploadSlots = self.uploadSlots, backlog = self.backlog
        router.add(middleware: HubGateMiddleware(pool: pool, ca: settings.ca, connections: connections, recorder: recorder))

        /// Runs `body` for the node the gate admitted (every route but the public ones passes it).
        @Sendable func authenticated(_ context: HubRequestContext, _ body: (String) async throws -> Response) async throws -> Response {
            guard let node = context.node else { return Self.certificateRequired() }
            return try await body(node)
        }

        // Public: an agent checks it against the SHA-256 handed over with its token.
        let caPEM = (try? settings.ca.certificate.serializeAsPEM().pemString) ?? ""
        router.get(RouterPath(HubRoute.ca)) { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/x-pem-file"], body: .init(byteBuffer: ByteBuffer(string: caPEM)))
        }

        router.post(RouterPath(HubRoute.enroll)) { request, context -> Response in
            // Every attempt counts, well-formed or not: tokens cannot be guessed at network speed.
            guard await enrollmentAttempts.allow(context.channel.remoteAddress?.ipAddress ?? "?") else {
                return Self.error(.enrollmentRateLimited, "too many enrollment attempts from this address; wait a minute")
            }
            let bytes = try await request.body.collect(upTo: 64 << 10)
            guard let body = try? JSONDecoder().decode(EnrollRequest.self, from: Data(Array(buffer: bytes))) else {
                return Self.error(.badRequest, "expected JSON {node, token, csr, signing_key, signing_key_proof}")
            }
            do {
                let granted = try await pool.withConnection { sql in
                    try await Enrollment.enroll(nodeID: body.node, token: body.token, requestPEM: body.csr, signingKeyPEM: body.signingKey,
                                                signingKeyProof: body.signingKeyProof,
                                                ca: settings.ca, hubSigningKey: settings.hubSigningKey.publicKey, on: sql)
                }
                HubLog.write(5, "node \(body.node) enrolled from \(context.channel.remoteAddress?.ipAddress ?? "?")")
                return try Self.encoded(EnrollResponse(certificate: granted.certificatePEM, ca: granted.caPEM, hubSigningKey: granted.hubSigningKeyPEM))
            } catch let refused as EnrollmentRefused {
                return Self.error(.enrollmentRefused, refused.description)
            } catch let invalid as IdentityError {
                return Self.error(.invalidRequest, invalid.description)
            }
        }

        // The catalog entries of the resources this node provides, for the agent to check its [[publish]] against.
        router.get(RouterPath(HubRoute.catalogMine)) { _, context -> Response in
            try await authenticated(context) { node in
            let resources = try await pool.withConnection { sql in try await Catalog.read(on: sql).resources.filter { $0.provider == node } }
            return try Self.encoded(resources.map(\.entry))
            }
        }

        // The whole catalog, for `govex check` (the DDL of a subscribed table) and `govex subscribe`.
        router.get(RouterPath(HubRoute.catalog)) { _, context -> Response in
            try await authenticated(context) { _ in
                let resources = try await pool.withConnection { sql in try await Catalog.read(on: sql).subscribable }
                return try Self.encoded(resources.map(\.entry))
            }
        }

        // An agent reports what it found wrong (a [[publish]] the catalog does not allow): logged here too.
        router.post(RouterPath(HubRoute.alarms)) { request, context -> Response in
            try await authenticated(context) { node in
                let text = String(decoding: Array(buffer: try await request.body.collect(upTo: 16 << 10)), as: UTF8.self)
                HubLog.write(3, "alarm from node \(node): \(text)")
                return Self.json(.ok, "{}")
            }
        }

        router.post(RouterPath(HubRoute.batches)) { request, context -> Response in
            // Revocation is checked again in the ingest decision, under the node's ledger lock.
            guard let node = context.node else { return Self.certificateRequired() }
            // A slot before the body is read: the hub holds at most `uploads` bodies at once.
            guard await uploadSlots.acquire(node) else {
                var busy = Self.error(.tooManyUploads,
                                      "the hub is receiving as many batches as it takes at once (from this node, or in all); send again shortly")
                busy.headers[.retryAfter] = "1"
                return busy
            }
            do {
                let response = try await ingest(request, node: node)
                await uploadSlots.release(node)
                return response
            } catch {
                await uploadSlots.release(node)
                throw error
            }
        }
        @Sendable func ingest(_ request: Request, node: String) async throws -> Response {
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: settings.maxBatchBytes)
            } catch {
                return Self.error(.tooLarge, "a batch may be at most \(settings.maxBatchBytes) bytes")
            }
            let bytes = Array(buffer: body)
            // An agent sends several batches at once, on separate connections, so one may arrive
            // just before its predecessor: a batch a few sequences ahead waits for them (up to
            // 3 s) instead of being refused, which keeps pushes in flight without reordering. It
            // is woken by its node's next commit here (or, for another replica's, by a short
            // timeout); each try decides from the header alone, so its content is checked once.
            let deadline = ContinuousClock.now + .seconds(3)
            var seen = await ledgerWakeups.generation(of: node)
            var outcome = try await pool.withConnection { sql in try await store.ingest(bytes, from: node, on: sql) }
            while let ahead = outcome.sequencesAhead, ahead <= 16, ContinuousClock.now < deadline {
                await ledgerWakeups.wait(for: node, after: seen, timeout: .milliseconds(250))
                seen = await ledgerWakeups.generation(of: node)
                outcome = try await pool.withConnection { sql in try await store.ingest(bytes, from: node, on: sql) }
            }
            if outcome.decision == "accepted" || outcome.decision == "rejected" { await ledgerWakeups.wake(node) }
            if outcome.mergeQueued { merger.wake() }
            HubMetrics.shared.ingested(outcome.decision, node: node, records: outcome.records)
            if let report = SpoolReport(headerValue: request.headers[Self.spoolHeader]) { await backlog.record(report, node: node) }
            var headers: HTTPFields = [.contentType: "application/json"]
            if outcome.status >= 400 { headers[HubGateMiddleware.refusalHeader] = outcome.decision }
            return Response(status: .init(code: outcome.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: outcome.body)))
        }
        addExchangeRoutes(to: router, authenticated: authenticated)
        addFeedbackRoutes(to: router, authenticated: authenticated)
        addRotationRoutes(to: router, authenticated: authenticated)
        return router
    }

    static func certificateRequired() -> Response {
        error(.clientCertificateRequired, "this route needs the node's client certificate issued by the hub")
    }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// An error answer, with its code's status; the gate records it as a refusal (unless it
    /// already did: `recorded`).
    static func error(_ code: HubErrorCode, _ message: String, recorded: Bool = false) -> Response {
        var response = json(.init(code: code.httpStatus), HubStore.errorJSON(code: code.rawValue, message: message))
        if !recorded { response.headers[HubGateMiddleware.refusalHeader] = code.rawValue }
        return response
    }

    /// The connections the hub accepts at once: the configured cap, kept below the process's
    /// file limit (raised to its hard limit first), so that a flood of idle connections makes
    /// new ones wait in the listen queue instead of failing every accept.
    static func connectionCap(_ configured: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return configured }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        // Room for the database pool, listeners, files and the connections being closed.
        let reserve: rlim_t = 256
        guard limit.rlim_cur != rlim_t.max, limit.rlim_cur > reserve * 2 else { return configured }
        return min(configured, Int(limit.rlim_cur - reserve))
    }

    /// Serves until SIGTERM or SIGINT (a graceful stop) or until the surrounding task is
    /// cancelled; `onRunning` receives the bound port. Under systemd (Type=notify) it says
    /// READY=1 once listening, WATCHDOG=1 from a service of its own, STOPPING=1 at the stop.
    public func run(notifier: SystemdNotifier = SystemdNotifier(environment: [:]),
                    onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let recorder = self.recorder, handshakeTimeout = TimeAmount(settings.limits.handshakeTimeout)
        let app = Application(
            router: router(),
            server: try .tls(.http1(configuration: .init(additionalChannelHandlers: [HandshakeGuard(timeout: handshakeTimeout, recorder: recorder)],
                                                         idleTimeout: TimeAmount(settings.limits.idleTimeout))),
                             tlsConfiguration: tlsConfiguration()),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "govex-hub",
                                 availableConnectionsDelegate: MaximumAvailableConnections(Self.connectionCap(settings.limits.maxConnections))),
            onServerRunning: { channel in
                await onRunning(channel.localAddress?.port ?? 0)
                notifier.notify("READY=1")
            },
            logger: HubLog.logger(label: "hummingbird"))
        let log: @Sendable (Int, String) -> Void = { priority, message in HubLog.write(priority, message) }
        let listener = HubNotificationListener(conninfo: pool.conninfo, wakeups: wakeups, connections: connections, log: log)
        let merger = self.merger, store = self.store, pool = self.pool
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await listener.run() }
            group.addTask { await merger.run(store: store, pool: pool, log: log) }
            let services = ServiceGroup(configuration: .init(
                services: [.init(service: SystemdWatchdog(notifier: notifier)), .init(service: app),
                           .init(service: StopAnnouncer(notifier: notifier) { HubLog.write(6, "stopping: finishing the requests in flight") })],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: HubLog.logger(label: "govex-hub")))
            try await services.run()
            HubLog.write(6, "stopped")
            group.cancelAll()
        }
    }
}
