import ServiceLifecycle
import GovexCapture
import Synchronization

/// Waits `duration`, or less when the service running it is asked to stop gracefully (or its
/// task is cancelled): a backoff must never hold up a stop or a reload.
func idle(for duration: Duration) async {
    _ = try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
}

/// A stop was asked of the service this runs in (its group shuts down gracefully), or its
/// task was cancelled: loops check this between steps instead of being handed a flag.
var stopRequested: Bool { Task.isShuttingDownGracefully || Task.isCancelled }

/// A one-way gate: tasks wait until it opens; opening it releases them all, now and later.
final class Latch: Sendable {
    private let opened = Atomic<Bool>(false)
    private let bell = Doorbell()

    func open() {
        opened.store(true, ordering: .releasing)
        bell.ring()
    }

    /// Returns once the latch is open, or at once when the task is cancelled.
    func wait() async {
        // An open between the check and the wait is kept by the doorbell for this wait.
        while !opened.load(ordering: .acquiring), !Task.isCancelled { await bell.wait() }
    }
}
