import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Named places where a test can make the process die (`GOVEX_CRASH_AT=name`),
/// so crash tests can fail for the right reason: SIGKILL keeps the page cache,
/// an abort between two steps shows what a real power loss would leave.
public enum CrashPoint {
    /// `GOVEX_CRASH_AT=NAME` aborts the first time NAME is reached, `NAME#N` the Nth time.
    private static let target: (name: String, count: Int)? = {
        guard let value = getenv("GOVEX_CRASH_AT") else { return nil }
        let parts = String(cString: value).split(separator: "#", maxSplits: 1).map(String.init)
        guard let name = parts.first else { return nil }
        return (name, parts.count == 2 ? Int(parts[1]) ?? 1 : 1)
    }()
    private static let reached = Atomic<Int>(0)

    public static func here(_ name: String) {
        guard let target, target.name == name else { return }
        guard reached.wrappingAdd(1, ordering: .relaxed).newValue >= target.count else { return }
        let message = "govex: crash point \(name) reached (GOVEX_CRASH_AT)\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        abort()
    }
}

public struct FileError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let operation: String
    public let reason: String

    public var description: String { "cannot \(operation) \(path): \(reason)" }

    static func current(_ operation: String, _ path: String) -> FileError {
        FileError(path: path, operation: operation, reason: String(cString: strerror(errno)))
    }
}

/// Files that are either entirely there or not at all, even across power loss:
/// written to a temporary name, fsynced, renamed into place, and the directory fsynced.
public enum DurableFile {
    /// Writes `bytes` to `directory/name` atomically and durably, mode 0600.
    /// `crashPrefix` names the crash points between the steps (`PREFIX.after-write` …).
    public static func write(_ bytes: [UInt8], to name: String, in directory: String, crashPrefix: String) throws(FileError) {
        let temporary = directory + "/.tmp-" + name
        let final = directory + "/" + name
        CrashPoint.here(crashPrefix + ".before-write")
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .current("create", temporary) }
        var closed = false
        defer { if !closed { close(fd) } }
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if result < 0 {
                if errno == EINTR { continue }
                let error = FileError.current("write", temporary)
                unlink(temporary)
                throw error
            }
            written += result
        }
        CrashPoint.here(crashPrefix + ".after-write")
        guard fsync(fd) == 0 else {
            let error = FileError.current("fsync", temporary)
            unlink(temporary)
            throw error
        }
        CrashPoint.here(crashPrefix + ".after-fsync")
        close(fd)
        closed = true
        guard rename(temporary, final) == 0 else { throw .current("rename into place", final) }
        CrashPoint.here(crashPrefix + ".after-rename")
        try syncDirectory(directory)
        CrashPoint.here(crashPrefix + ".after-directory-fsync")
    }

    /// Makes renames and unlinks in `directory` durable.
    public static func syncDirectory(_ directory: String) throws(FileError) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .current("open directory", directory) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .current("fsync directory", directory) }
    }

    public static func read(_ path: String, limit: Int) throws(FileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .current("open", path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .current("stat", path) }
        let size = Int(info.st_size)
        guard size <= limit else { throw FileError(path: path, operation: "read", reason: "\(size) bytes is more than the \(limit) allowed") }
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        while offset < size {
            let count = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + offset, size - offset) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw .current("read", path) }
            offset += count
        }
        return bytes
    }

    public static func makeDirectory(_ path: String) throws(FileError) {
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw .current("create directory", path) }
    }
}
