import CoreMetrics
import Prometheus

/// The process's swift-metrics figures in Prometheus' text format, served at
/// `GET /metrics` on `address` (loopback or a management network only).
public enum PrometheusExport {
    /// Bootstraps swift-metrics (once per process: later calls keep the first registry)
    /// and starts the endpoint.
    public static func serve(on address: String) throws -> MetricsServer {
        let registry = bootstrapped.registry
        return try MetricsServer(address: address) { MetricHelp.annotate(registry.emitToBuffer()) }
    }

    private static let bootstrapped: Bootstrapped = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return Bootstrapped(registry: registry)
    }()

    private struct Bootstrapped: Sendable {
        let registry: PrometheusCollectorRegistry
    }
}
