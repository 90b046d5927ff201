import Foundation
import GovexAPI
import GovexPostgres
import Metrics

/// The spool backlog each agent reports with its pushes (`Govex-Spool`): kept in
/// govex.nodes for `govex hub status` and as per-node gauges. Written at most every few
/// seconds per node, and at once when the spool fills or empties, so that a stream of
/// pushes does not add a write to each.
actor NodeBacklog {
    private let pool: ConnectionPool
    private var written: [String: (report: SpoolReport, at: ContinuousClock.Instant)] = [:]
    static let interval: Duration = .seconds(5)

    init(pool: ConnectionPool) { self.pool = pool }

    func record(_ report: SpoolReport, node: String, now: ContinuousClock.Instant = .now) async {
        let dimensions = [("node", node)]
        Gauge(label: "govex_hub_node_spool_batches", dimensions: dimensions).record(report.batches)
        Gauge(label: "govex_hub_node_spool_oldest_age_seconds", dimensions: dimensions).record(report.oldestAgeSeconds)
        guard Self.due(previous: written[node], report: report, now: now) else { return }
        written[node] = (report, now)
        // A report lost to a busy database is only a stale figure: the next push brings another.
        _ = try? await pool.withConnection { sql in
            try await sql.query("""
                UPDATE govex.nodes SET spool_batches = $2, spool_bytes = $3, spool_oldest_age_seconds = $4, spool_full = $5, spool_reported_at = now()
                WHERE node_id = $1
                """, [node, String(report.batches), String(report.bytes), String(report.oldestAgeSeconds), report.full ? "t" : "f"])
        }
    }

    static func due(previous: (report: SpoolReport, at: ContinuousClock.Instant)?, report: SpoolReport, now: ContinuousClock.Instant) -> Bool {
        guard let previous else { return true }
        return now - previous.at >= interval || previous.report.full != report.full || (previous.report.batches == 0) != (report.batches == 0)
    }
}
