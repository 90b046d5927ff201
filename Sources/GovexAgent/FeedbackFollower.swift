import Foundation
import GovexAPI
import GovexApply
import GovexPostgres
import GovexWire
import Metrics

/// Keeps the department's copy of the discrepancies it is involved in: polls the hub's
/// feedback stream (`GET /v1/discrepancies?after=`) and writes each change into
/// `govex.discrepancies` in the department's own database, with the stream position, in one
/// transaction — so the DBA can query them, join them with the business tables, and
/// `govex discrepancies` lists them.
struct FeedbackFollower: Sendable {
    let client: HubClient
    let conninfo: String
    let nodeID: String
    let interval: Duration
    let log: @Sendable (Int, String) -> Void

    func run() async {
        var failures = 0
        var reportedFailure = ""
        while !stopRequested {
            do {
                try await PostgresConnection.with(conninfo, name: "govex-feedback") { sql in
                    try await OwnTables.prepare(OwnTables.forFeedback, in: sql)
                    while !stopRequested {
                        let more = try await pollOnce(sql)
                        failures = 0
                        reportedFailure = ""
                        if !more { await idle(for: interval) }
                    }
                }
            } catch {
                guard !stopRequested else { return }
                failures += 1
                // The same failure every few seconds is logged once, not every time.
                if "\(error)" != reportedFailure {
                    log(4, "discrepancy feedback: \(error); retrying with backoff")
                    reportedFailure = "\(error)"
                }
                await idle(for: BatchPusher.backoff(failures: failures))
            }
        }
    }

    /// Fetches and stores one page; true when the hub may have more at once.
    func pollOnce(_ sql: PostgresConnection) async throws -> Bool {
        let through = Int64(try await sql.query("SELECT through FROM govex.feedback_cursor").rows.first?[0] ?? "0") ?? 0
        let response: HubClient.Response
        do {
            response = try await client.get(HubRoute.discrepancies(after: through, limit: 500), limit: 16 << 20)
        } catch {
            throw HubUnreachable(description: "the hub is unreachable (\(error))")
        }
        guard response.status == 200 else { throw DeliveryError("the hub answered HTTP \(response.status): \(response.text.prefix(300))") }
        let page = try JSONDecoder().decode(DiscrepancyPage.self, from: Data(response.body))
        guard !page.discrepancies.isEmpty else { return false }
        let opened = try await sql.transaction {
            let counted = try await sql.query("""
                WITH page AS (
                    SELECT * FROM jsonb_to_recordset($1::jsonb -> 'discrepancies') AS x(id bigint, change bigint, subject text, key text, field text,
                        kind text, authority text, authority_value text, authority_value_shown boolean, reporting_node text, reported_value text,
                        reported_value_shown boolean, reason text, status text, first_seen timestamptz, last_seen timestamptz, resolved_at timestamptz)
                ), stored AS (
                    INSERT INTO govex.discrepancies AS d (id, change, subject, key, field, kind, role, authority, authority_value, authority_value_shown,
                        reporting_node, reported_value, reported_value_shown, reason, status, first_seen, last_seen, resolved_at)
                    SELECT id, change, subject, key, field, kind, CASE WHEN reporting_node = $2 THEN 'reporter' ELSE 'authority' END, authority,
                        authority_value, authority_value_shown, reporting_node, reported_value, reported_value_shown, reason, status, first_seen,
                        last_seen, resolved_at
                    FROM page
                    ON CONFLICT (id) DO UPDATE SET change = EXCLUDED.change, authority_value = EXCLUDED.authority_value,
                        authority_value_shown = EXCLUDED.authority_value_shown, reported_value = EXCLUDED.reported_value,
                        reported_value_shown = EXCLUDED.reported_value_shown, reason = EXCLUDED.reason, status = EXCLUDED.status,
                        last_seen = EXCLUDED.last_seen, resolved_at = EXCLUDED.resolved_at, received_at = now()
                    WHERE d.change < EXCLUDED.change
                    RETURNING d.status
                )
                SELECT count(*) FILTER (WHERE status = 'open'), count(*) FILTER (WHERE status = 'resolved') FROM stored
                """, [response.text, nodeID]).rows.first
            try await sql.query("""
                INSERT INTO govex.feedback_cursor (through) VALUES ($1)
                ON CONFLICT (only_row) DO UPDATE SET through = EXCLUDED.through, received_at = now()
                """, [String(page.through)])
            return (Int(counted?[0] ?? "") ?? 0, Int(counted?[1] ?? "") ?? 0)
        }
        let open = Int(try await sql.query("SELECT count(*) FROM govex.discrepancies WHERE status = 'open'").rows.first?[0] ?? "") ?? 0
        Gauge(label: "govex_discrepancies_open").record(open)
        log(5, "discrepancy feedback from the hub: \(opened.0) open or updated, \(opened.1) resolved; \(open) open in all "
            + "(govex discrepancies list, or SELECT … FROM govex.discrepancies)")
        return page.discrepancies.count >= 500
    }
}
