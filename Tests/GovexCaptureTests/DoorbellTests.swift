import GovexCapture
import Testing

/// The pusher's wake-up: no ring lost between a check and a wait, no polling.
@Suite("Doorbell")
struct DoorbellTests {
    @Test("a ring before the wait is kept for it; a ring during the wait ends it; cancellation ends a wait")
    func rings() async throws {
        let bell = Doorbell()
        bell.ring()
        bell.ring()
        await bell.wait()  // the kept ring: returns at once

        let woken = Task { await bell.wait(); return true }
        try await Task.sleep(for: .milliseconds(50))
        bell.ring()
        #expect(await woken.value)

        let cancelled = Task { await bell.wait(); return Task.isCancelled }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        #expect(await cancelled.value)
    }
}
