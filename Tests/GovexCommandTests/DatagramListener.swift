import Foundation
import GovexTestSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Receives sd_notify datagrams the way systemd does: a reader drains the socket all the
/// time, so the sender's queue (10 datagrams on Linux) never fills because a test is busy
/// elsewhere.
final class DatagramListener: Sendable {
    /// What the reader thread owns: it closes the socket once the listener is gone.
    private final class Inbox: Sendable {
        let fd: Int32
        let received = Mutex<[(message: String, at: ContinuousClock.Instant)]>([])
        let closed = Atomic<Bool>(false)
        let paused = Atomic<Bool>(false)
        init(fd: Int32) { self.fd = fd }

        func drain() {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !closed.load(ordering: .acquiring) {
                if paused.load(ordering: .acquiring) { usleep(50_000); continue }
                var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&descriptor, 1, 100) > 0 else { continue }
                let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if count > 0 {
                    let message = String(decoding: buffer[0..<count], as: UTF8.self)
                    received.withLock { $0.append((message, .now)) }
                }
            }
            close(fd)
        }
    }

    private let inbox: Inbox

    init(path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { close(fd); throw TestSupportError("cannot bind \(path)") }
        let inbox = Inbox(fd: fd)
        self.inbox = inbox
        Thread { inbox.drain() }.start()
    }

    deinit { inbox.closed.store(true, ordering: .releasing) }

    /// Stops reading, as a systemd too busy to read would: the sender's queue fills.
    func pause() { inbox.paused.store(true, ordering: .releasing) }

    /// Every datagram so far, in arrival order.
    var messages: [String] { inbox.received.withLock { $0.map(\.message) } }

    /// When each datagram equal to `message` arrived.
    func arrivals(of message: String) -> [ContinuousClock.Instant] {
        inbox.received.withLock { $0.filter { $0.message == message }.map(\.at) }
    }

    /// Whether a datagram equal to `message` arrived (now or earlier) within `timeout`.
    func arrives(_ message: String, within timeout: Duration) async -> Bool {
        await first(within: timeout) { $0 == message } != nil
    }

    /// The first datagram (now or earlier) that `matches`, waiting up to `timeout`.
    func first(within timeout: Duration, where matches: @Sendable (String) -> Bool) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let found = messages.first(where: matches) { return found }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
