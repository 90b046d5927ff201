import GovexCapture
import GovexTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The agent's epoch: a reset must never look like an older state to the hub.
@Suite("Agent state")
struct AgentStateTests {
    @Test("a new agent state's epoch is the time it began: a later reset draws a larger one")
    func epochFromTime() throws {
        let first = AgentState.newEpoch(now: timespec(tv_sec: 1_764_000_000, tv_nsec: 123_456_789))
        #expect(first == 1_764_000_000_123_456)
        #expect(AgentState.newEpoch(now: timespec(tv_sec: 1_764_000_001, tv_nsec: 0)) > first)
        let directory = Subprocess.temporaryDirectory("govex-state")
        let fresh = try AgentState.load(from: directory)
        #expect(fresh.epoch > first, "a state made now is later than one made in 2025")
    }
}
