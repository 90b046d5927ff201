import Foundation
import CoreMetrics
import Metrics

/// The hub's figures, through swift-metrics (`govex hub` exports them for Prometheus when
/// `[metrics] listen` is set).
struct HubMetrics: Sendable {
    static let shared = HubMetrics()

    let recordsAccepted = Counter(label: "govex_hub_records_accepted_total")
    let queueBatches = Gauge(label: "govex_hub_merge_queue_batches")
    let queueRecords = Gauge(label: "govex_hub_merge_queue_records")
    let queueOldestAge = Gauge(label: "govex_hub_merge_queue_oldest_seconds")
    let mergedBatches = Counter(label: "govex_hub_merged_batches_total")
    let mergeFailures = Counter(label: "govex_hub_merge_failures_total")

    /// A pushed batch, by node and by what the hub decided (accepted, rejected, replay, sequence_gap, …).
    func ingested(_ decision: String, node: String, records: Int) {
        Counter(label: "govex_hub_batches_total", dimensions: [("node", node), ("decision", decision)]).increment()
        if decision == "accepted" {
            recordsAccepted.increment(by: records)
            Gauge(label: "govex_hub_node_last_push_timestamp_seconds", dimensions: [("node", node)]).record(time(nil))
        }
    }

    func queue(batches: Int, records: Int, oldestAge: Double) {
        queueBatches.record(batches)
        queueRecords.record(records)
        queueOldestAge.record(oldestAge)
    }

    func merged(batches: Int) { mergedBatches.increment(by: batches) }

    func mergeFailed() { mergeFailures.increment() }
}
