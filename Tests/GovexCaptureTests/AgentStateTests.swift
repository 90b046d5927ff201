import Foundation
import GovexCapture
import GovexTestSupport
import GovexWire
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

    @Test("each table's copy survives a save and a load, whatever its name; a state of an older version reads as one complete snapshot")
    func tableCopies() throws {
        let directory = Subprocess.temporaryDirectory("govex-state")
        var state = AgentState(epoch: 7, lastSequence: 3, lastPosition: SourcePosition(commit: 900, ordinal: 2))
        state.tables = ["A": TableCopy(table: "public.residents", phase: .copied(at: 800)),
                        "B": TableCopy(table: "odd schema.%tab\nle \u{4eba}", phase: .copying),
                        "C": TableCopy(table: "public.c", phase: .pending)]
        try state.save(to: directory)
        let loaded = try AgentState.load(from: directory)
        #expect(loaded == state)
        #expect(!loaded.snapshotComplete)
        #expect(loaded.copiedAt == ["A": 800])

        let legacy = Subprocess.temporaryDirectory("govex-state")
        let text = "epoch=7\nlast_sequence=3\nsnapshot_complete=1\n"
        try text.write(toFile: legacy + "/state", atomically: true, encoding: .utf8)
        let old = try AgentState.load(from: legacy)
        #expect(old.legacySnapshotComplete && old.snapshotComplete && old.tables.isEmpty)
    }

    @Test("the copy plan: what a crash cut short is copied again after a truncate, a table published later alone, a lost slot everything")
    func snapshotPlans() {
        let a = TableMapping(resource: "A", schema: "public", table: "a", key: ["id"])
        let b = TableMapping(resource: "B", schema: "public", table: "b", key: ["id"])
        let c = TableMapping(resource: "C", schema: "public", table: "c", key: ["id"])
        let mappings = [a, b, c]

        let first = SnapshotPlan(mappings: mappings, tables: [:], slotExists: false)
        #expect(first.copy == mappings && first.truncateFirst.isEmpty)
        #expect(first.tables.values.allSatisfy { $0.phase == .pending })

        let crashed = ["A": TableCopy(a, phase: .copied(at: 10)), "B": TableCopy(b, phase: .copying), "C": TableCopy(c, phase: .pending)]
        let resumed = SnapshotPlan(mappings: mappings, tables: crashed, slotExists: true)
        #expect(resumed.copy == [b, c] && resumed.truncateFirst == ["B"])
        #expect(resumed.tables == crashed, "A stays copied at its position, B copying, C pending")

        let done = ["A": TableCopy(a, phase: .copied(at: 10)), "B": TableCopy(b, phase: .copied(at: 10))]
        let added = SnapshotPlan(mappings: mappings, tables: done, slotExists: true)
        #expect(added.copy == [c] && added.truncateFirst.isEmpty)

        let removed = SnapshotPlan(mappings: [a], tables: done, slotExists: true)
        #expect(removed.copy.isEmpty && removed.tables.keys.sorted() == ["A"], "B is forgotten: published again, it is copied again")

        let moved = TableMapping(resource: "A", schema: "public", table: "a_v2", key: ["id"])
        let remapped = SnapshotPlan(mappings: [moved], tables: done, slotExists: true)
        #expect(remapped.copy == [moved] && remapped.truncateFirst == ["A"], "a resource moved to another table is copied from it, replacing the old rows")

        let lost = SnapshotPlan(mappings: mappings, tables: done, slotExists: false)
        #expect(lost.copy == mappings && lost.truncateFirst == ["A", "B"], "a new slot: every table again, the ones the hub holds after a truncate")

        let legacy = SnapshotPlan(mappings: [a, b], tables: [:], slotExists: true, legacySnapshotComplete: true)
        #expect(legacy.copy.isEmpty && legacy.tables["A"]?.phase == .copied(at: 0))
    }
}
