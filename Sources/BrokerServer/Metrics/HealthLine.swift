import CommitLog
import CoreMetrics
import Foundation
import Logging
import NIOCore

/// Flush latency and group-commit size as swift-metrics histograms (one observation per group
/// commit, on the appender thread).
struct StorageMetrics: StorageObserver {
    let flush: CoreMetrics.Timer
    let batches: CoreMetrics.Recorder

    init(factory: any MetricsFactory) {
        flush = CoreMetrics.Timer(label: "petrel_log_flush_duration_seconds", dimensions: [], factory: factory)
        batches = CoreMetrics.Recorder(label: "petrel_group_commit_batches", dimensions: [], aggregate: true, factory: factory)
    }

    func groupCommitted(batches count: Int, nanoseconds: Int) {
        flush.recordNanoseconds(Int64(nanoseconds))
        batches.record(count)
    }
}

/// `petrel serve` logs one health line per minute at info level: throughput in and out over the
/// minute, connections, the largest consumer-group lag.
final class HealthLine: @unchecked Sendable {
    private let interval: UInt64
    private let collector: MetricsCollector
    private let logger: Logger
    // Maintenance thread only.
    private var last: MetricsCollector.Summary
    private var lastAt: UInt64

    init?(collector: MetricsCollector?, intervalMs: Int64, logger: Logger) {
        guard let collector else { return nil }
        self.interval = UInt64(max(100, intervalMs)) * 1_000_000
        self.collector = collector
        self.logger = logger
        self.last = collector.summary()
        self.lastAt = DispatchTime.now().uptimeNanoseconds
    }

    func logIfDue() {
        let now = DispatchTime.now().uptimeNanoseconds
        guard now &- lastAt >= interval else { return }
        let current = collector.summary()
        let seconds = Double(now &- lastAt) / 1e9
        func rate(_ a: Int, _ b: Int) -> String { String(format: "%.1f", Double(max(0, a &- b)) / seconds) }
        let connections = collector.connectionStatistics
        var metadata: Logger.Metadata = [
            "messages_in_per_sec": "\(rate(current.messagesIn, last.messagesIn))",
            "bytes_in_per_sec": "\(rate(current.bytesIn, last.bytesIn))",
            "bytes_out_per_sec": "\(rate(current.bytesOut, last.bytesOut))",
            "connections": "\(connections.active)",
            "connections_refused": "\(connections.refusedTotal + connections.refusedPerIp)",
            "max_lag": "\(current.maxLag)",
        ]
        if !current.maxLagGroup.isEmpty { metadata["max_lag_group"] = "\(current.maxLagGroup)" }
        logger.info("health", metadata: metadata)
        last = current
        lastAt = now
    }
}
