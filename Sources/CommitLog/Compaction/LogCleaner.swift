import DiskIO
import RecordFormat
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The cleaner's broker settings (Kafka `log.cleaner.*`).
public struct CleanerConfiguration: Sendable, Equatable {
    /// Kafka: `log.cleaner.enable`. Default: true.
    public var enabled = true
    /// Memory for the key → offset map, shared by the cleaner threads (Petrel runs one).
    /// Kafka: `log.cleaner.dedupe.buffer.size`. Default: 128 MiB.
    public var dedupeBufferBytes = 128 << 20
    /// Write buffer for cleaned segments. Kafka: `log.cleaner.io.buffer.size`. Default: 512 KiB.
    public var ioBufferBytes = 512 << 10
    /// Sleep when no partition needs cleaning; also the base of the per-partition retry backoff
    /// after an error. Kafka: `log.cleaner.backoff.ms`. Default: 15 s.
    public var backoffMs: Int64 = 15_000
    /// Read throttle for the cleaner. Kafka: `log.cleaner.io.max.bytes.per.second`. Default: unlimited.
    public var ioMaxBytesPerSecond: Double = .infinity

    public init() {}
}

/// Log compaction for every partition whose `cleanup.policy` contains `compact` (including
/// `__consumer_offsets`), on one background thread (Kafka `LogCleaner` with one `CleanerThread`).
///
/// Each pass picks the eligible partition with the highest dirty ratio (`CompactionPlanner`), runs
/// one `CompactionRound` on it and records the new first dirty offset in `cleaner-offset-checkpoint`
/// (root of the data directory, Kafka's text checkpoint format). When nothing is eligible the thread
/// sleeps `log.cleaner.backoff.ms` (`wakeUp` cuts that short). A failure in one partition is logged
/// and counted, and that partition waits an exponential backoff (from `backoffMs`, at most 32×)
/// before it is tried again; other partitions are not affected.
///
/// Appends never wait for the cleaner: it reads closed segments through their descriptors, writes
/// new files, and takes the partition lock only to switch the segment list (`SegmentSwap`).
public final class LogCleaner: @unchecked Sendable {
    /// What one `cleanOnce` did.
    public struct Pass: Sendable {
        public var topicPartition: TopicPartition
        public var bytesRead: Int64
        public var bytesWritten: Int64
        public var recordsRemoved: Int64
        public var endOffset: Int64
        public var elapsedNanoseconds: UInt64
    }

    private struct PartitionState {
        var firstDirtyOffset: Int64?
        /// Earliest delete horizon written by a round; nil: none known.
        var pendingDeleteHorizonMs: Int64?
        var failures = 0
        var retryAtMs: Int64 = 0
    }

    private struct Shared {
        var partitions: [TopicPartition: PartitionState] = [:]
        var errorCount = 0
        var passes = 0
        var bytesRead: Int64 = 0
        var bytesWritten: Int64 = 0
        var busyNanoseconds: UInt64 = 0
        var stopping = false
        var wakeRequested = false
    }

    let manager: LogManager
    public let configuration: CleanerConfiguration
    let logger: Logger
    private let shared = Mutex(Shared())
    /// The map, reused by every round (cleaner thread, or a test calling `cleanOnce`).
    private let map: Mutex<KeyOffsetMap>
    private var thread: WorkerThread?
    /// Tests stop a swap at a step as if the process died there.
    let crashHook = Mutex<SegmentSwap.CrashHook?>(nil)

    private var checkpointPath: String { SegmentFileName.join(manager.dataDirectory, SegmentFileName.cleanerOffsetCheckpoint) }

    init(manager: LogManager, configuration: CleanerConfiguration, logger: Logger) {
        self.manager = manager
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "component"] = "log-cleaner"
        self.logger = logger
        self.map = Mutex(KeyOffsetMap(memoryBytes: configuration.dedupeBufferBytes))
        let checkpoint = (try? CheckpointFile.read(
            SegmentFileName.join(manager.dataDirectory, SegmentFileName.cleanerOffsetCheckpoint), io: manager.io)) ?? nil
        shared.withLock { s in
            for (topicPartition, offset) in checkpoint ?? [:] {
                s.partitions[topicPartition] = PartitionState(firstDirtyOffset: offset)
            }
        }
    }

    // MARK: Thread

    func start() {
        let worker = WorkerThread(name: "petrel-log-cleaner") { [self] in run() }
        thread = worker
        worker.start()
    }

    /// Stops the thread after the round in progress (cleaning is never cut mid-swap).
    func shutdown() {
        shared.withLock { $0.stopping = true }
        thread?.join()
        thread = nil
    }

    /// Makes the thread look for work now instead of at the end of its backoff.
    public func wakeUp() { shared.withLock { $0.wakeRequested = true } }

    private func run() {
        while !shared.withLock({ $0.stopping }) {
            if cleanOnce() != nil { continue }
            // Sleep backoffMs in short steps so shutdown and wakeUp are prompt.
            let deadline = manager.clock.monotonicNanoseconds() + UInt64(max(0, configuration.backoffMs)) * 1_000_000
            while true {
                let (stop, wake) = shared.withLock { s -> (Bool, Bool) in
                    defer { s.wakeRequested = false }
                    return (s.stopping, s.wakeRequested)
                }
                if stop || wake || manager.clock.monotonicNanoseconds() >= deadline { break }
                usleep(10_000)
            }
        }
    }

    // MARK: Statistics

    /// Rounds that failed (disk errors, corrupt batches); each is logged.
    public var errorCount: Int { shared.withLock { $0.errorCount } }
    /// Rounds completed.
    public var passCount: Int { shared.withLock { $0.passes } }
    /// Totals over completed rounds: bytes of log read, bytes written, time spent.
    public var totals: (bytesRead: Int64, bytesWritten: Int64, busyNanoseconds: UInt64) {
        shared.withLock { ($0.bytesRead, $0.bytesWritten, $0.busyNanoseconds) }
    }

    /// The first dirty offset recorded for a partition (its `cleaner-offset-checkpoint` entry).
    public func firstDirtyOffset(_ topicPartition: TopicPartition) -> Int64? {
        shared.withLock { $0.partitions[topicPartition]?.firstDirtyOffset }
    }

    // MARK: One pass

    /// Cleans the filthiest eligible partition once, on the calling thread; if that round fails
    /// (logged, counted, the partition backs off) the next eligible one is tried. Returns nil when no
    /// partition is eligible or every eligible one failed (see `errorCount`).
    @discardableResult
    public func cleanOnce() -> Pass? {
        let now = manager.clock.wallMilliseconds()
        var candidates: [(log: PartitionLog, plan: CompactionPlanner.Plan)] = []
        for log in manager.allLogs {
            let configuration = log.configuration
            guard configuration.cleanupPolicy.contains(.compact), !log.isOffline, !log.isReadOnly else { continue }
            let state = shared.withLock { $0.partitions[log.topicPartition] ?? PartitionState() }
            guard state.retryAtMs <= now else { continue }
            let plan = CompactionPlanner.plan(
                segments: segmentInfos(log), logStartOffset: log.logStartOffset, checkpoint: state.firstDirtyOffset,
                configuration: configuration, now: now, pendingDeleteHorizonMs: state.pendingDeleteHorizonMs)
            if plan.isEligible { candidates.append((log, plan)) }
        }
        // Overdue (max.compaction.lag.ms) first, then the highest dirty ratio.
        candidates.sort { ($0.plan.lagExceeded ? 1 : 0, $0.plan.ratio) > ($1.plan.lagExceeded ? 1 : 0, $1.plan.ratio) }
        for (log, plan) in candidates {
            switch clean(log, plan: plan, now: now) {
            case .cleaned(let pass): return pass
            case .failed: continue
            case .stop: return nil
            }
        }
        return nil
    }

    /// Runs passes until no partition is eligible (tests, benchmarks); returns them.
    @discardableResult
    public func cleanUntilIdle(maxPasses: Int = 1000) -> [Pass] {
        var passes: [Pass] = []
        while passes.count < maxPasses, let pass = cleanOnce() { passes.append(pass) }
        return passes
    }

    private enum Result {
        case cleaned(Pass)
        /// This partition failed or changed under the round; others may still be cleaned.
        case failed
        /// The test crash hook fired: behave as a dead process.
        case stop
    }

    private func clean(_ log: PartitionLog, plan: CompactionPlanner.Plan, now: Int64) -> Result {
        let topicPartition = log.topicPartition
        let started = manager.clock.monotonicNanoseconds()
        // The last batch of each active idempotent producer (writer state: read on the appender thread).
        let producers: [Int64: Int64] = manager.appender.perform {
            var lastOffsets: [Int64: Int64] = [:]
            for entry in log.writer.producers.sortedEntries { lastOffsets[entry.producerId] = entry.lastOffset }
            return lastOffsets
        }
        var round = CompactionRound(
            log: log, io: manager.io, logger: logger, now: now, producerLastOffsets: producers,
            ioBufferBytes: configuration.ioBufferBytes, crashHook: crashHook.withLock { $0 },
            throttle: configuration.ioMaxBytesPerSecond.isFinite ? IOThrottle(bytesPerSecond: configuration.ioMaxBytesPerSecond) : nil)
        round.abortedTransactions = log.allAbortedTransactions
        // Open transactions are not cleaned (Kafka: the first unstable offset bounds the cleanable range).
        var plan = plan
        let lastStable = log.lastStableOffset
        if lastStable < plan.firstUncleanableOffset {
            plan.firstUncleanableOffset = log.segmentBaseOffsets.last { $0 <= lastStable } ?? plan.firstDirtyOffset
            plan.firstDirtyOffset = min(plan.firstDirtyOffset, plan.firstUncleanableOffset)
        }
        let outcome: CompactionRound.Outcome
        do {
            outcome = try map.withLock { map in try round.run(plan: plan, map: &map) }
        } catch let interrupted as SegmentSwap.Interrupted {
            logger.warning("cleaning interrupted by the test crash hook", metadata: ["partition": "\(topicPartition)", "step": "\(interrupted.step)"])
            shared.withLock { $0.stopping = true }
            return .stop
        } catch let changed as CompactionRound.LogChanged {
            logger.debug("cleaning stopped: the log changed", metadata: ["partition": "\(topicPartition)", "reason": "\(changed)"])
            return .failed
        } catch {
            let retryMs = shared.withLock { s -> Int64 in
                s.errorCount += 1
                var state = s.partitions[topicPartition] ?? PartitionState()
                state.failures += 1
                let backoff = max(1, configuration.backoffMs) << Int64(min(5, state.failures - 1))
                state.retryAtMs = now + backoff
                s.partitions[topicPartition] = state
                return backoff
            }
            logger.error(
                "cleaning failed; will retry", metadata: ["partition": "\(topicPartition)", "error": "\(error)", "retryInMs": "\(retryMs)"])
            return .failed
        }
        let elapsed = manager.clock.monotonicNanoseconds() &- started
        shared.withLock { s in
            var state = s.partitions[topicPartition] ?? PartitionState()
            state.firstDirtyOffset = outcome.endOffset
            state.pendingDeleteHorizonMs = outcome.earliestDeleteHorizonMs
            state.failures = 0
            state.retryAtMs = 0
            s.partitions[topicPartition] = state
            s.passes += 1
            s.bytesRead += outcome.statistics.bytesRead
            s.bytesWritten += outcome.statistics.bytesWritten
            s.busyNanoseconds += elapsed
        }
        writeCheckpoint()
        let statistics = outcome.statistics
        logger.info(
            "cleaned partition",
            metadata: [
                "partition": "\(topicPartition)", "ratio": "\(plan.ratio)", "firstDirty": "\(plan.firstDirtyOffset)",
                "endOffset": "\(outcome.endOffset)", "segments": "\(statistics.segmentsRewritten)",
                "bytesRead": "\(statistics.bytesRead)", "bytesWritten": "\(statistics.bytesWritten)",
                "recordsRemoved": "\(statistics.recordsRemoved)", "ms": "\(elapsed / 1_000_000)",
            ])
        return .cleaned(Pass(
            topicPartition: topicPartition, bytesRead: statistics.bytesRead, bytesWritten: statistics.bytesWritten,
            recordsRemoved: statistics.recordsRemoved, endOffset: outcome.endOffset, elapsedNanoseconds: elapsed))
    }

    /// The planner's view of a partition's segments; reads the first batch header of each closed
    /// segment for `max.compaction.lag.ms` only when that is set.
    private func segmentInfos(_ log: PartitionLog) -> [CompactionPlanner.Segment] {
        let withLag = log.configuration.maxCompactionLagMs != .max
        let views = log.state.withLock { s -> [(LogSegment, Int64, Int64, Int64)] in
            s.segments.enumerated().map { index, segment in
                let end = index + 1 < s.segments.count ? s.segments[index + 1].baseOffset : s.highWatermark
                return (segment, end, segment.committedSize, segment.maxTimestamp)
            }
        }
        return views.enumerated().map { index, view in
            var first: Int64 = -1
            if withLag, index + 1 < views.count, view.2 > 0 {
                if let file = try? log.files.acquire(view.0) {
                    first = (try? BatchHeaderReader.header(io: manager.io, file: file, at: 0, end: view.2))?.maxTimestamp ?? -1
                }
            }
            return CompactionPlanner.Segment(
                baseOffset: view.0.baseOffset, endOffset: view.1, sizeBytes: view.2, largestTimestamp: view.3, firstBatchTimestamp: first)
        }
    }

    /// Writes `cleaner-offset-checkpoint` for the partitions that still exist. A failure is logged:
    /// the next round then re-cleans from the older offset.
    private func writeCheckpoint() {
        let existing = Set(manager.allLogs.map(\.topicPartition))
        let entries = shared.withLock { s -> [TopicPartition: Int64] in
            var entries: [TopicPartition: Int64] = [:]
            for (topicPartition, state) in s.partitions where existing.contains(topicPartition) {
                if let offset = state.firstDirtyOffset { entries[topicPartition] = offset }
            }
            return entries
        }
        do { try CheckpointFile.write(entries, to: checkpointPath, io: manager.io) } catch {
            logger.error("could not write the cleaner checkpoint", metadata: ["error": "\(error)"])
        }
    }
}

/// Limits the cleaner's read rate (`log.cleaner.io.max.bytes.per.second`) by sleeping.
final class IOThrottle: @unchecked Sendable {
    let bytesPerSecond: Double
    private var windowStart = SystemLogClock().monotonicNanoseconds()
    private var bytes: Double = 0

    init(bytesPerSecond: Double) { self.bytesPerSecond = max(1, bytesPerSecond) }

    func consume(_ count: Int) throws {
        bytes += Double(count)
        let elapsed = Double(SystemLogClock().monotonicNanoseconds() &- windowStart) / 1e9
        let needed = bytes / bytesPerSecond
        if needed > elapsed { usleep(UInt32(min(1.0, needed - elapsed) * 1e6)) }
        if elapsed > 1 {
            windowStart = SystemLogClock().monotonicNanoseconds()
            bytes = 0
        }
    }
}

extension LogManager {
    /// Creates the cleaner (`log.cleaner.enable`) and, with `startThread`, its background thread.
    /// The broker calls this once the logs are loaded; tests leave the thread off and call
    /// `cleanOnce`. Returns nil when disabled.
    @discardableResult
    public func startCleaner(_ configuration: CleanerConfiguration = CleanerConfiguration(), startThread: Bool = true) -> LogCleaner? {
        guard configuration.enabled else { return nil }
        let cleaner = LogCleaner(manager: self, configuration: configuration, logger: logger)
        let previous = cleanerSlot.withLock { slot -> LogCleaner? in
            defer { slot = cleaner }
            return slot
        }
        previous?.shutdown()
        if startThread { cleaner.start() }
        return cleaner
    }

    /// The cleaner, if `startCleaner` ran.
    public var cleaner: LogCleaner? { cleanerSlot.withLock { $0 } }

    /// Stops the cleaner thread (before shutdown flushes the logs).
    func stopCleaner() {
        let cleaner = cleanerSlot.withLock { $0 }
        cleaner?.shutdown()
    }
}
