import Foundation
import Metrics
import ServiceLifecycle
import GovexAPI
import GovexCapture
import GovexWire

/// Pushes spooled batches to the hub in sequence order, several in flight, and lets a
/// batch leave the spool only once a receipt for exactly its bytes verifies with the
/// hub's key. While the hub is unreachable the spool simply grows; retries back off
/// exponentially with jitter.
public final class BatchPusher: Sendable {
    let outbox: Outbox
    let client: HubClient
    let hubKeys: HubKeyring
    let nodeID: String
    let inFlight: Int
    let log: @Sendable (Int, String) -> Void
    /// Where the latest receipts are kept: each holds the hub's signed audit head, an anchor
    /// for `govex hub audit verify --anchors`.
    let anchorsDirectory: String?
    static let anchorsKept = 64
    /// Where `govex status` learns how pushing goes.
    let board: StatusBoard?

    public init(outbox: Outbox, client: HubClient, hubKeys: HubKeyring, nodeID: String, inFlight: Int = 4, anchorsDirectory: String? = nil,
                board: StatusBoard? = nil, log: @escaping @Sendable (Int, String) -> Void) {
        self.anchorsDirectory = anchorsDirectory
        self.board = board
        self.outbox = outbox
        self.client = client
        self.hubKeys = hubKeys
        self.nodeID = nodeID
        self.inFlight = max(1, inFlight)
        self.log = log
    }

    /// What to do after one push.
    enum Outcome: Equatable {
        case acknowledged
        case quarantined(String)
        /// Not stored: try again after a pause (network, hub down, a refusal a person must resolve).
        case retry(String)
    }

    /// Runs until its service group winds down (after capture, so what a stop sealed still
    /// gets a chance to leave); returns after the pushes in flight finish. An empty spool is
    /// waited on, not polled: capture rings `outbox.sealed`.
    public func run() async {
        var failures = 0
        var lastAlarm = ""
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let window = Array(outbox.pending.prefix(inFlight))
            if window.isEmpty {
                _ = try? await cancelWhenGracefulShutdown { await self.outbox.sealed.wait() }
                continue
            }
            // Send the window concurrently; act on the answers in sequence order.
            let outcomes = await withTaskGroup(of: (Int, Outcome).self) { group in
                for (index, entry) in window.enumerated() {
                    group.addTask { (index, await self.push(entry.sequence)) }
                }
                var collected = [Outcome](repeating: .retry("not sent"), count: window.count)
                for await (index, outcome) in group { collected[index] = outcome }
                return collected
            }
            var stalled: String? = nil
            for (entry, outcome) in zip(window, outcomes) {
                do {
                    switch outcome {
                    case .acknowledged:
                        try outbox.acknowledge(through: entry.sequence)
                    case .quarantined(let reason):
                        try outbox.quarantine(entry.sequence, reason: reason)
                        log(3, "the hub rejected batch \(entry.sequence): \(reason); moved to quarantine, the stream goes on")
                    case .retry(let reason):
                        stalled = reason
                    }
                } catch {
                    stalled = "cannot update the spool: \(error)"
                }
                if stalled != nil { break }
            }
            if let stalled {
                board?.pushFailed(stalled, at: Int64(time(nil)))
                Counter(label: "govex_push_failures_total").increment()
                failures += 1
                if stalled != lastAlarm {
                    log(3, "pushing batch \(window[0].sequence) to the hub: \(stalled); retrying with backoff, batches stay in the spool")
                    lastAlarm = stalled
                }
                await idle(for: Self.backoff(failures: failures))
            } else {
                board?.pushed(at: Int64(time(nil)))
                Counter(label: "govex_push_batches_total").increment(by: window.count)
                Gauge(label: "govex_push_last_success_timestamp_seconds").record(time(nil))
                if failures > 0 { log(6, "pushing to the hub again") }
                failures = 0
                lastAlarm = ""
            }
        }
    }

    /// 0.5 s doubling to 30 s, each with up to half of it added at random, so that many
    /// agents coming back after a hub outage do not knock in step.
    static func backoff(failures: Int) -> Duration {
        let base = min(30_000, 500 << min(failures - 1, 6))
        return .milliseconds(base + Int.random(in: 0...(base / 2)))
    }

    func push(_ sequence: UInt64) async -> Outcome {
        let bytes: [UInt8]
        do {
            bytes = try outbox.read(sequence)
        } catch {
            return .retry("cannot read batch \(sequence) from the spool: \(error)")
        }
        let response: HubClient.Response
        do {
            let spool = outbox.spoolFigures, behind = outbox.pending.filter { $0.sequence > sequence }
            let report = SpoolReport(batches: behind.count, bytes: behind.reduce(0) { $0 + $1.bytes }, oldestAgeSeconds: spool.oldestAgeSeconds, full: spool.full)
            response = try await client.post(HubRoute.batches, body: bytes, contentType: "application/octet-stream",
                                             headers: [(SpoolReport.header, report.headerValue)])
        } catch {
            return .retry("the hub is unreachable (\(error))")
        }
        // The receipt names the hub key that signed it: after a hub key rotation, a new one.
        let claimed = (try? SignedReceipt(wire: response.body))?.claimedKeyID.flatMap { Hex.decode($0) }
        let hubKey = if let claimed { await hubKeys.resolve(claimed, client: client) } else { nil as VerifyingKey? }
        let outcome = Self.judge(response, bytes: bytes, sequence: sequence, nodeID: nodeID, hubKey: hubKey ?? hubKeys.all[0])
        if case .retry = outcome {} else { keepAnchor(response.body, sequence: sequence) }
        return outcome
    }

    /// Keeps a verified receipt (the latest `anchorsKept`), for its signed audit head.
    func keepAnchor(_ receipt: [UInt8], sequence: UInt64) {
        guard let directory = anchorsDirectory else { return }
        let manager = FileManager.default
        try? manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let digits = String(sequence)
        let name = "receipt-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".json"  // sorts by sequence
        guard manager.createFile(atPath: directory + "/" + name, contents: Data(receipt)) else { return }
        let kept = ((try? manager.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("receipt-") }.sorted()
        for old in kept.dropLast(Self.anchorsKept) { try? manager.removeItem(atPath: directory + "/" + old) }
    }

    /// Pure: a hub response for a pushed batch → what the agent does with the batch.
    static func judge(_ response: HubClient.Response, bytes: [UInt8], sequence: UInt64, nodeID: String, hubKey: VerifyingKey) -> Outcome {
        guard response.status == 200 else {
            return .retry("HTTP \(response.status): \(response.text.prefix(500))")
        }
        let receipt: Receipt
        do {
            receipt = try SignedReceipt(wire: response.body).verified(with: hubKey)
        } catch {
            return .retry("the receipt does not verify: \(error)")
        }
        guard receipt.node == nodeID, receipt.sequence == String(sequence),
              receipt.digest == Hex.encode(DigestAlgorithm.sha256.hash(bytes)) else {
            return .retry("the receipt is for another batch (node \(receipt.node), sequence \(receipt.sequence), digest \(receipt.digest.prefix(16))…)")
        }
        return receipt.status == .accepted ? .acknowledged : .quarantined(receipt.reason ?? "rejected without a reason")
    }
}
