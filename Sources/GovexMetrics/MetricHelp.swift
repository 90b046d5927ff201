/// `# HELP` for every govex metric: swift-metrics has no place for it, so the exposition is
/// annotated as it is served. Units are in the names (`_seconds`, `_bytes`, `_total`).
public enum MetricHelp {
    public static let text: [String: String] = [
        // Agent: capture and spool.
        "govex_capture_batches_spooled_total": "Batches sealed into the spool by capture.",
        "govex_capture_records_spooled_total": "Change records sealed into the spool by capture.",
        "govex_capture_lag_bytes": "WAL bytes between the server's position and what capture has sealed.",
        "govex_capture_lag_seconds": "Seconds between a captured transaction's commit and its capture.",
        "govex_capture_paused": "1 while capture is paused because the spool is full.",
        "govex_slot_retained_wal_bytes": "WAL the replication slot keeps on the department's server, in bytes.",
        "govex_spool_batches": "Batches in the spool that the hub has not acknowledged.",
        "govex_spool_bytes": "Bytes of batches in the spool that the hub has not acknowledged.",
        "govex_spool_oldest_batch_age_seconds": "Age of the oldest batch waiting in the spool, in seconds.",
        "govex_alarms_total": "Alarms raised (also logged at error priority).",
        // Agent: pushing.
        "govex_push_batches_total": "Batches the hub acknowledged with a verified receipt.",
        "govex_push_failures_total": "Push rounds that failed (hub unreachable or refusing); retried with backoff.",
        "govex_push_last_success_timestamp_seconds": "Unix time of the last push the hub acknowledged.",
        // Agent: applying subscriptions.
        "govex_apply_deliveries_total": "Deliveries applied to the subscriber's table, by subscription.",
        "govex_apply_last_success_timestamp_seconds": "Unix time a delivery was last applied, by subscription.",
        "govex_apply_lag_seconds": "Seconds from the provider sealing the last applied batch to its rows being applied here, by subscription.",
        "govex_dead_letters_total": "Deliveries that became dead letters after their retries.",
        "govex_dead_letters_waiting": "1 while a subscription waits on a dead letter, by subscription.",
        "govex_discrepancies_open": "Open discrepancies fed back to this department.",
        // Hub.
        "govex_hub_batches_total": "Batches pushed to the hub, by node and by what the hub decided.",
        "govex_hub_records_accepted_total": "Change records in batches the hub accepted.",
        "govex_hub_node_last_push_timestamp_seconds": "Unix time of the last batch the hub accepted from a node.",
        "govex_hub_node_spool_batches": "Batches waiting in a node's spool, as the node reported with its last push.",
        "govex_hub_node_spool_oldest_age_seconds": "Age of the oldest batch in a node's spool, as the node reported with its last push.",
        "govex_hub_merge_queue_batches": "Accepted batches waiting to be merged into the hub's copy.",
        "govex_hub_merge_queue_records": "Records in batches waiting to be merged.",
        "govex_hub_merge_queue_oldest_seconds": "Age of the oldest batch waiting to be merged, in seconds.",
        "govex_hub_merged_batches_total": "Batches merged into the hub's copy and golden records.",
        "govex_hub_merge_failures_total": "Merge rounds that failed and will be retried.",
        "govex_hub_refusals_total": "Requests the hub refused (each audited), by reason.",
    ]

    /// `exposition` with a `# HELP` line before each `# TYPE` line of a known metric.
    public static func annotate(_ exposition: [UInt8]) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(exposition.count + 4096)
        for line in exposition.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if line.starts(with: Array("# TYPE ".utf8)) {
                let name = String(decoding: line.dropFirst(7).prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
                if let help = text[name] { result += Array("# HELP \(name) \(help)\n".utf8) }
            }
            result += line
            result.append(UInt8(ascii: "\n"))
        }
        if exposition.last == UInt8(ascii: "\n") || exposition.isEmpty { result.removeLast() }
        return result
    }
}
