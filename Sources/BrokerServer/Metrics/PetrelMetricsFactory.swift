import CoreMetrics
import Prometheus

/// swift-metrics → swift-prometheus, with Petrel's help texts and buckets: metrics made through
/// swift-metrics (request timers, error counters, flush latency) get `# HELP` lines like the ones
/// the scrape-time collector registers, so the exposition passes Prometheus' lint.
struct PetrelMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    private let fallback: PrometheusMetricsFactory

    static let help: [String: String] = [
        "petrel_request_duration_seconds": "Time from a request being read to its response being ready, per API.",
        "petrel_produce_errors_total": "Produce partition responses with an error, by error code.",
        "petrel_fetch_errors_total": "Fetch partition responses with an error, by error code.",
        "petrel_log_flush_duration_seconds": "Duration of each group commit (one fdatasync round for every batch waiting).",
        "petrel_group_commit_batches": "Record batches acknowledged by one group commit.",
    ]

    static let durationBuckets: [String: [Duration]] = [
        "petrel_request_duration_seconds": [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
        ],
        "petrel_log_flush_duration_seconds": [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(5),
        ],
    ]

    static let valueBuckets: [String: [Double]] = [
        "petrel_group_commit_batches": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
    ]

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        self.fallback = PrometheusMetricsFactory(registry: registry)
    }

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: Self.help[label] ?? "")
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        let buckets = Self.valueBuckets[label] ?? [1, 10, 100, 1000, 10000]
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let buckets = Self.durationBuckets[label] ?? Self.durationBuckets["petrel_request_duration_seconds"]!
        return registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets)
    }

    func destroyCounter(_ handler: any CounterHandler) { fallback.destroyCounter(handler) }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { fallback.destroyFloatingPointCounter(handler) }
    func destroyMeter(_ handler: any MeterHandler) { fallback.destroyMeter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) { fallback.destroyRecorder(handler) }
    func destroyTimer(_ handler: any TimerHandler) { fallback.destroyTimer(handler) }
}
