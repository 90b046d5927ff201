import GovexAPI
import GovexHub
import GovexTestSupport
import GovexWire
import Testing

/// The hub's ingest decisions, without a database or a network: sequences, epochs,
/// replays, conflicts and rejections that still consume their sequence.
@Suite("Ingest rules")
struct IngestRulesTests {
    static let catalog: [String: CatalogResourceEntry] = [
        "GA-RK-0001": .init(code: "GA-RK-0001", provider: "gongan", share: "unconditional", columns: Set(EdgeValues.rows[0].map(\.name))),
        "MZ-HY-0003": .init(code: "MZ-HY-0003", provider: "gongan", share: "conditional", columns: ["id_number", "registered_on", "marital_status", "office"]),
    ]

    static func batch(sequence: UInt64, epoch: UInt64 = 7, node: String = "gongan", records: [ChangeRecord] = SampleBatches.mixedRecords(),
                      key: SigningKey = VectorKeys.gongan) throws -> (file: BatchFile, bytes: [UInt8], digest: [UInt8]) {
        var metadata = SampleBatches.metadata(sequence: sequence)
        metadata.nodeEpoch = epoch
        metadata.nodeID = node
        let bytes = try SampleBatches.seal(records, key: key, metadata: metadata)
        return (try BatchFile(bytes: bytes), bytes, DigestAlgorithm.sha256.hash(bytes))
    }

    static func decide(_ ledger: NodeLedger?, _ batch: (file: BatchFile, bytes: [UInt8], digest: [UInt8]), stored: StoredBatchIdentity? = nil,
                       node: String = "gongan", rejection: ContentRejection? = nil, epochStored: Bool = false) -> IngestDecision {
        IngestRules.decide(authenticatedNode: node, ledger: ledger, header: batch.file.header, digest: batch.digest, stored: stored,
                           epochStored: epochStored).afterContent(rejection)
    }

    @Test("the first batch sets the epoch; then sequences follow one by one, and a gap names the expected sequence")
    func sequences() throws {
        let fresh = NodeLedger(nodeID: "gongan")
        #expect(Self.decide(fresh, try Self.batch(sequence: 1)) == .accept)
        #expect(Self.decide(fresh, try Self.batch(sequence: 2)) == .refuse(code: .sequenceGap, message: "expected sequence 1 of epoch 7, got 2"))
        let after = IngestRules.advance(fresh, by: try Self.batch(sequence: 1).file.header)
        #expect(after == NodeLedger(nodeID: "gongan", epoch: 7, nextSequence: 2))
        #expect(Self.decide(after, try Self.batch(sequence: 2)) == .accept)
        guard case .refuse(.sequenceGap, let message) = Self.decide(after, try Self.batch(sequence: 5)) else { Issue.record("no gap"); return }
        #expect(message.contains("expected sequence 2"))
    }

    @Test("a replay with the same digest gets the original receipt; the same sequence with another digest is a conflict, never dropped")
    func replays() throws {
        let ledger = NodeLedger(nodeID: "gongan", epoch: 7, nextSequence: 4)
        let original = try Self.batch(sequence: 3)
        #expect(Self.decide(ledger, original, stored: .init(digest: original.digest, accepted: true)) == .replay)
        #expect(Self.decide(ledger, original, stored: .init(digest: original.digest, accepted: false)) == .replay, "a rejection is replayed too")
        let other = try Self.batch(sequence: 3, records: Array(SampleBatches.mixedRecords().prefix(2)))
        guard case .refuse(.digestConflict, let message) = Self.decide(ledger, other, stored: .init(digest: original.digest, accepted: true)) else {
            Issue.record("no conflict"); return
        }
        #expect(message.contains("already stored with another digest"))
        #expect(!IngestDecision.replay.consumesSequence)
    }

    @Test("a new epoch waits for an administrator; once accepted its sequences start at 1; an older epoch is refused")
    func epochs() throws {
        let ledger = NodeLedger(nodeID: "gongan", epoch: 7, nextSequence: 40)
        guard case .newEpoch(9, let message) = Self.decide(ledger, try Self.batch(sequence: 1, epoch: 9)) else { Issue.record("no new epoch"); return }
        #expect(message.contains("govex hub node accept-epoch gongan"))
        var pending = ledger
        pending.pendingEpoch = 9
        let accepted = try #require(IngestRules.acceptEpoch(pending))
        #expect(accepted == NodeLedger(nodeID: "gongan", epoch: 9, nextSequence: 1))
        #expect(Self.decide(accepted, try Self.batch(sequence: 1, epoch: 9)) == .accept)
        #expect(IngestRules.acceptEpoch(ledger) == nil, "nothing pending")
        guard case .refuse(.staleEpoch, _) = Self.decide(accepted, try Self.batch(sequence: 40, epoch: 7), epochStored: true) else { Issue.record("stale epoch accepted"); return }
    }

    @Test("a reset agent's new epoch waits for acceptance whatever its number; only an epoch the hub stored batches of is stale")
    func resetToLowerEpoch() throws {
        // Epochs used to be random: about half of all resets drew a smaller number than the one accepted.
        let ledger = NodeLedger(nodeID: "gongan", epoch: 9, nextSequence: 40)
        guard case .newEpoch(3, let message) = Self.decide(ledger, try Self.batch(sequence: 1, epoch: 3)) else {
            Issue.record("a fresh state with a smaller epoch must be a new epoch, not stale"); return
        }
        #expect(message.contains("govex hub node accept-epoch gongan"))
        var pending = ledger
        pending.pendingEpoch = 3
        #expect(IngestRules.acceptEpoch(pending) == NodeLedger(nodeID: "gongan", epoch: 3, nextSequence: 1))
        guard case .refuse(.staleEpoch, let stale) = Self.decide(ledger, try Self.batch(sequence: 12, epoch: 3), epochStored: true) else {
            Issue.record("an epoch the hub holds batches of must be stale"); return
        }
        #expect(stale.contains("restored"), "\(stale)")
    }

    @Test("who may push: an unknown node, a revoked node, and a batch from another node than the certificate's are refused")
    func identity() throws {
        let batch = try Self.batch(sequence: 1)
        #expect(Self.decide(nil, batch) == .refuse(code: .unknownNode, message: "node gongan is not enrolled at this hub"))
        #expect(Self.decide(NodeLedger(nodeID: "gongan", revoked: true), batch) == .refuse(code: .revoked, message: "node gongan has been revoked"))
        guard case .refuse(.nodeMismatch, _) = Self.decide(NodeLedger(nodeID: "minzheng"), batch, node: "minzheng") else { Issue.record("mismatch accepted"); return }
    }

    @Test("a batch that fails a content rule is stored as rejected and consumes its sequence")
    func rejections() throws {
        let decision = Self.decide(NodeLedger(nodeID: "gongan", epoch: 7, nextSequence: 1), try Self.batch(sequence: 1), rejection: .negativeList("GA-XX-0009"))
        #expect(decision == .reject(reason: "resource GA-XX-0009 has share class none: it may never be shared"))
        #expect(decision.consumesSequence)
    }

    @Test("content checks: signature, wrong key, tampered header and body, unknown, foreign and negative-list resources")
    func content() throws {
        let good = try Self.batch(sequence: 1)
        #expect((try? IngestRules.checkContent(good.file, key: VectorKeys.gongan.publicKey, catalog: Self.catalog).get())?.records.count == SampleBatches.mixedRecords().count)
        func rejection(_ file: BatchFile, key: VerifyingKey? = VectorKeys.gongan.publicKey, catalog: [String: CatalogResourceEntry] = Self.catalog) -> ContentRejection? {
            if case .failure(let rejection) = IngestRules.checkContent(file, key: key, catalog: catalog) { return rejection }
            return nil
        }
        #expect(rejection(good.file, key: nil) == .noRegisteredKey)
        #expect(rejection(good.file, key: VectorKeys.hub.publicKey)?.description.hasPrefix("signature check failed") == true)
        // Every single-bit change of header or body: unreadable (the hub answers 400), or a failed signature.
        for offset in stride(from: 8, to: good.bytes.count, by: 7) {
            var tampered = good.bytes
            tampered[offset] ^= 0x01
            guard let file = try? BatchFile(bytes: tampered) else { continue }
            #expect(rejection(file)?.description.hasPrefix("signature check failed") == true, "byte \(offset)")
        }
        var unknown = Self.catalog
        unknown["MZ-HY-0003"] = nil
        #expect(rejection(good.file, catalog: unknown) == .unknownResource("MZ-HY-0003"))
        var foreign = Self.catalog
        foreign["MZ-HY-0003"]?.provider = "minzheng"
        #expect(rejection(good.file, catalog: foreign) == .foreignResource("MZ-HY-0003", provider: "minzheng"))
        var negative = Self.catalog
        negative["GA-RK-0001"]?.share = "none"
        #expect(rejection(good.file, catalog: negative) == .negativeList("GA-RK-0001"))
    }

    @Test("a column the catalog does not list for the resource rejects the batch, whatever the agent was configured to send")
    func unlistedColumns() throws {
        let good = try Self.batch(sequence: 1)
        var narrower = Self.catalog
        narrower["MZ-HY-0003"]?.columns.remove("office")
        guard case .failure(let rejection) = IngestRules.checkContent(good.file, key: VectorKeys.gongan.publicKey, catalog: narrower) else {
            Issue.record("a batch carrying an unlisted column was accepted"); return
        }
        #expect(rejection == .unlistedColumns("MZ-HY-0003", ["office"]))
        #expect(rejection.description.contains("resource MZ-HY-0003 carries office, which the catalog does not list"))
        // One resource alone is checked by the names the decoder saw.
        let residents = SampleBatches.mixedRecords().filter { $0.resource == "GA-RK-0001" }
        let single = try Self.batch(sequence: 1, records: residents)
        var withoutName = Self.catalog
        withoutName["GA-RK-0001"]?.columns = ["id"]
        guard case .failure(.unlistedColumns("GA-RK-0001", let extra)) = IngestRules.checkContent(single.file, key: VectorKeys.gongan.publicKey, catalog: withoutName) else {
            Issue.record("single-resource batch with unlisted columns accepted"); return
        }
        #expect(!extra.isEmpty && !extra.contains("id"))
    }
}
