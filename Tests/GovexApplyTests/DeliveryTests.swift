import GovexAPI
import GovexPolicy
import GovexTestSupport
import GovexWire
import Testing

/// The delivery format, both ends, without a hub: what the hub issues and what a
/// subscriber accepts.
@Suite("Deliveries: issue and verify")
struct DeliveryTests {
    let provider = VectorKeys.gongan
    let hub = VectorKeys.hub

    func origin(_ records: [ChangeRecord] = SampleBatches.mixedRecords()) throws -> BatchFile {
        try BatchFile(bytes: SampleBatches.seal(records, key: provider))
    }

    func keys(_ node: String, _ keyID: [UInt8]) -> VerifyingKey? {
        node == "gongan" && keyID == provider.publicKey.keyID ? provider.publicKey : nil
    }

    @Test("a delivery that keeps the provider's body unchanged carries the provider's signature over it")
    func unchangedBody() throws {
        let records = SampleBatches.mixedRecords().filter { $0.resource == "GA-RK-0001" }
        let origin = try origin(records)
        let allColumns = Array(Set(records.flatMap { $0.key.map(\.name) + $0.values.map(\.name) }))
        let bytes = try Delivery.issue(origin: origin, subscriptionID: 7, delivery: 3, resource: "GA-RK-0001", policy: SharingPolicy(columns: allColumns),
                                       hubKey: hub, createdAt: 1)
        let verified = try Delivery.verify(bytes, hubKey: hub.publicKey, subscriptionID: 7, providerKey: keys)
        #expect(verified.bodySignedByProvider)
        #expect(verified.records == records)
        #expect(verified.sequence == 3 && verified.originNode == "gongan" && verified.originSequence == origin.header.sequence)
        #expect(try BatchFile(bytes: bytes).compressedBody == origin.compressedBody, "passed on byte for byte")
    }

    @Test("with the column names recorded at ingest, an unchanged body is passed on without decoding and equals the decoded way")
    func unchangedWithoutDecoding() throws {
        let records = SampleBatches.mixedRecords().filter { $0.resource == "GA-RK-0001" }
        let origin = try origin(records)
        let columnNames = try origin.contents().columnNames
        #expect(Set(columnNames) == Set(records.flatMap { $0.key.map(\.name) + $0.values.map(\.name) }))
        let policy = SharingPolicy(columns: columnNames)
        let fast = try Delivery.issue(origin: origin, columnNames: columnNames, subscriptionID: 7, delivery: 3, resource: "GA-RK-0001",
                                      policy: policy, hubKey: hub, createdAt: 1)
        let decoded = try Delivery.issue(origin: origin, subscriptionID: 7, delivery: 3, resource: "GA-RK-0001", policy: policy,
                                         hubKey: hub, createdAt: 1)
        #expect(fast == decoded, "the same file either way (ed25519 signs deterministically)")
        // Column names that the policy does not cover send it the decoding way, which projects.
        let narrow = SharingPolicy(columns: Array(columnNames.prefix(2)))
        let projected = try Delivery.issue(origin: origin, columnNames: columnNames, subscriptionID: 7, delivery: 3, resource: "GA-RK-0001",
                                           policy: narrow, hubKey: hub, createdAt: 1)
        #expect(try Delivery.verify(projected, hubKey: hub.publicKey, subscriptionID: 7, providerKey: keys).bodySignedByProvider == false)
    }

    @Test("a projected delivery holds only the subscription's resource and columns, keys always")
    func projection() throws {
        let origin = try origin()
        let bytes = try Delivery.issue(origin: origin, subscriptionID: 7, delivery: 1, resource: "MZ-HY-0003", policy: SharingPolicy(columns: ["marital_status"]),
                                       hubKey: hub, createdAt: 1)
        let verified = try Delivery.verify(bytes, hubKey: hub.publicKey, subscriptionID: 7, providerKey: keys)
        #expect(!verified.bodySignedByProvider)
        #expect(verified.records.allSatisfy { $0.resource == "MZ-HY-0003" })
        #expect(verified.records.count == SampleBatches.mixedRecords().filter { $0.resource == "MZ-HY-0003" }.count)
        #expect(verified.records.allSatisfy { $0.values.allSatisfy { $0.name == "marital_status" } })
        #expect(verified.records.contains { $0.key.map(\.name) == ["id_number", "registered_on"] })
        #expect(!bytes.contains(subsequence: Array("海淀".utf8)), "a column outside the subscription is not in the file")
    }

    @Test("refused: another subscription's delivery, a hub key that did not sign it, an unknown provider key, a flipped byte")
    func refusals() throws {
        let origin = try origin()
        let bytes = try Delivery.issue(origin: origin, subscriptionID: 7, delivery: 1, resource: "GA-RK-0001", policy: SharingPolicy(columns: ["id"]),
                                       hubKey: hub, createdAt: 1)
        #expect(throws: DeliveryError.self) { try Delivery.verify(bytes, hubKey: hub.publicKey, subscriptionID: 8, providerKey: keys) }
        #expect(throws: (any Error).self) { try Delivery.verify(bytes, hubKey: provider.publicKey, subscriptionID: 7, providerKey: keys) }
        #expect(throws: DeliveryError.self) { try Delivery.verify(bytes, hubKey: hub.publicKey, subscriptionID: 7) { _, _ in nil } }
        // A provider signature that does not match the provenance: the origin header re-signed by someone else.
        #expect(throws: (any Error).self) {
            try Delivery.verify(bytes, hubKey: hub.publicKey, subscriptionID: 7) { _, _ in VectorKeys.ed25519(seed: Array(repeating: 9, count: 32)).publicKey }
        }
        var flipped = 0
        for offset in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 300)) {
            var tampered = bytes
            tampered[offset] ^= 0x01
            #expect(throws: (any Error).self) { try Delivery.verify(tampered, hubKey: hub.publicKey, subscriptionID: 7, providerKey: keys) }
            flipped += 1
        }
        #expect(flipped >= 300)
        // A provider batch is not a delivery, even signed by the hub's key.
        let notDelivery = try SampleBatches.seal(SampleBatches.mixedRecords(), key: hub)
        #expect(throws: (any Error).self) { try Delivery.verify(notDelivery, hubKey: hub.publicKey, subscriptionID: 7, providerKey: keys) }
    }

    @Test("framing round-trips any deliveries and refuses a cut-off frame")
    func framing() throws {
        let deliveries: [[UInt8]] = [[], [1, 2, 3], Array(repeating: 0xFF, count: 70_000)]
        let framed = Delivery.frame(deliveries)
        #expect(try Delivery.unframe(framed) == deliveries)
        #expect(try Delivery.unframe([]) == [])
        #expect(throws: DeliveryError.self) { try Delivery.unframe(Array(framed.dropLast())) }
        #expect(throws: DeliveryError.self) { try Delivery.unframe([0, 0]) }
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { self[$0..<($0 + subsequence.count)].elementsEqual(subsequence) }
    }
}
