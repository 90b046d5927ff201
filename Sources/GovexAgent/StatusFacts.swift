import Foundation
import GovexApply
import GovexCapture
import GovexPostgres

extension StatusReport.Facts {
    /// Reads what `govex status` assesses: the status file, the spool directory and, from
    /// the department's database, the slot and the dead letters. Nothing here writes.
    public static func gather(_ configuration: AgentConfiguration, now: Int64 = Int64(time(nil))) async -> StatusReport.Facts {
        let status = try? AgentStatus.read(dataDirectory: configuration.dataDirectory)
        // kill(pid, 0) asks whether the process exists; EPERM means it does, as another user.
        let alive = status.map { kill($0.pid, 0) == 0 || errno == EPERM } ?? false
        let entries = (try? Spool.entries(in: configuration.dataDirectory + "/spool")) ?? []
        var facts = StatusReport.Facts(
            node: configuration.nodeID, now: now, status: status, processAlive: alive, publishes: !configuration.publish.isEmpty,
            hubConfigured: configuration.hubURL != nil,
            spool: Outbox.SpoolFigures(entries: entries, limits: configuration.spool, now: Int(now)), slot: nil, databaseError: nil,
            retainedWALAlarm: Int64(configuration.retainedWALAlarm), subscriptionsConfigured: configuration.subscribe.map(\.resource))
        do {
            try await PostgresConnection.with(configuration.conninfo, name: "govex-status") { sql in
                if facts.publishes {
                    let rows = try await sql.query("""
                        SELECT active, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::int8,
                               pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::int8
                        FROM pg_catalog.pg_replication_slots WHERE slot_name = $1
                        """, [configuration.slot]).rows
                    facts.slot = StatusReport.Slot(name: configuration.slot, exists: !rows.isEmpty, active: rows.first?[0] == "t",
                                                   retainedWALBytes: Int64(rows.first?[1] ?? "") ?? 0, lagBytes: Int64(rows.first?[2] ?? "") ?? 0)
                }
                if !configuration.subscribe.isEmpty, try await OwnTables.missing([OwnTables.deadLetters], in: sql).isEmpty {
                    facts.deadLetters = try await DeadLetters.list(status: .dead, on: sql).map {
                        StatusReport.DeadLetterFact(id: $0.id, subscription: $0.subscription, resource: $0.resource)
                    }
                }
            }
        } catch {
            facts.databaseError = ApplyError.loggable(error)
        }
        return facts
    }
}
