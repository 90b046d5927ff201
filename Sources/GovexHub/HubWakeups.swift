import Foundation
import GovexPostgres
import NIOCore
import Synchronization

/// Requests waiting for something keyed (a subscription's stream to grow, a node's ledger to
/// advance). Each key has a generation that every wake advances: a request reads the
/// generation, then queries, then waits for it to move, so a change between its query and its
/// wait still wakes it.
actor Wakeups<Key: Hashable & Sendable> {
    private var generations: [Key: UInt64] = [:]
    private var waiters: [Key: [UUID: CheckedContinuation<Void, Never>]] = [:]

    func generation(of key: Key) -> UInt64 { generations[key, default: 0] }

    /// Returns when the generation moves past `seen`, or after `timeout`.
    func wait(for key: Key, after seen: UInt64, timeout: Duration) async {
        guard generations[key, default: 0] == seen else { return }
        let token = UUID()
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.resume(key, token)
        }
        await withCheckedContinuation { continuation in
            waiters[key, default: [:]][token] = continuation
        }
        timer.cancel()
    }

    private func resume(_ key: Key, _ token: UUID) {
        waiters[key]?.removeValue(forKey: token)?.resume()
    }

    func wake(_ key: Key) {
        generations[key, default: 0] &+= 1
        for continuation in (waiters.removeValue(forKey: key) ?? [:]).values { continuation.resume() }
    }

    /// After the listening connection was lost, notifications may have been missed.
    func wakeAll() {
        for key in Array(waiters.keys) { wake(key) }
    }
}

/// Long-polls waiting for a subscription's stream to grow (woken by NOTIFY).
typealias DeliveryWakeups = Wakeups<Int64>

/// The open client connections by node, so that a revocation (made by `govex hub node
/// revoke`, possibly against another replica) closes the ones already established.
final class NodeConnections: Sendable {
    private let channels = Mutex<[ObjectIdentifier: (node: String, channel: any Channel)]>([:])

    func note(_ channel: any Channel, node: String) {
        let id = ObjectIdentifier(channel)
        let added = channels.withLock { open -> Bool in
            guard open[id] == nil else { return false }
            open[id] = (node, channel)
            return true
        }
        if added {
            channel.closeFuture.whenComplete { [weak self] _ in _ = self?.channels.withLock { $0.removeValue(forKey: id) } }
        }
    }

    /// Closes every open connection of `node`; returns how many.
    @discardableResult
    func close(node: String) -> Int {
        let doomed = channels.withLock { open in open.values.filter { $0.node == node }.map(\.channel) }
        for channel in doomed { channel.close(promise: nil) }
        return doomed.count
    }
}

extension HubStore {
    public static let revocationChannel = "govex_revocations"
}

/// One connection per hub process LISTENs for routed deliveries and revocations made
/// anywhere (another replica, the command line), and reconnects when it is lost.
struct HubNotificationListener: Sendable {
    let conninfo: String
    let wakeups: DeliveryWakeups
    let connections: NodeConnections
    let log: @Sendable (Int, String) -> Void

    func run() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await PostgresConnection.with(conninfo, name: "govex-hub-listen") { sql in
                    try await sql.listen(HubStore.deliveryChannel)
                    try await sql.listen(HubStore.revocationChannel)
                    await wakeups.wakeAll()
                    failures = 0
                    while !Task.isCancelled {
                        guard let notification = try await sql.nextNotification(timeout: .milliseconds(500)) else { continue }
                        if notification.channel == HubStore.deliveryChannel, let id = Int64(notification.payload) {
                            await wakeups.wake(id)
                        } else if notification.channel == HubStore.revocationChannel {
                            let closed = connections.close(node: notification.payload)
                            log(5, "node \(notification.payload) revoked: closed its \(closed) open connection(s)")
                        }
                    }
                }
            } catch {
                failures += 1
                if failures == 1 || failures % 60 == 0 { log(3, "listening for deliveries and revocations failed (retrying): \(error)") }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
