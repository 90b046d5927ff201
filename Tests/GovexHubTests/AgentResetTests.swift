import GovexAPI
import GovexHub
import GovexPostgres
import GovexTestSupport
import GovexWire
import Testing

/// An agent whose state was reset (a lost data directory, a new machine) starts a new epoch
/// that an administrator accepts; one restored from an old backup is refused as stale.
@Suite("Agent resets at the hub")
struct AgentResetTests {
    @Test("a reset to a smaller epoch waits for accept-epoch and then flows; the old epoch is then stale")
    func resetToSmallerEpoch() async throws {
        try await HubStoreTests.withHub { _, sql in
            let store = HubStore(hubKey: VectorKeys.hub)
            #expect(try await store.ingest(try HubStoreTests.batch(1, epoch: 900), from: "gongan", on: sql).decision == "accepted")
            #expect(try await store.ingest(try HubStoreTests.batch(2, epoch: 900), from: "gongan", on: sql).decision == "accepted")
            // The fresh state's epoch is smaller than the accepted one.
            #expect(try await store.ingest(try HubStoreTests.batch(1, epoch: 300), from: "gongan", on: sql).decision == "new_epoch")
            #expect(try await HubStore.acceptEpoch(of: "gongan", on: sql) == 300)
            #expect(try await store.ingest(try HubStoreTests.batch(1, epoch: 300), from: "gongan", on: sql).decision == "accepted")
            // The old state come back (a restored backup) is refused, naming what to do.
            let stale = try await store.ingest(try HubStoreTests.batch(3, epoch: 900), from: "gongan", on: sql)
            #expect(stale.decision == "stale_epoch" && stale.status == 409)
            #expect(String(decoding: stale.body, as: UTF8.self).contains("restored from a backup"))
        }
    }
}
