import Foundation

/// What an agent's spool holds when it pushes, sent with each batch in the `Govex-Spool`
/// header: the hub shows it (`govex hub status`, a metric) as what the agent says, for the
/// backlog behind a node's pushes; nothing the hub decides depends on it.
public struct SpoolReport: Codable, Sendable, Equatable {
    /// Batches waiting behind the one sent, and their size.
    public var batches: Int
    public var bytes: Int
    /// How long the oldest unacknowledged batch (perhaps the one sent) has waited.
    public var oldestAgeSeconds: Int
    /// The spool is full: the agent's capture is paused.
    public var full: Bool

    public static let header = "Govex-Spool"

    enum CodingKeys: String, CodingKey {
        case batches, bytes, full
        case oldestAgeSeconds = "oldest_age_seconds"
    }

    public init(batches: Int, bytes: Int, oldestAgeSeconds: Int, full: Bool) {
        self.batches = batches
        self.bytes = bytes
        self.oldestAgeSeconds = oldestAgeSeconds
        self.full = full
    }

    public var headerValue: String {
        String(decoding: (try? JSONEncoder().encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// The report in a header, or nil when it is missing, too long, malformed or out of range.
    public init?(headerValue: String?) {
        guard let headerValue, headerValue.utf8.count <= 256,
              let report = try? JSONDecoder().decode(SpoolReport.self, from: Data(headerValue.utf8)),
              report.batches >= 0, report.bytes >= 0, (0...(100 * 365 * 86_400)).contains(report.oldestAgeSeconds) else { return nil }
        self = report
    }
}
