import Foundation
import GovexAPI
import GovexHub
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// The audit trail on a real hub database: what the hub records, and every way to
/// tamper with it being caught and named.
@Suite("Audit trail")
struct AuditTrailTests {
    /// Rewrites every digest from `entry` on, and the head, as a forger with database access would.
    static func recomputeChain(on sql: PostgresConnection) async throws {
        var (entries, _) = try await HubStore.auditTrail(on: sql)
        var previous = AuditChain.genesis
        for index in entries.indices {
            entries[index].previousDigest = previous
            entries[index].digest = AuditChain.digest(of: entries[index], previous: previous)
            previous = entries[index].digest
            try await sql.query("UPDATE govex.audit_log SET previous_digest = $2::bytea, digest = $3::bytea WHERE entry = $1",
                                [String(entries[index].entry), "\\x" + Hex.encode(entries[index].previousDigest), "\\x" + Hex.encode(previous)])
        }
        try await sql.query("UPDATE govex.audit_head SET entry = $1, digest = $2::bytea", [String(entries.count), "\\x" + Hex.encode(previous)])
    }

    static func verify(on sql: PostgresConnection, anchors: [AuditChain.Anchor] = []) async throws -> AuditChain.Problem? {
        let (entries, head) = try await HubStore.auditTrail(on: sql)
        return AuditChain.verify(entries, head: head, anchors: anchors)
    }

    @Test("batches, subscriptions, decisions and acks are chained; receipts carry signed anchors; edits, deletions and a recomputed chain are caught")
    func tamperEvidence() async throws {
        try await HubStoreTests.withHub { _, sql in
            try await HubStore.addNode("minzheng", on: sql)
            var anchors: [AuditChain.Anchor] = []
            for sequence in 1...4 {
                let outcome = try await HubStoreTests.store.ingest(try HubStoreTests.batch(UInt64(sequence)), from: "gongan", on: sql)
                let receipt = try HubStoreTests.receipt(outcome)
                anchors.append(AuditChain.Anchor(entry: UInt64(receipt.auditEntry ?? "") ?? 0, digest: Hex.decode(receipt.auditDigest ?? "") ?? [],
                                                 source: "receipt \(sequence)"))
                if sequence == 2 {
                    guard case .stored(let subscription) = try await HubStoreTests.store.subscribe(
                        node: "minzheng", resource: "MZ-HY-0003", columns: [], purpose: "p", on: sql) else { throw TestSupportError("not stored") }
                    _ = try await HubStoreTests.store.decide(subscription: subscription.id, SubscriptionRules.DecisionRequest(
                        decision: "approve", reason: "ok"), by: "gongan", on: sql)
                }
            }
            _ = try await HubStore.acknowledge(subscription: 1, for: "minzheng", through: 1, on: sql)
            let actions = try await sql.query("SELECT action FROM govex.audit_log ORDER BY entry").rows.map { $0[0] ?? "" }
            #expect(actions == ["batch_accepted", "batch_accepted", "subscription_requested", "subscription_approved", "backfill_routed",
                                "batch_accepted", "batch_accepted", "deliveries_acknowledged"], "\(actions)")
            #expect(anchors.map(\.entry) == [1, 2, 6, 7])
            #expect(try await Self.verify(on: sql, anchors: anchors) == nil)

            // An altered entry is named.
            try await sql.query("UPDATE govex.audit_log SET details = replace(details, '\"records\"', '\"rows\"') WHERE entry = 2")
            #expect(try await Self.verify(on: sql)?.entry == 2)
            // A chain recomputed after the edit holds on its own, but not against the anchors in receipts.
            try await Self.recomputeChain(on: sql)
            #expect(try await Self.verify(on: sql) == nil)
            let caught = try await Self.verify(on: sql, anchors: anchors)
            #expect(caught?.entry == 2 && caught?.reason.contains("rewritten") == true, "\(String(describing: caught))")
        }
    }

    @Test("a deleted entry, in the middle or at the end, is named")
    func deletions() async throws {
        try await HubStoreTests.withHub { _, sql in
            for sequence in 1...3 { _ = try await HubStoreTests.store.ingest(try HubStoreTests.batch(UInt64(sequence)), from: "gongan", on: sql) }
            try await sql.query("DELETE FROM govex.audit_log WHERE entry = 3")
            #expect(try await Self.verify(on: sql)?.entry == 3, "removed from the end: the head still names it")
            try await sql.query("DELETE FROM govex.audit_log WHERE entry = 1")
            let problem = try await Self.verify(on: sql)
            #expect(problem?.entry == 1 && problem?.reason.contains("missing") == true)
        }
    }

    @Test("two hub replicas appending at once keep one chain")
    func concurrentReplicas() async throws {
        try await HubStoreTests.withHub { database, sql in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for replica in 0..<2 {
                    group.addTask {
                        try await PostgresConnection.with(database.conninfo) { connection in
                            for index in 0..<25 {
                                try await connection.transaction {
                                    try await HubStore.audit("test_event", subject: "replica \(replica)", actor: "test",
                                                             details: [("index", String(index))], on: connection)
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await sql.query("SELECT count(*) FROM govex.audit_log").rows[0][0] == "50")
            let problem = try await Self.verify(on: sql)
            #expect(problem == nil, "\(String(describing: problem))")
        }
    }
}

@Suite("Enrollment tokens")
struct EnrollmentTokenTests {
    @Test("a token is never taken for a command-line option: it starts with gvx_ and is audited")
    func tokenShape() async throws {
        try await HubStoreTests.withHub { _, sql in
            for _ in 0..<64 {
                let token = try await Enrollment.createToken(for: "minzheng", on: sql)
                #expect(token.hasPrefix("gvx_") && token.count == 47 && !token.contains(" "))
            }
            #expect(try await sql.query("SELECT count(*) FROM govex.audit_log WHERE action = 'enrollment_token_issued'").rows[0][0] == "64")
        }
    }
}

@Suite("Hub key endorsements")
struct HubKeyEndorsementTests {
    @Test("keys reachable from a trusted key through valid endorsements are trusted, in any order; a forged one is not")
    func chain() throws {
        let keys = (1...3).map { VectorKeys.ed25519(seed: Array(repeating: UInt8($0), count: 32)) }
        let forger = VectorKeys.ed25519(seed: Array(repeating: 9, count: 32))
        let endorsements = [try HubKeyEndorsement.endorse(keys[2].publicKey, with: keys[1]),
                            try HubKeyEndorsement.endorse(keys[1].publicKey, with: keys[0]),
                            try HubKeyEndorsement.endorse(forger.publicKey, with: forger)]
        let trusted = HubKeyEndorsement.extend([keys[0].publicKey], with: endorsements)
        #expect(trusted.map(\.keyID) == [keys[0], keys[1], keys[2]].map(\.publicKey.keyID))
        var tampered = endorsements[1]
        tampered.key = forger.publicKey.pem
        #expect(HubKeyEndorsement.extend([keys[0].publicKey], with: [tampered]).count == 1, "a signature over another key does not carry over")
    }
}
