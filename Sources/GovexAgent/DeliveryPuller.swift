import Foundation
import Metrics
import GovexAPI
import GovexApply
import GovexCapture
import GovexWire
import Synchronization

/// A subscription as the hub lists it to its subscriber (`GET /v1/subscriptions`).
/// Pulls one active subscription's deliveries from the hub and applies them: long-polls
/// after the local cursor, verifies each delivery (the hub's signature, the provider's
/// signature over the origin header, and over the body when it is the provider's), applies
/// it in one local transaction with the cursor, then acknowledges to the hub. A failure
/// retries with backoff; nothing is skipped, so one delivery never overtakes another.
final class DeliveryPuller: Sendable {
    let client: HubClient
    let hubKeys: HubKeyring
    let conninfo: String
    let subscription: SubscriptionView
    let target: AgentConfiguration.Subscribe
    let retry: AgentConfiguration.ApplyRetry
    /// The target is also a table this agent publishes: other rows in it are the
    /// department's own, so a truncate (a backfill's first record, or the provider's) is not
    /// applied to it.
    let sharedTable: Bool
    let log: @Sendable (Int, String) -> Void
    let board: StatusBoard?
    let providerKeys = Mutex<[String: [VerifyingKey]]>([:])
    static let waitSeconds = 20

    init(client: HubClient, hubKeys: HubKeyring, conninfo: String, subscription: SubscriptionView,
         target: AgentConfiguration.Subscribe, retry: AgentConfiguration.ApplyRetry, sharedTable: Bool = false,
         board: StatusBoard? = nil, log: @escaping @Sendable (Int, String) -> Void) {
        self.board = board
        self.client = client
        self.hubKeys = hubKeys
        self.conninfo = conninfo
        self.subscription = subscription
        self.target = target
        self.retry = retry
        self.sharedTable = sharedTable
        self.log = log
    }

    func run() async {
        var failures = 0
        while !stopRequested {
            do {
                try await DeliveryApplier.with(conninfo: conninfo, subscription: subscription.id, resource: subscription.resource,
                                               schema: target.schema, table: target.table) { applier in
                    var cursor = try await applier.cursor()
                    board?.subscription(subscription.resource, id: subscription.id, state: "active", appliedThrough: cursor)
                    log(6, "subscription \(subscription.id) (\(subscription.resource) → \(target.qualifiedTable)): applied through delivery \(cursor)")
                    if let (letter, _) = try await applier.waitingDeadLetter() {
                        raiseAlarm(letter, cause: "refused by the database before this start")
                        try await awaitDecision(applier: applier)
                        cursor = try await applier.cursor()
                    }
                    while !stopRequested {
                        do {
                            let pulled = try await pullOnce(after: cursor, applier: applier)
                            if pulled.cursor > cursor {
                                let cursorBefore = cursor
                                cursor = pulled.cursor
                                let lag = pulled.lastSealedAt.map { Self.lag(sealedAt: $0) }
                                board?.subscription(subscription.resource, state: "active", appliedThrough: cursor, appliedAt: Int64(time(nil)), applyLag: lag)
                                let dimensions = [("subscription", String(subscription.id))]
                                Counter(label: "govex_apply_deliveries_total", dimensions: dimensions).increment(by: Int(pulled.cursor - cursorBefore))
                                Gauge(label: "govex_apply_last_success_timestamp_seconds", dimensions: dimensions).record(time(nil))
                                if let lag { Gauge(label: "govex_apply_lag_seconds", dimensions: dimensions).record(lag) }
                                await acknowledge(cursor)
                            }
                        } catch let error as HubUnreachable {
                            if stopRequested { return }  // a stop interrupted the long-poll
                            // The database connection stays: only the hub is away.
                            failures += 1
                            if failures == 1 { log(3, "subscription \(subscription.id): \(error.description); retrying with backoff") }
                            await idle(for: BatchPusher.backoff(failures: failures))
                            continue
                        }
                        if failures > 0 { log(6, "subscription \(subscription.id): pulling again") }
                        failures = 0
                    }
                }
            } catch {
                guard !Task.isCancelled else { return }
                failures += 1
                log(3, "subscription \(subscription.id) (\(subscription.resource) → \(target.qualifiedTable)): \(ApplyError.loggable(error)); retrying with backoff")
                await idle(for: BatchPusher.backoff(failures: failures))
            }
        }
    }

    /// What one long-poll applied: the cursor after it, and when the provider sealed the
    /// last batch applied (for the apply lag).
    struct Pulled {
        var cursor: UInt64
        var lastSealedAt: Int64?
    }

    /// Seconds from a provider sealing a batch to its rows being applied here (clocks of
    /// different machines: never below 0).
    static func lag(sealedAt: Int64, now: Double = Date().timeIntervalSince1970) -> Double {
        max(0, now - Double(sealedAt) / 1e6)
    }

    /// One long-poll; applies what it brought.
    func pullOnce(after cursor: UInt64, applier: DeliveryApplier) async throws -> Pulled {
        let response: HubClient.Response
        do {
            response = try await client.get(HubRoute.deliveries(subscription: subscription.id, after: cursor, wait: Self.waitSeconds, limit: 64),
                                            limit: 64 << 20)
        } catch {
            throw HubUnreachable(description: "the hub is unreachable (\(error))")
        }
        guard response.status == 200 else { throw HubUnreachable(description: "the hub answered HTTP \(response.status): \(response.text.prefix(500))") }
        var pulled = Pulled(cursor: cursor)
        let files = try Delivery.unframe(response.body)
        // The next group is verified and planned while this one is applied: the first work
        // is CPU, the second mostly the database's.
        let groups = Self.groups(of: files)
        var next = groups.first.map { group in Task { try await self.ready(group, applier: applier) } }
        defer { next?.cancel() }
        for (index, group) in groups.enumerated() {
            guard let ready = try await next?.value else { break }
            next = index + 1 < groups.count ? Task { [group = groups[index + 1]] in try await self.ready(group, applier: applier) } : nil
            if ready.verified.count > 1, case .success(let prepared) = ready.prepared {
                do {
                    _ = try await applier.apply(prepared)
                    let records = ready.verified.reduce(0) { $0 + $1.records.count }
                    log(7, "subscription \(subscription.id): applied deliveries \(prepared.firstSequence)–\(prepared.sequence) together (\(records) records)")
                    pulled.cursor = max(pulled.cursor, prepared.sequence)
                    pulled.lastSealedAt = ready.verified.last?.sealedAt
                    continue
                } catch let error as ApplyError where error.permanent {
                    // One of them fails: one by one, that one is retried and dead-lettered alone.
                    log(5, "subscription \(subscription.id): deliveries \(prepared.firstSequence)–\(prepared.sequence) together failed (\(error.loggable)); applying them one by one")
                }
            }
            for (file, verified) in zip(group, ready.verified) {
                let prepared = ready.verified.count == 1 ? ready.prepared : plan([verified], applier: applier)
                pulled.cursor = max(pulled.cursor, try await applyOne(file, verified, prepared, applier: applier))
                pulled.lastSealedAt = verified.sealedAt
            }
        }
        return pulled
    }

    /// Consecutive deliveries of providers' batches, up to `DeliveryApplier.groupRecords` records together;
    /// the hub's own (backfill pages, golden records) each alone.
    static func groups(of files: [[UInt8]]) -> [[[UInt8]]] {
        let headers = files.map { try? BatchFile(bytes: $0).header }
        return DeliveryApplier.groups(recordCounts: headers.map { Int($0?.recordCount ?? 0) }, joinable: { headers[$0]?.provenance != nil })
            .map { Array(files[$0]) }
    }

    /// Applies one delivery (retried, then dead-lettered if it keeps failing); returns its sequence.
    func applyOne(_ file: [UInt8], _ verified: Delivery.Verified, _ prepared: Result<DeliveryApplier.Prepared, ApplyError>,
                  applier: DeliveryApplier) async throws -> UInt64 {
        switch try await applyPatiently(file, verified, prepared, applier: applier) {
        case .applied where verified.originNode == Delivery.hubNodeID && verified.records.first?.operation != .truncate
                && verified.records.first?.operation != .insert:
            log(7, "subscription \(subscription.id): applied delivery \(verified.sequence) (\(verified.records.count) golden records from the hub)")
        case .applied where verified.originNode == Delivery.hubNodeID:
            let rows = verified.records.filter { $0.operation == .insert }.count
            log(6, "subscription \(subscription.id): backfill from the hub's copy: delivery \(verified.sequence), \(rows) rows applied"
                + (verified.records.first?.operation == .truncate ? " (the table was emptied first)" : ""))
        case .applied:
            log(7, "subscription \(subscription.id): applied delivery \(verified.sequence) (\(verified.records.count) records from \(verified.originNode) batch \(verified.originSequence))")
        case .alreadyApplied:
            break
        }
        return verified.sequence
    }

    /// A group of deliveries checked, and planned as one.
    struct Ready: Sendable {
        var verified: [Delivery.Verified]
        var prepared: Result<DeliveryApplier.Prepared, ApplyError>
    }

    func ready(_ group: [[UInt8]], applier: DeliveryApplier) async throws -> Ready {
        var verified: [Delivery.Verified] = []
        for file in group { verified.append(try await verify(file)) }
        return Ready(verified: verified, prepared: plan(verified, applier: applier))
    }

    /// The plan of consecutive deliveries (one or more) applied as one; a plan that fails is
    /// kept, to fail (and be retried, then dead-lettered) where applying it would.
    func plan(_ deliveries: [Delivery.Verified], applier: DeliveryApplier) -> Result<DeliveryApplier.Prepared, ApplyError> {
        let first = deliveries[0], last = deliveries[deliveries.count - 1]
        let records = deliveries.count == 1 ? first.records : deliveries.flatMap(\.records)
        return Result { () throws(ApplyError) in
            try applier.prepare(applicable(records), sequence: last.sequence, origin: last.origin, firstSequence: first.sequence)
        }
    }

    /// What of a delivery is applied: all of it, except truncates into a table the agent
    /// also publishes (they would delete the department's own rows).
    func applicable(_ records: [ChangeRecord]) -> [ChangeRecord] {
        guard sharedTable, records.contains(where: { $0.operation == .truncate }) else { return records }
        log(5, "subscription \(subscription.id): \(target.qualifiedTable) is also published by this agent: a truncate is not applied to it "
            + "(rows the provider removed before a backfill stay until it changes them)")
        return records.filter { $0.operation != .truncate }
    }

    /// Checks a delivery's signatures: the hub's (by a key the trusted hub keys endorse),
    /// and the provider's over its origin header and, when passed on unchanged, its body.
    func verify(_ file: [UInt8]) async throws -> Delivery.Verified {
        try await loadProviderKeys(for: file)
        let signer = try BatchFile(bytes: file).header.keyID
        guard let hubKey = await hubKeys.resolve(signer, client: client) else {
            throw DeliveryError("delivery signed by hub key \(Hex.encode(signer)), which no trusted hub key endorses")
        }
        return try Delivery.verify(file, hubKey: hubKey, subscriptionID: subscription.id) { node, keyID in
            providerKeys.withLock { $0[node]?.first { $0.keyID == keyID } }
        }
    }

    /// The provider's registered keys, fetched from the hub the first time a key id is seen.
    func loadProviderKeys(for file: [UInt8]) async throws {
        guard let provenance = try BatchFile(bytes: file).header.provenance else { return }
        let known = providerKeys.withLock { $0[provenance.originNode]?.contains { $0.keyID == provenance.originKeyID } ?? false }
        guard !known else { return }
        let response = try await client.get(HubRoute.nodeKeys(provenance.originNode))
        guard response.status == 200, let keys = try? JSONDecoder().decode([NodeKeyListing].self, from: Data(response.body)) else {
            throw DeliveryError("cannot fetch \(provenance.originNode)'s keys from the hub: HTTP \(response.status)")
        }
        let parsed = keys.compactMap { try? VerifyingKey(pem: $0.publicKey) }
        providerKeys.withLock { $0[provenance.originNode] = parsed }
    }

    /// Tells the hub how far this subscriber got (for its lag and retention); the local
    /// cursor is the truth, so a lost acknowledgement only delays the hub's view.
    func acknowledge(_ through: UInt64) async {
        guard let body = try? JSONEncoder().encode(AckRequest(subscription: subscription.id, through: String(through))) else { return }
        _ = try? await client.post(HubRoute.deliveriesAck, body: Array(body), contentType: "application/json")
    }
}

extension Delivery.Verified {
    /// The provider's batch this delivery re-issues, as the cursor records it.
    var origin: DeliveryOrigin { DeliveryOrigin(node: originNode, epoch: originEpoch, sequence: originSequence) }
}

struct HubUnreachable: Error, CustomStringConvertible {
    let description: String
}

/// Runs a puller for each `[[subscribe]]` whose subscription is active at the hub, and
/// looks again every `recheck` for subscriptions that became active since.
struct SubscriptionFollower: Sendable {
    let client: HubClient
    let hubKeys: HubKeyring
    let configuration: AgentConfiguration
    let recheck: Duration
    var board: StatusBoard? = nil
    let log: @Sendable (Int, String) -> Void

    func run() async {
        await withTaskGroup(of: Void.self) { group in
            var started = Set<Int64>()
            var reported = Set<String>()
            while !stopRequested {
                if let listings = try? await fetch() {
                    for entry in configuration.subscribe {
                        let matching = listings.filter { $0.resource == entry.resource && $0.subscriber == configuration.nodeID }
                        if let active = matching.first(where: { $0.status == .active }) {
                            guard started.insert(active.id).inserted else { continue }
                            let puller = DeliveryPuller(client: client, hubKeys: hubKeys, conninfo: configuration.conninfo,
                                                        subscription: active, target: entry,
                                                        retry: configuration.applyRetry,
                                                        sharedTable: configuration.publish.contains {
                                                            $0.mapping.schema == entry.schema && $0.mapping.table == entry.table
                                                        }, board: board, log: log)
                            group.addTask { await puller.run() }
                        } else {
                            board?.subscription(entry.resource, id: matching.last?.id, state: matching.last.map { "\($0.status)" } ?? "not requested")
                            let state = matching.last.map { "is \($0.status)" } ?? "has not been requested (run govex subscribe --resource \(entry.resource))"
                            if reported.insert(entry.resource + state).inserted {
                                log(4, "[[subscribe]] \(entry.resource): the subscription \(state); nothing is applied until it is active")
                            }
                        }
                    }
                }
                await idle(for: recheck)
            }
            group.cancelAll()
        }
    }

    func fetch() async throws -> [SubscriptionView] {
        let response = try await client.get(HubRoute.subscriptions)
        guard response.status == 200 else { throw DeliveryError("HTTP \(response.status): \(response.text.prefix(300))") }
        return try JSONDecoder().decode([SubscriptionView].self, from: Data(response.body))
    }
}
