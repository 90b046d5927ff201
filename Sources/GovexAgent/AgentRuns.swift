import Foundation
import GovexAPI
import GovexApply
import GovexCapture
import GovexConfiguration
import GovexPostgres
import GovexSystemd
import GovexWire
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The agent's runs, one per configuration: each an inner service group. SIGHUP winds the
/// current run down gracefully and starts the next with `agent.toml` read again (kept as it
/// was when the new one does not load); a stop of the process winds it down for good.
struct AgentRuns: Service {
    let configurationPath: String
    let configuration: AgentConfiguration
    let key: SigningKey
    let notifier: SystemdNotifier

    func run() async throws {
        let control = RunControl()
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    for await _ in hangups { await control.reload(notifier) }
                }
                var configuration = configuration, key = key
                while true {
                    let reload = try await AgentRun(configuration: configuration, key: key, notifier: notifier).run(control: control)
                    guard reload else { break }
                    do {
                        (configuration, key) = try AgentRunner.load(configurationPath: configurationPath,
                                                                   text: try String(contentsOfFile: configurationPath, encoding: .utf8))
                        AgentRunner.log(6, "reloaded \(configurationPath)")
                    } catch {
                        AgentRunner.log(3, "cannot reload \(configurationPath): \(error); going on with the configuration already running")
                    }
                }
                tasks.cancelAll()
            }
        } onGracefulShutdown: {
            Task { await control.stop() }
        }
    }
}

/// Which run is current, and whether it ends in a stop or a reload.
actor RunControl {
    private var current: ServiceGroup?
    private var stopping = false
    private var reloading = false

    /// Makes `group` current; false when a stop came first.
    func begin(_ group: ServiceGroup) -> Bool {
        guard !stopping else { return false }
        current = group
        return true
    }

    /// The current run is over: true when a reload (and no stop) asked for it.
    func end() -> Bool {
        current = nil
        defer { reloading = false }
        return reloading && !stopping
    }

    func stop() async {
        stopping = true
        await current?.triggerGracefulShutdown()
    }

    func reload(_ notifier: SystemdNotifier) async {
        guard !stopping, !reloading, let current else { return }
        reloading = true
        notifier.notify("RELOADING=1")
        AgentRunner.log(6, "reloading: sealing, spooling and confirming what is open")
        await current.triggerGracefulShutdown()
    }
}
