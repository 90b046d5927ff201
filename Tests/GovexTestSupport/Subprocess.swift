import Foundation

/// Runs commands to completion with posix_spawn and waitpid (Foundation's
/// Process can miss the exit of a child whose grandchild, a server, lives on).
public enum Subprocess {
    public struct Result: Sendable {
        public let status: Int32
        public let output: String
        public var timedOut = false
        /// The child's peak resident set in bytes (`ru_maxrss`).
        public var peakRSS = 0
        public var succeeded: Bool { status == 0 }
    }

    /// Runs `argv` with stdin from /dev/null; stdout and stderr are captured together
    /// in a file, not a pipe, so that a daemon the command starts cannot hold it open.
    /// `environment` entries are added to this process's environment.
    public static func run(_ argv: [String], environment: [String: String] = [:]) throws -> Result {
        let running = try start(argv, environment: environment)
        defer { unlink(running.outputPath) }
        return running.wait()
    }

    /// A process started in the background; its output goes to `outputPath`.
    public struct Running: Sendable {
        public let pid: pid_t
        public let outputPath: String

        public func signal(_ signal: Int32) { kill(pid, signal) }

        /// Stops the child if a test left it running (SIGTERM, then SIGKILL after `limit`), so
        /// that no process outlives its test. A child already waited for is left alone: its
        /// pid is no longer ours to signal.
        public func stopIfRunning(within limit: Duration = .seconds(10)) async {
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == 0 else { return }
            kill(pid, SIGTERM)
            _ = await finish(within: limit)
        }

        /// `wait`, off the cooperative pool, for at most `limit`: a child still running then
        /// is killed (status 137, `timedOut` set), so that a test fails instead of hanging
        /// the whole run (Swift Testing runs only 2 × cores test cases at a time).
        public func finish(within limit: Duration = .seconds(120)) async -> Result {
            let running = self
            return await Subprocess.offPool { running.wait(within: limit) }
        }

        /// Waits for the exit and returns the status (128 + signal when killed) and the output.
        public func wait(within limit: Duration? = nil) -> Result {
            var status: Int32 = 0
            var usage = rusage()
            var timedOut = false
            if let limit {
                let deadline = ContinuousClock.now + limit
                while true {
                    let reaped = wait4(pid, &status, WNOHANG, &usage)
                    if reaped == pid || (reaped < 0 && errno != EINTR) { break }
                    if ContinuousClock.now >= deadline {
                        kill(pid, SIGKILL)
                        timedOut = true
                        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
                        break
                    }
                    usleep(10_000)
                }
            } else {
                while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
            }
            let exitStatus: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
            let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            return Result(status: exitStatus, output: timedOut ? output + "\n[killed: still running after \(limit!)]" : output, timedOut: timedOut, peakRSS: usage.ru_maxrss * 1024)
        }
    }

    /// Runs blocking work (waitpid, poll) on a thread of its own. Async tests must never block
    /// Swift's cooperative pool: with two threads, two blocked tests starve every other test,
    /// including the ones whose progress the blocked ones wait for (a slot waits for open transactions).
    public static func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.start()
        }
    }

    /// `run`, waiting off the cooperative pool for at most `limit`.
    public static func run(_ argv: [String], environment: [String: String] = [:], within limit: Duration = .seconds(120)) async throws -> Result {
        let running = try start(argv, environment: environment)
        defer { unlink(running.outputPath) }
        return await running.finish(within: limit)
    }

    public static func start(_ argv: [String], environment: [String: String] = [:]) throws -> Running {
        let outputPath = NSTemporaryDirectory() + "govex-bg-\(UUID().uuidString).log"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var merged = ProcessInfo.processInfo.environment
        for (name, value) in environment { merged[name] = value }
        let cEnvironment = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cEnvironment.forEach { free($0) } }
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        // Children start with every signal at its default and none blocked, whatever the test
        // runner ignores or blocks: a script under test must be able to trap SIGINT.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, argv[0], &actions, &attributes, cArguments, cEnvironment)
        guard spawned == 0 else { throw TestSupportError("cannot start \(argv[0]): \(String(cString: strerror(spawned)))") }
        return Running(pid: pid, outputPath: outputPath)
    }

    /// Runs `argv` and throws with its output unless it exits 0.
    @discardableResult
    public static func check(_ argv: [String], environment: [String: String] = [:]) throws -> String {
        let result = try run(argv, environment: environment)
        guard result.succeeded else {
            throw TestSupportError("\(argv.joined(separator: " ")) exited \(result.status): \(result.output)")
        }
        return result.output
    }

    /// `check`, waiting off the cooperative pool.
    @discardableResult
    public static func checkAsync(_ argv: [String], environment: [String: String] = [:]) async throws -> String {
        let result = try await run(argv, environment: environment)
        guard result.succeeded else {
            throw TestSupportError("\(argv.joined(separator: " ")) exited \(result.status): \(result.output)")
        }
        return result.output
    }

    /// The directory holding the test bundle, where SwiftPM also puts the package's executables.
    public static var buildDirectory: String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (executable as NSString).deletingLastPathComponent
    }

    public static func temporaryDirectory(_ prefix: String = "govex-test") -> String {
        let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
