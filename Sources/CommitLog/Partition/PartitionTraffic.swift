import Synchronization

/// Per-partition traffic counters for metrics (Kafka's BytesInPerSec / MessagesInPerSec /
/// BytesOutPerSec, per topic): relaxed atomic adds once per batch or fetch response, read at scrape
/// time. No lock, no allocation on the data path.
public final class PartitionTraffic: Sendable {
    private let bytesInCount = Atomic<Int>(0)
    private let messagesInCount = Atomic<Int>(0)
    private let bytesOutCount = Atomic<Int>(0)

    public init() {}

    /// One appended batch of `messages` records and `bytes` bytes.
    @inline(__always)
    public func recordIn(bytes: Int, messages: Int) {
        bytesInCount.wrappingAdd(bytes, ordering: .relaxed)
        messagesInCount.wrappingAdd(messages, ordering: .relaxed)
    }

    /// Log bytes sent to a consumer.
    @inline(__always)
    public func recordOut(bytes: Int) {
        bytesOutCount.wrappingAdd(bytes, ordering: .relaxed)
    }

    public var bytesIn: Int { bytesInCount.load(ordering: .relaxed) }
    public var messagesIn: Int { messagesInCount.load(ordering: .relaxed) }
    public var bytesOut: Int { bytesOutCount.load(ordering: .relaxed) }
}

/// Appender and retention counters for metrics: written by one thread each, read at scrape time.
public final class StorageStatistics: Sendable {
    private let flushes = Atomic<Int>(0)
    private let flushNanos = Atomic<Int>(0)
    private let flushedBatches = Atomic<Int>(0)
    private let groups = Atomic<Int>(0)
    private let groupBatches = Atomic<Int>(0)
    private let retentionRuns = Atomic<Int>(0)
    private let retentionDeletedSegments = Atomic<Int>(0)
    /// Optional fine-grained observer (latency histograms), installed before the appender starts.
    public let observer = Mutex<(any StorageObserver)?>(nil)

    public init() {}

    func recordGroup(batches: Int) {
        groups.wrappingAdd(1, ordering: .relaxed)
        groupBatches.wrappingAdd(batches, ordering: .relaxed)
    }

    func recordGroupCommit(batches: Int, nanoseconds: Int) {
        flushes.wrappingAdd(1, ordering: .relaxed)
        flushNanos.wrappingAdd(nanoseconds, ordering: .relaxed)
        flushedBatches.wrappingAdd(batches, ordering: .relaxed)
    }

    func recordRetention(deletedSegments: Int) {
        retentionRuns.wrappingAdd(1, ordering: .relaxed)
        retentionDeletedSegments.wrappingAdd(deletedSegments, ordering: .relaxed)
    }

    /// Group commits (one fdatasync submit covering every batch waiting for it).
    public var groupCommitCount: Int { flushes.load(ordering: .relaxed) }
    /// Total time spent in group-commit fdatasync submits.
    public var groupCommitNanoseconds: Int { flushNanos.load(ordering: .relaxed) }
    /// Batches acknowledged by group commits.
    public var groupCommitBatches: Int { flushedBatches.load(ordering: .relaxed) }
    /// Append groups (one write submit each) and the batches they carried.
    public var appendGroupCount: Int { groups.load(ordering: .relaxed) }
    public var appendGroupBatches: Int { groupBatches.load(ordering: .relaxed) }
    /// Retention checks run and segments they deleted.
    public var retentionRunCount: Int { retentionRuns.load(ordering: .relaxed) }
    public var retentionDeletedSegmentCount: Int { retentionDeletedSegments.load(ordering: .relaxed) }
}

/// Receives per-group-commit observations (flush latency, batches per group commit) on the
/// appender thread, once per fdatasync round, never per record.
public protocol StorageObserver: Sendable {
    func groupCommitted(batches: Int, nanoseconds: Int)
}
