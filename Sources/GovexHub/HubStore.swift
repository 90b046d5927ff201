import Foundation
import GovexAPI
import GovexPolicy
import GovexPostgres
import GovexWire
import Synchronization

/// The hub's state in PostgreSQL. Every decision about a node's batches happens under
/// that node's row lock, so any number of hub replicas may share one database.
public struct HubStore: Sendable {
    public let hubKey: SigningKey
    /// Records of the batches this process queued for the golden merge (see `GoldenQueue`).
    public let pendingMerges: PendingMerges
    /// How many pushed batches this process verified and decoded: only those whose sequence was due.
    public let contentChecks = SharedCounter()

    /// `pendingMergeRecords`: how many queued records to keep in memory for the merger.
    public init(hubKey: SigningKey, pendingMergeRecords: Int = 4 * GoldenQueue.defaultGroupRecords) {
        self.hubKey = hubKey
        pendingMerges = PendingMerges(budget: pendingMergeRecords)
    }

    /// The answer to a pushed batch: an HTTP status and a body (a signed receipt, or a JSON error).
    public struct IngestOutcome: Sendable, Equatable {
        public var status: Int
        public var body: [UInt8]
        public var decision: String
        /// For a sequence gap: how many sequences the batch is ahead of the one expected.
        public var sequencesAhead: UInt64? = nil
        /// Records of an accepted batch.
        public var records = 0
        /// The batch waits in the merge queue (the merger has work): every accepted batch with records.
        public var mergeQueued: Bool { records > 0 }

        static func error(_ status: Int, code: String, message: String, decision: String) -> IngestOutcome {
            IngestOutcome(status: status, body: Array(HubStore.errorJSON(code: code, message: message).utf8), decision: decision)
        }
    }

    /// The contract's error body (`HubErrorBody`).
    static func errorJSON(code: String, message: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(HubErrorBody(error: code, message: message))).map { String(decoding: $0, as: UTF8.self) } ?? #"{"error":"internal_error"}"#
    }

    /// A count shared by the copies of a value type.
    public final class SharedCounter: Sendable {
        private let count = Atomic<Int>(0)
        public init() {}
        public func increment() { count.add(1, ordering: .relaxed) }
        public var value: Int { count.load(ordering: .relaxed) }
    }

    // MARK: Nodes

    public static func addNode(_ nodeID: String, on sql: PostgresConnection) async throws {
        try await sql.query("INSERT INTO govex.nodes (node_id) VALUES ($1) ON CONFLICT (node_id) DO NOTHING", [nodeID])
    }

    /// Registers an accepted signing key for the node (its possession already proven).
    public static func registerKey(_ key: VerifyingKey, for nodeID: String, on sql: PostgresConnection) async throws {
        try await NodeKeys.insertAccepted(key, for: nodeID, on: sql)
    }

    static func textArray(_ items: [String]) -> String {
        var literal: [UInt8] = [UInt8(ascii: "{")]
        literal.reserveCapacity(items.reduce(2) { $0 + $1.utf8.count + 3 })
        for (index, item) in items.enumerated() {
            if index > 0 { literal.append(UInt8(ascii: ",")) }
            GoldenTable.appendArrayElement(item, to: &literal)
        }
        literal.append(UInt8(ascii: "}"))
        return String(decoding: literal, as: UTF8.self)
    }

    /// Revokes a node (idempotent); false when there is no such node.
    /// Every hub replica closes the node's open connections when the NOTIFY arrives.
    public static func revoke(_ nodeID: String, on sql: PostgresConnection) async throws -> Bool {
        try await sql.transaction {
            let found = try await sql.query("UPDATE govex.nodes SET revoked_at = coalesce(revoked_at, now()) WHERE node_id = $1",
                                            [nodeID]).affectedRows == 1
            if found {
                try await sql.query("SELECT pg_catalog.pg_notify($1, $2)", [revocationChannel, nodeID])
                try await audit("node_revoked", subject: nodeID, actor: SubscriptionRules.hubAdministrator, on: sql)
            }
            return found
        }
    }

    /// Accepts a node's pending epoch (see `IngestRules.acceptEpoch`); returns it, or nil when none waits.
    public static func acceptEpoch(of nodeID: String, on sql: PostgresConnection) async throws -> UInt64? {
        try await sql.transaction {
            guard let ledger = try await lockLedger(of: nodeID, on: sql), let next = IngestRules.acceptEpoch(ledger) else { return nil }
            try await sql.query("UPDATE govex.nodes SET epoch = $2, next_sequence = $3, pending_epoch = NULL WHERE node_id = $1",
                                [nodeID, String(next.epoch), String(next.nextSequence)])
            return next.epoch
        }
    }

    /// The node's ledger row, locked until the transaction ends; nil for an unknown node.
    static func lockLedger(of nodeID: String, on sql: PostgresConnection) async throws -> NodeLedger? {
        try await sql.query("""
            SELECT revoked_at IS NOT NULL, epoch::text, next_sequence::text, pending_epoch::text FROM govex.nodes WHERE node_id = $1 FOR UPDATE
            """, [nodeID]).rows.first.map { row in
            NodeLedger(nodeID: nodeID, revoked: row[0] == "t", epoch: UInt64(row[1] ?? "0") ?? 0,
                       nextSequence: UInt64(row[2] ?? "1") ?? 1, pendingEpoch: row[3].flatMap { UInt64($0) })
        }
    }

    // MARK: Ingest

    /// Stores a pushed batch (or refuses it) in one transaction: the node's ledger, the
    /// batch, its receipt and the resource state change together or not at all.
    public func ingest(_ bytes: [UInt8], from authenticatedNode: String, on sql: PostgresConnection) async throws -> IngestOutcome {
        let file: BatchFile
        do {
            file = try BatchFile(bytes: bytes)
        } catch {
            return .error(400, code: error.code, message: "unreadable batch: \(error.description)", decision: "unreadable")
        }
        let header = file.header
        let digest = DigestAlgorithm.sha256.hash(bytes)
        return try await sql.transaction {
            let ledger = try await Self.lockLedger(of: authenticatedNode, on: sql)
            let storedRow = try await sql.query("""
                SELECT digest, accepted, receipt FROM govex.batch_index WHERE node_id = $1 AND epoch = $2 AND sequence = $3
                """, [header.nodeID, String(header.nodeEpoch), String(header.sequence)]).rows.first
            let stored = storedRow.map { StoredBatchIdentity(digest: Self.bytea($0[0]), accepted: $0[1] == "t") }

            // Who, which epoch and which sequence are decided from the header alone: a batch that
            // is early, a replay or a conflict is answered without verifying or decompressing it.
            var epochStored = false
            if let ledger, ledger.epoch != 0, header.nodeEpoch != ledger.epoch {
                epochStored = try await sql.query("""
                    SELECT EXISTS (SELECT 1 FROM govex.batch_index WHERE node_id = $1 AND epoch = $2)
                    """, [authenticatedNode, String(header.nodeEpoch)]).rows.first?[0] == "t"
            }
            var decision = IngestRules.decide(authenticatedNode: authenticatedNode, ledger: ledger, header: header, digest: digest, stored: stored,
                                              epochStored: epochStored)
            var records: [ChangeRecord] = [], columnNames: [String] = []
            if decision == .accept {
                contentChecks.increment()
                let key = try await NodeKeys.current(node: authenticatedNode, keyID: header.keyID, on: sql)
                var catalog: [String: CatalogResourceEntry] = [:]
                for row in try await sql.query("""
                    SELECT code, provider, share, columns FROM govex.catalog_resources WHERE code = ANY($1::text[])
                    """, [Self.textArray(header.resources)]).rows {
                    catalog[row[0] ?? ""] = CatalogResourceEntry(code: row[0] ?? "", provider: row[1] ?? "", share: row[2] ?? "",
                                                                 columns: Set(GoldenTable.arrayElements(row[3] ?? "{}")))
                }
                switch IngestRules.checkContent(file, key: key, catalog: catalog) {
                case .success(let decoded): (records, columnNames) = decoded
                case .failure(let reason): decision = decision.afterContent(reason)
                }
            }
            switch decision {
            case .refuse(let code, let message):
                var outcome = IngestOutcome.error(code.httpStatus, code: code.rawValue, message: message, decision: code.rawValue)
                if code == .sequenceGap, let ledger { outcome.sequencesAhead = header.sequence - (ledger.epoch == 0 ? 1 : ledger.nextSequence) }
                return outcome
            case .newEpoch(let epoch, let message):
                try await sql.query("UPDATE govex.nodes SET pending_epoch = $2 WHERE node_id = $1", [authenticatedNode, String(epoch)])
                return .error(HubErrorCode.newEpoch.httpStatus, code: HubErrorCode.newEpoch.rawValue, message: message, decision: HubErrorCode.newEpoch.rawValue)
            case .replay:
                return IngestOutcome(status: 200, body: Self.bytea(storedRow?[2]), decision: "replay")
            case .accept, .reject:
                let accepted = decision == .accept
                let reason: String? = if case .reject(let reason) = decision { reason } else { nil }
                let receivedAt = try await sql.query("""
                    SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                    """).rows[0][0] ?? ""
                try await sql.query("""
                    INSERT INTO govex.batches (node_id, epoch, sequence, received_at, kind, record_count, bytes, column_names)
                    VALUES ($1, $2, $3, now(), $4, $5, $6, $7)
                    """, binding: [.text(authenticatedNode), .text(String(header.nodeEpoch)), .text(String(header.sequence)),
                                   .text(header.kind.description), .text(String(header.recordCount)), .bytea(bytes),
                                   accepted ? .textArray(columnNames) : .text(nil)])
                let next = IngestRules.advance(ledger!, by: header)
                try await sql.query("UPDATE govex.nodes SET epoch = $2, next_sequence = $3 WHERE node_id = $1",
                                    [authenticatedNode, String(next.epoch), String(next.nextSequence)])
                var routed: [Int64] = []
                if accepted {
                    // The hub's copy and the golden records are written by the merger (GoldenQueue), off the push's path.
                    if !records.isEmpty {
                        let queued = try await GoldenQueue.enqueue(header, node: authenticatedNode, digest: digest, on: sql)
                        pendingMerges.keep(digest, queued: queued, GoldenMerge.Batch(node: authenticatedNode, records: records))
                    }
                    routed = try await Self.route(node: authenticatedNode, header: header, on: sql)
                }
                // Last, so that the audit head (one lock for the whole hub) is held only to commit.
                let audit = try await Self.audit(accepted ? "batch_accepted" : "batch_rejected", subject: authenticatedNode, actor: authenticatedNode,
                                                 details: [("epoch", BatchJSON.string(String(header.nodeEpoch))),
                                                           ("sequence", BatchJSON.string(String(header.sequence))),
                                                           ("digest", BatchJSON.string(Hex.encode(digest))),
                                                           ("records", String(header.recordCount)),
                                                           ("resources", BatchJSON.stringArray(header.resources)),
                                                           ("reason", reason.map(BatchJSON.string) ?? "null"),
                                                           ("routed_to_subscriptions", "[" + routed.map(String.init).joined(separator: ",") + "]")],
                                                 on: sql)
                let receipt = try SignedReceipt.sign(
                    Receipt(node: authenticatedNode, epoch: header.nodeEpoch, sequence: header.sequence, digest: digest,
                            accepted: accepted, reason: reason, receivedAt: receivedAt, hubKeyID: hubKey.publicKey.keyID, audit: audit),
                    with: hubKey).wire
                try await sql.query("""
                    INSERT INTO govex.batch_index (node_id, epoch, sequence, received_at, digest, accepted, reason, receipt)
                    VALUES ($1, $2, $3, now(), $4::bytea, $5, $6, $7::bytea)
                    """, [authenticatedNode, String(header.nodeEpoch), String(header.sequence), "\\x" + Hex.encode(digest),
                          accepted ? "t" : "f", reason, "\\x" + Hex.encode(receipt)])
                return IngestOutcome(status: 200, body: receipt, decision: accepted ? "accepted" : "rejected",
                                     records: accepted ? records.count : 0)
            }
        }
    }

    /// A bytea column in text form (`\x…`) as bytes.
    static func bytea(_ text: String??) -> [UInt8] {
        guard let text = text ?? nil, text.hasPrefix("\\x") else { return [] }
        return Hex.decode(String(text.dropFirst(2))) ?? []
    }
}
