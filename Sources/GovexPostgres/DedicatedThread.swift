import Foundation

/// One OS thread that runs blocking work (libpq calls) in submission order.
///
/// Swift's cooperative pool has one thread per core (two here); a libpq call
/// blocked on the network there would starve every other task, keepalive
/// replies and watchdog pings included. Work submitted here blocks only this thread.
public final class DedicatedThread: Sendable {
    private let queue = JobQueue()

    public init(name: String) {
        let queue = self.queue
        let thread = Thread { queue.drain() }
        thread.name = name
        thread.start()
    }

    deinit {
        queue.stop()
    }

    /// Runs `body` on this thread and returns its result to the awaiting task.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = queue.submit {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
            if !accepted { continuation.resume(throwing: CancellationError()) }
        }
    }

    /// Stops after the jobs already submitted have run.
    public func stop() { queue.stop() }
}

/// The thread's work list; the thread itself keeps it alive until it is drained.
private final class JobQueue: @unchecked Sendable {
    // Everything below is guarded by `condition`.
    private var jobs: [@Sendable () -> Void] = []
    private var stopping = false
    private let condition = NSCondition()

    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    func drain() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let batch = jobs
            jobs.removeAll()
            condition.unlock()
            for job in batch { job() }
        }
    }
}
