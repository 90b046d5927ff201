import Foundation
import GovexPolicy
import GovexPostgres
import GovexWire
import Synchronization

/// Accepted batches that feed a subject wait in `govex.golden_queue` (queued in their ingest
/// transaction, so none is lost or merged twice) until the merger merges them. The merger
/// takes everything waiting, up to a record budget, and merges it as one change: each golden
/// record is read and written once per group instead of once per department's batch, and a
/// push is answered without waiting for the merge. When ingests come faster than merges,
/// groups grow, and each write carries more.
public enum GoldenQueue {
    /// Records a group may hold (the merge keeps them and the touched golden records in memory).
    public static let defaultGroupRecords = 60_000

    /// Queues an accepted batch (its rows for the hub's copy, and for the golden records if
    /// its resources feed a subject); returns its place in the queue.
    static func enqueue(_ header: BatchHeader, node: String, digest: [UInt8], on sql: PostgresConnection) async throws -> Int64 {
        try await enqueue(node: node, epoch: header.nodeEpoch, sequence: header.sequence, digest: digest, resources: header.resources,
                          recordCount: Int(header.recordCount), on: sql)
    }

    /// Queues the batch stored as (node, epoch, sequence), whose file has `digest`.
    /// `copy`: the merger also writes its rows into the hub's copy.
    public static func enqueue(node: String, epoch: UInt64, sequence: UInt64, digest: [UInt8], resources: [String], recordCount: Int,
                               copy: Bool = true, on sql: PostgresConnection) async throws -> Int64 {
        let feeds = try await Catalog.feedsSubject(resources, on: sql)
        return try await sql.query("""
            INSERT INTO govex.golden_queue (node_id, epoch, sequence, digest, resources, record_count, feeds_subject, copy_pending)
            VALUES ($1, $2, $3, $4::bytea, $5::text[], $6, $7, $8)
            RETURNING id
            """, [node, String(epoch), String(sequence), "\\x" + Hex.encode(digest), HubStore.textArray(resources), String(recordCount),
                  feeds ? "t" : "f", copy ? "t" : "f"])
            .rows.first?[0].flatMap { Int64($0) } ?? 0
    }

    /// What one `drain` merged.
    public struct Drained: Sendable, Equatable {
        public var batches = 0
        public var records = 0
        /// False when another hub replica was merging (its merger will take what waits).
        public var merged = true
        /// Queued batches no longer stored (their partition dropped before they were merged).
        public var missing: [String] = []
    }

    /// Merges what waits, oldest first, in groups of at most `groupRecords` records (a larger
    /// batch alone), each group in its own transaction; returns what it merged.
    @discardableResult
    public static func drain(store: HubStore, groupRecords: Int = defaultGroupRecords, on sql: PostgresConnection) async throws -> Drained {
        var total = Drained()
        while true {
            let group = try await drainGroup(store: store, groupRecords: groupRecords, on: sql)
            guard group.merged else { return Drained(batches: total.batches, records: total.records, merged: false, missing: total.missing) }
            guard group.batches > 0 else { return total }
            total.batches += group.batches
            total.records += group.records
            total.missing += group.missing
        }
    }

    /// One group: the oldest waiting batches within the record budget, merged and dequeued in
    /// one transaction. If that fails (a subject's table the catalog broke, say), the hub's
    /// copy is not held up with it: the group's rows are written into the copy alone, the
    /// batches that feed a subject stay queued for their golden merge, and the error is thrown.
    public static func drainGroup(store: HubStore, groupRecords: Int, on sql: PostgresConnection) async throws -> Drained {
        do {
            return try await mergeGroup(store: store, groupRecords: groupRecords, golden: true, on: sql)
        } catch {
            let copied = try? await mergeGroup(store: store, groupRecords: groupRecords, golden: false, on: sql)
            throw MergeFailure(reason: "\(error)", copiedAlone: copied?.batches ?? 0)
        }
    }

    /// Why a group could not be merged, and how many of its batches reached the hub's copy anyway.
    public struct MergeFailure: Error, CustomStringConvertible {
        public let reason: String
        public let copiedAlone: Int

        public var description: String {
            copiedAlone > 0 ? "\(reason) (\(copiedAlone) batch(es) written into the hub's copy meanwhile)" : reason
        }
    }

    /// `golden`: the hub's copy and the golden records, dequeuing each batch; otherwise the
    /// copy alone, of the batches still waiting for it, dequeuing those that feed no subject.
    static func mergeGroup(store: HubStore, groupRecords: Int, golden merging: Bool, on sql: PostgresConnection) async throws -> Drained {
        try await sql.transaction {
            // One merger at a time across replicas; the others leave the queue to it.
            guard try await sql.query("SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('govex.golden_merger'))").rows.first?[0] == "t" else {
                return Drained(merged: false)
            }
            let waiting = try await sql.query("""
                SELECT id, node_id, epoch::text, sequence::text, resources::text, record_count, digest, feeds_subject, copy_pending
                FROM govex.golden_queue \(merging ? "" : "WHERE copy_pending") ORDER BY id LIMIT 1000
                """).rows
            var ids: [Int64] = [], feeding: Set<Int64> = [], golden: [GoldenMerge.Batch] = [], resources = Set<String>(), records = 0
            var missing: [String] = []
            for row in waiting {
                let count = Int(row[5] ?? "") ?? 0
                if !ids.isEmpty, records + count > groupRecords { break }
                guard let id = Int64(row[0] ?? ""), let node = row[1], let epoch = row[2], let sequence = row[3] else { continue }
                ids.append(id)
                records += count
                if row[7] == "t" { feeding.insert(id) }
                guard let batch = try await batch(digest: HubStore.bytea(row[6]), node: node, epoch: epoch, sequence: sequence, store: store, on: sql) else {
                    missing.append("\(node)/\(epoch)/\(sequence)")
                    continue
                }
                // In queue order, batch by batch: each completes its partial rows from the copy as the batches before it left it.
                if row[8] == "t" {
                    try await HubCopy.apply(ResourceStateChanges.collapse(batch.records), node: node, epoch: epoch, sequence: sequence, on: sql)
                }
                if merging, row[7] == "t" {
                    golden.append(batch)
                    resources.formUnion(GoldenTable.arrayElements(row[4] ?? "{}"))
                }
            }
            guard !ids.isEmpty else { return Drained() }
            if !golden.isEmpty { try await HubStore.mergeSubjects(golden, resources: resources.sorted(), hubKey: store.hubKey, on: sql) }
            let done = merging ? ids : ids.filter { !feeding.contains($0) }
            try await sql.query("DELETE FROM govex.golden_queue WHERE id = ANY($1)", binding: [.int8Array(done)])
            if !merging {
                try await sql.query("UPDATE govex.golden_queue SET copy_pending = false WHERE id = ANY($1)", binding: [.int8Array(Array(feeding))])
            }
            store.pendingMerges.forget(through: ids.last!)
            return Drained(batches: ids.count, records: records, missing: missing)
        }
    }

    /// A queued batch's records: kept in memory by this process, or read back from storage.
    static func batch(digest: [UInt8], node: String, epoch: String, sequence: String, store: HubStore, keep: Bool = false,
                      on sql: PostgresConnection) async throws -> GoldenMerge.Batch? {
        if let kept = keep ? store.pendingMerges.peek(digest) : store.pendingMerges.take(digest) { return kept }
        return try await storedBatch(node: node, epoch: epoch, sequence: sequence, on: sql)
    }

    /// The changes to `resource` that wait in the queue for the hub's copy, oldest first.
    /// The caller holds the merger's lock (`lockMerger`), so none is merged meanwhile.
    static func pendingCopies(of resource: String, store: HubStore, on sql: PostgresConnection) async throws -> [ResourceStateChanges] {
        var changes: [ResourceStateChanges] = []
        for row in try await sql.query("""
            SELECT node_id, epoch::text, sequence::text, digest FROM govex.golden_queue WHERE copy_pending AND $1 = ANY(resources) ORDER BY id
            """, [resource]).rows {
            guard let node = row[0], let epoch = row[1], let sequence = row[2],
                  let batch = try await batch(digest: HubStore.bytea(row[3]), node: node, epoch: epoch, sequence: sequence, store: store, keep: true, on: sql)
            else { continue }
            changes.append(ResourceStateChanges.collapse(batch.records.filter { $0.resource == resource }))
        }
        return changes
    }

    /// Waits for a merge under way and holds off the next until the transaction ends.
    static func lockMerger(on sql: PostgresConnection) async throws {
        try await sql.query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('govex.golden_merger'))")
    }

    /// A queued batch's records read back from the stored batch (after a restart, or when
    /// another replica ingested it); nil when the batch is no longer stored.
    static func storedBatch(node: String, epoch: String, sequence: String, on sql: PostgresConnection) async throws -> GoldenMerge.Batch? {
        guard let text = try await sql.query("""
            SELECT bytes FROM govex.batches WHERE node_id = $1 AND epoch = $2 AND sequence = $3
            """, [node, epoch, sequence]).rows.first?[0] else { return nil }
        // Verified when it was accepted; only decoded here.
        return GoldenMerge.Batch(node: node, records: try BatchFile(bytes: HubStore.bytea(text)).records())
    }
}

/// The records of batches this process queued for merging, kept so that the merger need not
/// read and decode them again. Bounded: beyond the budget the merger reads them back. Found
/// by the batch file's digest: the same digest is the same records, whichever database.
public final class PendingMerges: Sendable {
    private struct State {
        var batches: [[UInt8]: (queued: Int64, batch: GoldenMerge.Batch)] = [:]
        var records = 0
    }

    private let state = Mutex(State())
    private let budget: Int

    public init(budget: Int) {
        self.budget = budget
    }

    /// Keeps the records of the batch file with `digest`, queued as `queued`.
    public func keep(_ digest: [UInt8], queued: Int64, _ batch: GoldenMerge.Batch) {
        state.withLock { state in
            guard state.records + batch.records.count <= budget, state.batches[digest] == nil else { return }
            state.batches[digest] = (queued, batch)
            state.records += batch.records.count
        }
    }

    func peek(_ digest: [UInt8]) -> GoldenMerge.Batch? {
        state.withLock { $0.batches[digest]?.batch }
    }

    func take(_ digest: [UInt8]) -> GoldenMerge.Batch? {
        state.withLock { state in
            let kept = state.batches.removeValue(forKey: digest)
            state.records -= kept?.batch.records.count ?? 0
            return kept?.batch
        }
    }

    /// Drops what is kept for queue entries up to `id`: merged, or of ingests that rolled back.
    func forget(through id: Int64) {
        state.withLock { state in
            for (digest, kept) in state.batches where kept.queued <= id {
                state.records -= state.batches.removeValue(forKey: digest)?.batch.records.count ?? 0
            }
        }
    }
}

/// A wake-up that is not lost: `wake` before `wait` makes the next `wait` return at once.
public final class WakeSignal: Sendable {
    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    public init() {}

    public func wake() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns on a wake (one since the last return counts) or after `timeout`.
    public func wait(upTo timeout: Duration) async {
        let timer = Task { [weak self] in
            // A cancelled timer must not wake: that wake-up would end the next wait at once.
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self?.wake()
        }
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                if state.pending {
                    state.pending = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
        timer.cancel()
    }
}

/// Runs the merges in a hub process: woken by this process's ingests, and every second for
/// batches other replicas queued (or left when they stopped). While pushes keep arriving it
/// holds back, so that the CPU goes to accepting and routing them (what departments wait
/// for), and merges once the hub has been quiet for `quiet`, or when what waits reaches
/// `backlogRecords` records or `maxLag` of age (so that under a load that never pauses the
/// copy and the golden records still keep up, in larger groups).
public final class GoldenMerger: Sendable {
    private let signal = WakeSignal()
    private let lastIngest = Mutex(ContinuousClock.now)
    let quiet: Duration
    let backlogRecords: Int
    let maxLag: Duration

    public init(quiet: Duration = .milliseconds(300), backlogRecords: Int = 2_000_000, maxLag: Duration = .seconds(60)) {
        self.quiet = quiet
        self.backlogRecords = backlogRecords
        self.maxLag = maxLag
    }

    /// An ingest queued a batch.
    public func wake() {
        lastIngest.withLock { $0 = .now }
        signal.wake()
    }

    public func run(store: HubStore, pool: ConnectionPool, log: @escaping @Sendable (Int, String) -> Void) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let backlog = try await pool.withConnection(Self.backlog)
                let busyFor = quiet - (ContinuousClock.now - lastIngest.withLock { $0 })
                if busyFor > .zero, !overdue(backlog) {
                    try? await Task.sleep(for: busyFor)
                    continue
                }
                let drained = try await pool.withConnection { sql in
                    try await GoldenQueue.drainGroup(store: store, groupRecords: GoldenQueue.defaultGroupRecords, on: sql)
                }
                HubMetrics.shared.merged(batches: drained.batches)
                if drained.batches > 0 { log(7, "merge: \(drained.batches) batch(es), \(drained.records) record(s) into the hub's copy and golden records") }
                if !drained.missing.isEmpty {
                    log(3, "merge: queued batch(es) \(drained.missing.joined(separator: ", ")) no longer stored (retention dropped them before they were merged): their rows are missing from the hub's copy and the golden records until the departments send them again")
                }
                failures = 0
                // More may wait: the next group, unless pushes resumed meanwhile.
                if drained.merged, drained.batches > 0 { continue }
            } catch {
                failures += 1
                HubMetrics.shared.mergeFailed()
                // The queue keeps the batch: it is merged once what failed is fixed (e.g. the catalog).
                if failures == 1 || failures % 20 == 0 { log(3, "merge failed (the batches wait in govex.golden_queue; retrying): \(error)") }
                try? await Task.sleep(for: .seconds(min(30, failures)))
            }
            await signal.wait(upTo: .seconds(1))
        }
    }

    /// What waits: batches, records, and the oldest one's age in seconds (also exported).
    struct Backlog {
        var batches = 0
        var records = 0
        var oldestAge = 0.0
    }

    static func backlog(_ sql: PostgresConnection) async throws -> Backlog {
        let row = try await sql.query("""
            SELECT count(*)::text, coalesce(sum(record_count), 0)::text, coalesce(extract(epoch FROM now() - min(queued_at)), 0)::text
            FROM govex.golden_queue
            """).rows.first
        let backlog = Backlog(batches: Int(row?[0] ?? "") ?? 0, records: Int(row?[1] ?? "") ?? 0, oldestAge: Double(row?[2] ?? "") ?? 0)
        HubMetrics.shared.queue(batches: backlog.batches, records: backlog.records, oldestAge: backlog.oldestAge)
        return backlog
    }

    /// Whether what waits can no longer wait for a quiet moment.
    func overdue(_ backlog: Backlog) -> Bool {
        backlog.records >= backlogRecords || backlog.oldestAge >= Double(maxLag.components.seconds)
    }
}
