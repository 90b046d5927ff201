/// What `govex status` and `govex hub status` report, for people and for monitoring: a
/// level (its exit status: 0 ok, 1 warning, 2 critical) and findings, each naming what to do.
public enum HealthLevel: String, Codable, Sendable, Comparable {
    case ok, warning, critical

    public var exitCode: Int32 { self == .ok ? 0 : self == .warning ? 1 : 2 }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.exitCode < rhs.exitCode }
}

public struct HealthFinding: Codable, Sendable, Equatable {
    public let level: HealthLevel
    public let subject: String
    public let message: String

    public init(level: HealthLevel, subject: String, message: String) {
        self.level = level
        self.subject = subject
        self.message = message
    }
}

public enum HealthText {
    /// One line for the overall level, one per finding; the levels in colour when `colour`.
    public static func render(title: String, level: HealthLevel, findings: [HealthFinding], colour: Bool) -> String {
        func paint(_ level: HealthLevel, _ text: String) -> String {
            guard colour else { return text }
            return "\u{1B}[\(level == .ok ? "32" : level == .warning ? "33" : "31")m\(text)\u{1B}[0m"
        }
        var lines = [title + ": " + paint(level, level.rawValue.uppercased())]
        for finding in findings {
            let label = finding.level.rawValue + String(repeating: " ", count: max(0, 8 - finding.level.rawValue.count))
            lines.append("  " + paint(finding.level, label) + " \(finding.subject): \(finding.message)")
        }
        return lines.joined(separator: "\n")
    }

    /// A size as a person reads it: 12 KiB, 3 MiB.
    public static func bytes(_ bytes: Int64) -> String {
        bytes >= 1 << 20 ? "\(bytes / (1 << 20)) MiB" : "\(bytes / 1024) KiB"
    }

    public static func bytes(_ bytes: Int) -> String { self.bytes(Int64(bytes)) }

    /// A duration as a person reads it: 45 s, 7 min, 3 h.
    public static func duration(_ seconds: Int64) -> String {
        switch seconds {
        case ..<120: return "\(max(0, seconds)) s"
        case ..<7200: return "\(seconds / 60) min"
        default: return "\(seconds / 3600) h"
        }
    }
}
