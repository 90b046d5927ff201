import Foundation
import GovexLog
import Logging
import GovexAPI
import GovexIdentity
import GovexPostgres
import GovexWire
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Metrics
import NIOCore
import NIOSSL
import NIOTLS
import SwiftASN1
import X509

/// Records every refusal once: an audit entry (who, which route, why, from where), one log
/// line, and a metric by reason. Node-supplied text is escaped before it reaches the log.
///
/// A refusal of a client that showed no identity (no or a foreign certificate, a failed or
/// abandoned handshake) is audited and logged once per address, reason and minute: a flood
/// of them must not flood the audit chain. The metric counts every one.
public struct RefusalRecorder: Sendable {
    let pool: ConnectionPool
    let anonymousNotes = AttemptLimiter(perMinute: 1)

    /// The actor of refusals to a client that showed no valid identity.
    public static let anonymous = "anonymous"

    func record(node: String?, route: String, status: Int, code: String, remote: String?) async {
        Counter(label: "govex_hub_refusals_total", dimensions: [("reason", code)]).increment()
        if node == nil, await !anonymousNotes.allow((remote ?? "?") + " " + code) { return }
        let actor = node ?? Self.anonymous
        HubLog.write(4, "refused \(route) for node \(actor) from \(remote ?? "?"): \(status) \(code)")
        do {
            try await pool.withConnection { sql in
                _ = try await HubStore.audit("request_refused", subject: actor, actor: actor,
                                             details: [("route", BatchJSON.string(route)), ("status", String(status)),
                                                       ("reason", BatchJSON.string(code)), ("remote", remote.map(BatchJSON.string) ?? "null")],
                                             on: sql)
            }
        } catch {
            HubLog.write(3, "cannot record the refusal of \(route) (\(code)) in the audit trail: \(HubLog.describe(error))")
        }
    }
}

/// journald-friendly lines on stderr: `<priority>govex hub: message`, one line each, with
/// control characters (CR, LF, ANSI escapes) of anything a node sent shown as escapes.
public enum HubLog {
    public static let journal = Journal("govex hub")

    public static func write(_ priority: Int, _ message: String) { journal.write(priority, message) }

    public static func escaped(_ text: String) -> String { Journal.escaped(text) }

    /// The web framework's and the service group's lines, in the hub's form.
    public static func logger(label: String) -> Logger { journal.logger(label: label) }

    /// An error for the log: PostgreSQL's detail (`Failing row contains (…)`) and anything else
    /// that may carry row data stays out; SQLSTATE, constraint and table say what to look at.
    public static func describe(_ error: any Error) -> String {
        if let postgres = error as? PostgresError { return postgres.loggable }
        return String(describing: type(of: error))
    }
}

/// The one gate in front of every route: authenticates the client certificate (hub CA
/// directly, current serial, node enrolled and not revoked, id not reserved), hands the
/// route a known node, and records every refusal — the gate's own, a route's 4xx/5xx, a
/// thrown error — exactly once.
struct HubGateMiddleware: RouterMiddleware {
    typealias Context = HubRequestContext

    /// The response header a route's error carries its code in, for the gate to record; stripped before sending.
    static let refusalHeader = HTTPField.Name("x-govex-refusal")!

    let pool: ConnectionPool
    let ca: CertificateAuthority
    let connections: NodeConnections
    let recorder: RefusalRecorder

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let route = request.uri.path
        let remote = context.channel.remoteAddress?.ipAddress
        if !HubRoute.unauthenticated.contains(route) {
            switch await admit(context) {
            case .success(let node):
                context.node = node
                connections.note(context.channel, node: node)
            case .failure(let refusal):
                await recorder.record(node: nil, route: route, status: refusal.status, code: refusal.code.rawValue, remote: remote)
                return HubServer.error(refusal.code, refusal.message, recorded: true)
            }
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            await recorder.record(node: context.node, route: route, status: error.status.code, code: "http_\(error.status.code)", remote: remote)
            throw error
        } catch {
            HubLog.write(3, "\(request.method) \(route) for node \(context.node ?? RefusalRecorder.anonymous) failed: \(HubLog.describe(error))")
            await recorder.record(node: context.node, route: route, status: 500, code: "internal_error", remote: remote)
            return HubServer.error(.internalError, "the hub could not answer; the failure is in its log", recorded: true)
        }
        if let code = response.headers[Self.refusalHeader] {
            response.headers[Self.refusalHeader] = nil
            await recorder.record(node: context.node, route: route, status: response.status.code, code: code, remote: remote)
        }
        return response
    }

    /// Certificate → node, checked against the hub's CA and database.
    func admit(_ context: Context) async -> Result<String, Refusal> {
        let presented: PresentedCertificate?
        do {
            presented = try await context.channel.nioSSL_peerCertificate().get().map {
                PresentedCertificate(try Certificate(derEncoded: try $0.toDERBytes()), ca: ca)
            }
        } catch {
            return .failure(Refusal(.certificateUnreadable, "the client certificate cannot be read"))
        }
        var standing: NodeStanding? = nil
        if let presented, presented.issuedDirectlyByHubCA, let node = presented.node {
            do {
                standing = try await pool.withConnection { sql in try await NodeCertificates.standing(node: node, serial: presented.serial, on: sql) }
            } catch {
                HubLog.write(3, "cannot check node \(node)'s certificate: \(HubLog.describe(error))")
                return .failure(Refusal(.unavailable, "the hub cannot check certificates now; try again"))
            }
        }
        return NodeGateRules.admit(presented, standing: standing)
    }
}

/// Records TLS handshakes that fail (unknown CA, expired or malformed certificates, wrong
/// protocol) and closes connections that do not finish their handshake in time, so idle
/// sockets cannot pile up (slowloris).
final class HandshakeGuard: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny

    let timeout: TimeAmount
    let recorder: RefusalRecorder
    private var deadline: Scheduled<Void>? = nil
    private var completed = false

    init(timeout: TimeAmount, recorder: RefusalRecorder) {
        self.timeout = timeout
        self.recorder = recorder
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        schedule(context)
    }

    func channelActive(context: ChannelHandlerContext) {
        schedule(context)
        context.fireChannelActive()
    }

    private func schedule(_ context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        let channel = context.channel, recorder = self.recorder
        deadline = context.eventLoop.scheduleTask(in: timeout) { [weak self] in
            guard let self, !self.completed else { return }
            let remote = channel.remoteAddress?.ipAddress
            channel.close(promise: nil)
            Task { await recorder.record(node: nil, route: "(tls handshake)", status: 0, code: "tls_handshake_timeout", remote: remote) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            completed = true
            deadline?.cancel()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !completed, error is NIOSSLError || error is BoringSSLError {
            completed = true
            deadline?.cancel()
            let remote = context.channel.remoteAddress?.ipAddress, recorder = self.recorder
            let code = "tls_handshake_failed"
            Task { await recorder.record(node: nil, route: "(tls handshake)", status: 0, code: code, remote: remote) }
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }
}

/// At most `perMinute` attempts per key (a client address) in any minute: enrollment tokens
/// cannot be guessed at network speed. In memory, per hub process.
actor AttemptLimiter {
    let perMinute: Int
    private var attempts: [String: [ContinuousClock.Instant]] = [:]

    init(perMinute: Int) {
        self.perMinute = perMinute
    }

    func allow(_ key: String, now: ContinuousClock.Instant = .now) -> Bool {
        if attempts.count > 10_000 { attempts = attempts.filter { $0.value.contains { now - $0 < .seconds(60) } } }
        var recent = attempts[key, default: []].filter { now - $0 < .seconds(60) }
        defer { attempts[key] = recent }
        guard recent.count < perMinute else { return false }
        recent.append(now)
        return true
    }
}

/// Batches being received: at most `total` at once and `perNode` from one node, taken before
/// a body is read, so the hub's memory for uploads stays below total × max_batch_bytes.
actor UploadSlots {
    let total: Int
    let perNode: Int
    private var open = 0
    private var byNode: [String: Int] = [:]

    init(total: Int, perNode: Int) {
        self.total = total
        self.perNode = perNode
    }

    func acquire(_ node: String) -> Bool {
        guard open < total, byNode[node, default: 0] < perNode else { return false }
        open += 1
        byNode[node, default: 0] += 1
        return true
    }

    func release(_ node: String) {
        open -= 1
        byNode[node, default: 1] -= 1
        if byNode[node] == 0 { byNode[node] = nil }
    }
}
