import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Lines for journald on stderr: `<priority>component: message`, one `write` each so lines
/// from concurrent tasks never interleave. systemd reads the `<n>` prefix as the syslog
/// priority (SyslogLevelPrefix=yes), and a terminal still shows a readable line.
public struct Journal: Sendable {
    /// Syslog priorities, as journald filters them (`journalctl -p warning`).
    public enum Priority: Int, Sendable, Comparable {
        case critical = 2, error = 3, warning = 4, notice = 5, info = 6, debug = 7

        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

        public init(_ level: Logger.Level) {
            switch level {
            case .trace, .debug: self = .debug
            case .info: self = .info
            case .notice: self = .notice
            case .warning: self = .warning
            case .error: self = .error
            case .critical: self = .critical
            }
        }
    }

    /// What each line names as its writer: `govex agent`, `govex hub`, `govex capture`.
    public let component: String

    public init(_ component: String) { self.component = component }

    public func write(_ priority: Priority, _ message: String) {
        let line = "<\(priority.rawValue)>\(component): \(Self.escaped(message))\n"
        _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    }

    /// The integer form the older call sites use (journald's numbers).
    public func write(_ priority: Int, _ message: String) {
        write(Priority(rawValue: min(max(priority, 2), 7)) ?? .error, message)
    }

    /// Control characters as `\u{..}`: nothing logged (a node's text, an error from a
    /// library) can forge a log line or drive a terminal.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isEscaped) else { return text }
        var result = ""
        result.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            if isEscaped(scalar) {
                result += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func isEscaped(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}"
    }

    /// A swift-log logger writing through this journal: what libraries (the web framework,
    /// the service group) log gets the same form as govex's own lines.
    public func logger(label: String, level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: label) { label in JournalLogHandler(journal: self, label: label) }
        logger.logLevel = level
        return logger
    }
}

/// swift-log's handler for `Journal`: the label in brackets names the library, metadata
/// follows as `key=value`.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    let journal: Journal
    let label: String

    public init(journal: Journal, label: String) {
        self.journal = journal
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = merged.keys.sorted().map { "\($0)=\(merged[$0]!)" }
        let prefix = label.hasPrefix("govex") ? "" : "[\(label)] "
        journal.write(Journal.Priority(event.level), prefix + "\(event.message)" + (fields.isEmpty ? "" : " " + fields.joined(separator: " ")))
    }
}
