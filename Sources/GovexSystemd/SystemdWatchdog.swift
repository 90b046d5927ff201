import ServiceLifecycle

/// Says WATCHDOG=1 every half interval from a loop of its own, so that neither a long copy,
/// a backoff nor a reload starves it. First in its group, it is the last one stopped: it
/// goes on while the services it watches wind down.
public struct SystemdWatchdog: Service {
    let notifier: SystemdNotifier

    public init(notifier: SystemdNotifier) { self.notifier = notifier }

    public func run() async throws {
        guard let interval = notifier.watchdogInterval else {
            try? await gracefulShutdown()
            return
        }
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                notifier.notify("WATCHDOG=1")
                try await Task.sleep(for: interval)
            }
        }
    }
}

/// Last in its group, so the first told of a stop: says STOPPING=1 and logs it at once,
/// before the other services take their time to wind down.
public struct StopAnnouncer: Service {
    let notifier: SystemdNotifier
    let announce: @Sendable () -> Void

    public init(notifier: SystemdNotifier, announce: @escaping @Sendable () -> Void) {
        self.notifier = notifier
        self.announce = announce
    }

    public func run() async throws {
        guard (try? await gracefulShutdown()) != nil else { return }
        notifier.notify("STOPPING=1")
        announce()
    }
}
