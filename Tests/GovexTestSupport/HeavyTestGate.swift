/// Tests that run a hub and several agents as processes each keep a core busy for seconds;
/// Swift Testing runs every suite at once, and on a 2-core machine a dozen of them at a time
/// starve each other past their deadlines. They pass through this gate, a few at a time.
public actor HeavyTestGate {
    public static let shared = HeavyTestGate(limit: 2)

    let limit: Int
    var running = 0
    var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = limit }

    func enter() async {
        if running < limit {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()  // the slot passes straight on
        }
    }

    /// Runs `body` with no other heavy test inside: for a test whose load slows every other
    /// (thousands of DDL transactions, which every logical WAL sender on the server decodes).
    /// It takes every slot, one after the other; exclusive runs queue for each other first,
    /// so two of them never hold part of the slots each.
    public nonisolated func runAlone<T>(_ body: () async throws -> T) async rethrows -> T {
        await HeavyTestGate.exclusive.enter()
        for _ in 0..<limit { await enter() }
        func leaveAll() async {
            for _ in 0..<limit { await leave() }
            await HeavyTestGate.exclusive.leave()
        }
        do {
            let result = try await body()
            await leaveAll()
            return result
        } catch {
            await leaveAll()
            throw error
        }
    }

    /// Queues the exclusive runs.
    static let exclusive = HeavyTestGate(limit: 1)

    /// Runs `body` once fewer than `limit` others are inside.
    public nonisolated func run<T>(_ body: () async throws -> T) async rethrows -> T {
        await enter()
        do {
            let result = try await body()
            await leave()
            return result
        } catch {
            await leave()
            throw error
        }
    }
}
