import CoreMetrics
import Metrics

/// The capture loop's figures, through swift-metrics (the agent exports them for Prometheus).
struct CaptureMetrics: Sendable {
    let batchesSpooled = Counter(label: "govex_capture_batches_spooled_total")
    let recordsSpooled = Counter(label: "govex_capture_records_spooled_total")
    let spoolBatches = Gauge(label: "govex_spool_batches")
    let spoolBytes = Gauge(label: "govex_spool_bytes")
    let spoolOldestAge = Gauge(label: "govex_spool_oldest_batch_age_seconds")
    let lagBytes = Gauge(label: "govex_capture_lag_bytes")
    let lagSeconds = Gauge(label: "govex_capture_lag_seconds")
    let retainedWAL = Gauge(label: "govex_slot_retained_wal_bytes")
    let paused = Gauge(label: "govex_capture_paused")
    let alarms = Counter(label: "govex_alarms_total")
}
