import GovexTestSupport
import GovexWire
import Testing

@Suite("Batch encode → seal → parse → verify → decode")
struct BatchRoundTripTests {
    @Test("every operation and value survives exactly", arguments: SignatureAlgorithm.allCases)
    func roundTrip(algorithm: SignatureAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let records = SampleBatches.mixedRecords()
        let file = try SampleBatches.seal(records, key: key)
        let batch = try BatchFile(bytes: file)
        try batch.verify(with: key.publicKey)
        #expect(try batch.records() == records)
        let header = batch.header
        #expect(header.nodeID == "gongan")
        #expect(header.sequence == 42)
        #expect(header.recordCount == UInt32(records.count))
        #expect(header.resources == ["GA-RK-0001", "MZ-HY-0003"])
        #expect(header.firstPosition == records.first!.position)
        #expect(header.lastPosition == records.last!.position)
        #expect(header.digestAlgorithm == algorithm.digest)
        #expect(header.keyID == key.publicKey.keyID)
    }

    @Test("an empty batch is valid")
    func emptyBatch() throws {
        let key = try SigningKey.generate(.ed25519)
        let metadata = BatchMetadata(nodeID: "hub", nodeEpoch: 1, sequence: 1, kind: .snapshot, positionType: .none, completeThrough: 0, createdAt: 0)
        let batch = try BatchFile(bytes: try SampleBatches.seal([], key: key, metadata: metadata))
        try batch.verify(with: key.publicKey)
        #expect(try batch.records().isEmpty)
    }

    @Test("a delivery carries its origin, whose signature still verifies")
    func provenance() throws {
        let provider = try SigningKey.generate(.sm2)
        let hub = try SigningKey.generate(.ed25519)
        let origin = try BatchFile(bytes: try SampleBatches.seal(SampleBatches.mixedRecords(), key: provider))
        var metadata = SampleBatches.metadata(sequence: 7, kind: .delivery)
        metadata.nodeID = "hub"
        metadata.provenance = Provenance(of: origin)
        metadata.extensions = [HeaderExtension(type: 0x7F01, isCritical: false, data: Array("routing-note".utf8))]
        let delivery = try BatchFile(bytes: try SampleBatches.seal(SampleBatches.mixedRecords(), key: hub, metadata: metadata))
        try delivery.verify(with: hub.publicKey)
        let provenance = try #require(delivery.header.provenance)
        try provenance.verifyOrigin(with: provider.publicKey)
        #expect(delivery.compressedBody == origin.compressedBody, "an unchanged delivery carries the provider's body byte for byte")
        #expect(throws: BatchError.self) { try provenance.verifyOrigin(with: hub.publicKey) }
        #expect(delivery.header.extensions.count == 1)

        // Re-issued without recompressing: the provider's body bytes, the hub's signature.
        var header = delivery.header
        header.sequence = 8
        let reissued = try BatchFile(bytes: try BatchSealer.seal(compressedBody: origin.compressedBody,
                                                                 uncompressedLength: Int(origin.header.uncompressedLength), header: header, key: hub))
        try reissued.verify(with: hub.publicKey)
        #expect(reissued.compressedBody == origin.compressedBody)
        #expect(try reissued.records() == SampleBatches.mixedRecords())
    }

    @Test("the encoder refuses records that would make an invalid batch", arguments: [
        ChangeRecord(operation: .insert, resource: "bad code!", position: SourcePosition(commit: 1, ordinal: 0), key: [Column("id", .int4(1))]),
        ChangeRecord(operation: .insert, resource: "R", position: SourcePosition(commit: 1, ordinal: 0), key: [Column("id", .null)]),
        ChangeRecord(operation: .insert, resource: "R", position: SourcePosition(commit: 1, ordinal: 0), key: [Column("id", .int4(1))], values: [Column("v", .unchanged)]),
        ChangeRecord(operation: .delete, resource: "R", position: SourcePosition(commit: 1, ordinal: 0), key: [Column("id", .int4(1))], values: [Column("v", .int4(1))]),
        ChangeRecord(operation: .truncate, resource: "R", position: SourcePosition(commit: 1, ordinal: 0), key: [Column("id", .int4(1))]),
        ChangeRecord(operation: .insert, resource: "R", position: SourcePosition(commit: 1, ordinal: 0), key: [Column("id", .int4(1))], values: [Column("id", .int4(2))]),
        ChangeRecord(operation: .update, resource: "R", position: SourcePosition(commit: 1, ordinal: 0), key: [Column("id", .int4(1))], oldKey: [Column("other", .int4(2))]),
    ])
    func refusesInvalidRecords(record: ChangeRecord) {
        var encoder = BatchBodyEncoder()
        #expect(throws: BatchError.self) { try encoder.append(record) }
    }

    @Test("positions must strictly increase")
    func positionsIncrease() throws {
        var encoder = BatchBodyEncoder()
        try encoder.append(ChangeRecord(operation: .delete, resource: "R", position: SourcePosition(commit: 5, ordinal: 1), key: [Column("id", .int4(1))]))
        #expect(throws: BatchError.self) {
            try encoder.append(ChangeRecord(operation: .delete, resource: "R", position: SourcePosition(commit: 5, ordinal: 1), key: [Column("id", .int4(2))]))
        }
    }
}
