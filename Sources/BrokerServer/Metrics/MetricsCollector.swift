import BrokerCore
import CommitLog
import DiskIO
import Foundation
import GroupCoordination
import Prometheus
import Synchronization
import URingIO

/// Collect-on-scrape: the data path only bumps relaxed atomics (per partition, per appender); a
/// scrape reads them, brings the registry's counters and gauges up to date, and renders the
/// registry (which also holds the swift-metrics histograms: request durations, flush latency).
final class MetricsCollector: Sendable {
    let registry: PrometheusCollectorRegistry
    private let broker: Broker
    private let connections: ConnectionLimiter
    private let io: any FileIO
    private let state = Mutex(ScrapeState())

    init(registry: PrometheusCollectorRegistry, broker: Broker, connections: ConnectionLimiter, io: any FileIO) {
        self.registry = registry
        self.broker = broker
        self.connections = connections
        self.io = io
    }

    /// One scrape in Prometheus' text exposition format.
    func scrape() -> [UInt8] {
        state.withLock { state in
            state.beginScrape()
            collect(into: state)
            state.endScrape(registry: registry)
        }
        return registry.emitToBuffer()
    }

    var connectionStatistics: ConnectionLimiter.Statistics { connections.statistics }

    /// Figures for the once-a-minute health line.
    struct Summary {
        var bytesIn = 0
        var messagesIn = 0
        var bytesOut = 0
        var maxLag: Int64 = 0
        var maxLagGroup = ""
    }

    func summary() -> Summary {
        var summary = Summary()
        for topic in broker.topics.allTopics {
            for log in topic.partitions {
                summary.bytesIn &+= log.traffic.bytesIn
                summary.messagesIn &+= log.traffic.messagesIn
                summary.bytesOut &+= log.traffic.bytesOut
            }
        }
        for entry in broker.groupCoordinator.committedOffsets() {
            guard let log = broker.topics.partition(entry.topic, entry.partition) else { continue }
            let lag = max(0, log.highWatermark - entry.offset)
            if lag > summary.maxLag {
                summary.maxLag = lag
                summary.maxLagGroup = entry.groupId
            }
        }
        return summary
    }

    private func collect(into s: ScrapeState) {
        let r = registry
        // Topics and partitions.
        for topic in broker.topics.allTopics {
            var bytesIn = 0
            var messagesIn = 0
            var bytesOut = 0
            for (index, log) in topic.partitions.enumerated() {
                bytesIn &+= log.traffic.bytesIn
                messagesIn &+= log.traffic.messagesIn
                bytesOut &+= log.traffic.bytesOut
                let labels = [("topic", topic.name), ("partition", String(index))]
                s.gauge(r, "petrel_log_size_bytes", labels, Double(log.sizeInBytes))
                s.gauge(r, "petrel_log_start_offset", labels, Double(log.logStartOffset))
                s.gauge(r, "petrel_log_end_offset", labels, Double(log.logEndOffset))
                s.gauge(r, "petrel_log_segments", labels, Double(log.segmentCount))
                s.gauge(r, "petrel_partition_offline", labels, log.storageStatus == .online ? 0 : 1)
            }
            let labels = [("topic", topic.name)]
            s.counter(r, "petrel_topic_bytes_in_total", labels, Double(bytesIn))
            s.counter(r, "petrel_topic_messages_in_total", labels, Double(messagesIn))
            s.counter(r, "petrel_topic_bytes_out_total", labels, Double(bytesOut))
        }
        // Consumer-group lag: high watermark minus the committed offset.
        var maxLag: [String: Int64] = [:]
        for entry in broker.groupCoordinator.committedOffsets() {
            guard let log = broker.topics.partition(entry.topic, entry.partition) else { continue }
            let lag = max(0, log.highWatermark - entry.offset)
            s.gauge(r, "petrel_consumer_group_lag", [("group", entry.groupId), ("topic", entry.topic), ("partition", String(entry.partition))], Double(lag))
            maxLag[entry.groupId] = max(maxLag[entry.groupId] ?? 0, lag)
        }
        for (group, lag) in maxLag { s.gauge(r, "petrel_consumer_group_max_lag", [("group", group)], Double(lag)) }
        // Connections.
        let connectionStats = connections.statistics
        s.gauge(r, "petrel_active_connections", [], Double(connectionStats.active))
        s.counter(r, "petrel_connections_accepted_total", [], Double(connectionStats.accepted))
        s.counter(r, "petrel_connections_refused_total", [("reason", "max.connections")], Double(connectionStats.refusedTotal))
        s.counter(r, "petrel_connections_refused_total", [("reason", "max.connections.per.ip")], Double(connectionStats.refusedPerIp))
        s.counter(r, "petrel_connections_idle_closed_total", [], Double(connectionStats.idleClosed))
        // KIP-227 fetch sessions.
        let sessions = broker.fetchSessions
        s.gauge(r, "petrel_fetch_sessions", [], Double(sessions.sessionCount))
        s.gauge(r, "petrel_fetch_session_partitions", [], Double(sessions.partitionCount))
        s.counter(r, "petrel_fetch_sessions_created_total", [], Double(sessions.createdCount))
        s.counter(r, "petrel_fetch_session_evictions_total", [], Double(sessions.evictionCount))
        s.counter(r, "petrel_quota_throttled_responses_total", [], Double(broker.clientQuotas.throttledCount))
        s.counter(r, "petrel_fetch_cold_reads_total", [], Double(PageCacheResidency.offloadedReads.load(ordering: .relaxed)))
        s.counter(r, "petrel_fetch_cold_read_bytes_total", [], Double(PageCacheResidency.offloadedBytes.load(ordering: .relaxed)))
        s.counter(r, "petrel_responses_paced_total", [], Double(EventLoopConnections.pacedResponses.load(ordering: .relaxed)))
        // Descriptors.
        let files = broker.logManager.files
        s.gauge(r, "petrel_open_fds", [], Double(ProcessStats.openDescriptorCount()))
        s.gauge(r, "petrel_max_fds", [], Double(ProcessStats.openFileLimit()))
        s.gauge(r, "petrel_segment_open_files", [], Double(files.openFileCount))
        s.gauge(r, "petrel_segment_open_files_budget", [], Double(files.capacity == .max ? -1 : files.capacity))
        s.counter(r, "petrel_segment_file_evictions_total", [], Double(files.evictionCount))
        // Appender, group commit, retention, cleaner.
        let storage = broker.logManager.statistics
        s.counter(r, "petrel_append_groups_total", [], Double(storage.appendGroupCount))
        s.counter(r, "petrel_append_group_batches_total", [], Double(storage.appendGroupBatches))
        s.counter(r, "petrel_retention_runs_total", [], Double(storage.retentionRunCount))
        s.counter(r, "petrel_retention_deleted_segments_total", [], Double(storage.retentionDeletedSegmentCount))
        if let cleaner = broker.logManager.cleaner {
            let totals = cleaner.totals
            s.counter(r, "petrel_cleaner_passes_total", [], Double(cleaner.passCount))
            s.counter(r, "petrel_cleaner_errors_total", [], Double(cleaner.errorCount))
            s.counter(r, "petrel_cleaner_read_bytes_total", [], Double(totals.bytesRead))
            s.counter(r, "petrel_cleaner_written_bytes_total", [], Double(totals.bytesWritten))
            s.counter(r, "petrel_cleaner_busy_seconds_total", [], Double(totals.busyNanoseconds) / 1e9)
        }
        // io_uring: submissions and the SQEs they carried (SQEs / submits = mean submission size).
        if let uring = io as? URingFileIO {
            let stats = uring.statistics
            s.counter(r, "petrel_io_uring_submits_total", [], Double(stats.batches))
            s.counter(r, "petrel_io_uring_enter_calls_total", [], Double(stats.enterCalls))
            s.counter(r, "petrel_io_uring_sqes_total", [], Double(stats.sqesSubmitted))
            s.counter(r, "petrel_io_uring_short_writes_total", [], Double(stats.shortWrites))
        }
        // Process.
        if let process = ProcessStats.read() {
            s.counter(r, "petrel_process_cpu_seconds_total", [], process.cpuSeconds)
            s.gauge(r, "petrel_process_resident_memory_bytes", [], Double(process.residentBytes))
        }
    }

    static let help: [String: String] = [
        "petrel_log_size_bytes": "Bytes of a partition's log segments.",
        "petrel_log_start_offset": "A partition's log start offset.",
        "petrel_log_end_offset": "A partition's log end offset (high watermark).",
        "petrel_log_segments": "Segments of a partition's log.",
        "petrel_partition_offline": "1 while a partition is offline or read-only after a disk error.",
        "petrel_topic_bytes_in_total": "Record batch bytes appended to a topic.",
        "petrel_topic_messages_in_total": "Records appended to a topic.",
        "petrel_topic_bytes_out_total": "Log bytes sent to consumers of a topic.",
        "petrel_consumer_group_lag": "High watermark minus the group's committed offset.",
        "petrel_consumer_group_max_lag": "The largest lag of a group over its partitions.",
        "petrel_active_connections": "Client connections open now.",
        "petrel_connections_accepted_total": "Client connections accepted.",
        "petrel_connections_refused_total": "Client connections closed at accept because a limit was reached.",
        "petrel_connections_idle_closed_total": "Client connections closed after connections.max.idle.ms without traffic.",
        "petrel_fetch_sessions": "Incremental fetch sessions in the cache (KIP-227).",
        "petrel_fetch_session_partitions": "Partitions held by the cached fetch sessions.",
        "petrel_fetch_sessions_created_total": "Incremental fetch sessions created.",
        "petrel_fetch_session_evictions_total": "Fetch sessions evicted to make room for another.",
        "petrel_quota_throttled_responses_total": "Responses throttled by a client quota.",
        "petrel_fetch_cold_reads_total": "Fetched log ranges not in the page cache, read into it on a reader thread before their sendfile.",
        "petrel_fetch_cold_read_bytes_total": "Bytes of those ranges.",
        "petrel_responses_paced_total": "Large responses written in pieces so the other connections on their event loop are served in between.",
        "petrel_open_fds": "File descriptors open in the process.",
        "petrel_max_fds": "The process' open-file limit.",
        "petrel_segment_open_files": "Segment files held open (petrel.log.open.files.max budget).",
        "petrel_segment_open_files_budget": "petrel.log.open.files.max (-1: unlimited).",
        "petrel_segment_file_evictions_total": "Inactive segment files closed to stay within the budget.",
        "petrel_append_groups_total": "Append groups written by the appender (one write submission each).",
        "petrel_append_group_batches_total": "Record batches written by append groups.",
        "petrel_retention_runs_total": "Retention checks run.",
        "petrel_retention_deleted_segments_total": "Segments deleted by retention.",
        "petrel_cleaner_passes_total": "Log cleaner rounds completed.",
        "petrel_cleaner_errors_total": "Log cleaner rounds that failed.",
        "petrel_cleaner_read_bytes_total": "Bytes of log read by the cleaner.",
        "petrel_cleaner_written_bytes_total": "Bytes written by the cleaner.",
        "petrel_cleaner_busy_seconds_total": "Time the cleaner spent cleaning.",
        "petrel_io_uring_submits_total": "io_uring submissions (batches of operations).",
        "petrel_io_uring_enter_calls_total": "io_uring_enter system calls.",
        "petrel_io_uring_sqes_total": "Submission-queue entries the kernel accepted.",
        "petrel_io_uring_short_writes_total": "io_uring writes that completed short and were re-submitted.",
        "petrel_process_cpu_seconds_total": "User and system CPU time of the broker process.",
        "petrel_process_resident_memory_bytes": "Resident memory of the broker process.",
    ]
}

/// The registry handles of the scrape-time metrics and the values last pushed into them.
final class ScrapeState: @unchecked Sendable {
    private struct Key: Hashable {
        var name: String
        var labels: [String]
    }

    private var counters: [Key: (counter: Counter, value: Double)] = [:]
    private var gauges: [Key: Gauge] = [:]
    private var seen: Set<Key> = []

    func beginScrape() { seen.removeAll(keepingCapacity: true) }

    private static func key(_ name: String, _ labels: [(String, String)]) -> Key {
        Key(name: name, labels: labels.flatMap { [$0.0, $0.1] })
    }

    private static func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: MetricsCollector.help[name] ?? "")
    }

    /// Brings a counter to `total`: increments by what was added since the last scrape. A total
    /// that went down (a topic deleted and created again) counts as a reset.
    func counter(_ registry: PrometheusCollectorRegistry, _ name: String, _ labels: [(String, String)], _ total: Double) {
        let key = Self.key(name, labels)
        seen.insert(key)
        if var entry = counters[key] {
            let delta = total >= entry.value ? total - entry.value : total
            if delta > 0 {
                if delta == delta.rounded(), delta < 9e15 { entry.counter.increment(by: Int64(delta)) } else { entry.counter.increment(by: delta) }
            }
            entry.value = total
            counters[key] = entry
        } else {
            let counter = registry.makeCounter(descriptor: Self.descriptor(name), labels: labels)
            if total > 0 {
                if total == total.rounded(), total < 9e15 { counter.increment(by: Int64(total)) } else { counter.increment(by: total) }
            }
            counters[key] = (counter, total)
        }
    }

    func gauge(_ registry: PrometheusCollectorRegistry, _ name: String, _ labels: [(String, String)], _ value: Double) {
        let key = Self.key(name, labels)
        seen.insert(key)
        let gauge: Gauge
        if let existing = gauges[key] {
            gauge = existing
        } else {
            gauge = registry.makeGauge(descriptor: Self.descriptor(name), labels: labels)
            gauges[key] = gauge
        }
        gauge.set(to: value)
    }

    /// Drops series not seen in this scrape (deleted topics and partitions, groups gone).
    func endScrape(registry: PrometheusCollectorRegistry) {
        for (key, gauge) in gauges where !seen.contains(key) {
            registry.unregisterGauge(gauge)
            gauges[key] = nil
        }
        for (key, entry) in counters where !seen.contains(key) {
            registry.unregisterCounter(entry.counter)
            counters[key] = nil
        }
    }
}

/// The process' CPU time, resident memory and descriptors, from /proc.
enum ProcessStats {
    static func read() -> (cpuSeconds: Double, residentBytes: Int)? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after "(comm)": state is field 3; utime 14, stime 15; rss 24 (pages).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 22, let utime = Double(fields[11]), let stime = Double(fields[12]), let rss = Int(fields[21]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ((utime + stime) / max(ticks, 1), rss * Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    static func openDescriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }

    static func openFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return -1 }
        return limit.rlim_cur >= UInt64(Int.max) ? -1 : Int(limit.rlim_cur)
    }
}
