import DiskIO
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One partition's log: its segments, high watermark and log start offset.
///
/// Readers (`read`, `offset(forTimestamp:)`, …) run on any thread, concurrently with the single
/// writer (`LogAppender`'s thread). What readers see — the segment list, each segment's committed size
/// and index entries, the high watermark, the log start offset — sits behind one lock, and only
/// completed appends are ever published there. The writer's own bookkeeping (the active segment,
/// next offset, recovery point, flush state, producer state, the appender's per-group scratch) is
/// in `writer` (`PartitionWriter`), touched only on the appender thread, or by `LogManager` while
/// the appender is not running.
public final class PartitionLog: @unchecked Sendable {
    public let topicPartition: TopicPartition
    /// The partition directory's path.
    public let directory: String
    /// Bytes and messages in/out, for metrics.
    public let traffic = PartitionTraffic()
    let io: any FileIO
    let clock: any LogClock
    let logger: Logger
    /// The descriptor budget this log's segments count against (`LogManager.files`).
    let files: SegmentFileCache
    /// Random choices of new segments (`LogManager.random`).
    let random: StoreRandom

    struct State {
        var configuration: LogConfiguration
        /// Ascending base offsets; the last is the active segment.
        var segments: [LogSegment]
        var highWatermark: Int64
        var logStartOffset: Int64
        var isOffline = false
        /// Out of disk space: appends fail, reads serve the published prefix (PartitionLog+DiskFull).
        var isReadOnly = false
        /// Deleted or shut down: appends fail, reads still see the data they saw.
        var isClosed = false
        /// First offset of the earliest open transaction as of the published appends (nil: none);
        /// the last stable offset is this or the high watermark (PartitionLog+Transactions).
        var firstUnstableOffset: Int64?
        /// Aborted transactions, ascending by marker offset (loaded from `.txnindex`, grown on abort).
        var abortedTransactions: [AbortedTransaction] = []
    }

    let state: Mutex<State>

    /// The writer's state (appender thread; see `PartitionWriter`).
    let writer: PartitionWriter

    /// Told when `deleteRecords` moved the log start offset, so the manager checkpoints it.
    var onLogStartOffsetChanged: (@Sendable (PartitionLog) -> Void)?
    /// Unlinks `.deleted` segment files after `file.delete.delay.ms` (set by `LogManager`; without
    /// one, removed segments are unlinked at once).
    var fileDeleter: SegmentFileDeleter?
    /// Held by whoever removes segments from the list and renames their files (retention,
    /// DeleteRecords, the cleaner's swap), so those never interleave. Never taken by appends or reads.
    let segmentFilesLock = Mutex(())

    init(
        topicPartition: TopicPartition, directory: String, configuration: LogConfiguration, segments: [LogSegment],
        logStartOffset: Int64, recoveryPoint: Int64, producers: ProducerStateManager = ProducerStateManager(), io: any FileIO,
        clock: any LogClock, logger: Logger, files: SegmentFileCache? = nil, random: StoreRandom? = nil
    ) {
        precondition(!segments.isEmpty, "a partition log has at least one segment")
        self.topicPartition = topicPartition
        self.directory = directory
        self.io = io
        self.clock = clock
        self.files = files ?? SegmentFileCache(io: io)
        self.random = random ?? StoreRandom()
        var logger = logger
        logger[metadataKey: "partition"] = "\(topicPartition)"
        self.logger = logger
        let active = segments[segments.count - 1]
        let writer = PartitionWriter(
            active: active, recoveryPoint: recoveryPoint, configuration: configuration, producers: producers,
            now: clock.wallMilliseconds())
        self.writer = writer
        self.state = Mutex(
            State(
                configuration: configuration, segments: segments, highWatermark: active.nextOffset,
                logStartOffset: logStartOffset))
        // Everything past the recovery point may still be only in the page cache.
        for segment in segments where segment.nextOffset > writer.recoveryPoint {
            segment.flushedSize = 0
            writer.unflushedSegments.append(segment)
        }
        // Only the active segment and unflushed ones keep their descriptor for sure.
        for segment in segments { segment.pinned = segment === active || writer.unflushedSegments.contains { $0 === segment } }
        self.files.register(segments)
    }

    // MARK: Public state

    public var configuration: LogConfiguration { state.withLock { $0.configuration } }

    /// Takes effect for the next append group (and the next segment, for index sizes).
    public func updateConfiguration(_ configuration: LogConfiguration) {
        state.withLock { $0.configuration = configuration }
    }

    public var logStartOffset: Int64 { state.withLock { $0.logStartOffset } }

    /// The log end offset of completed appends; readers never see bytes past it.
    public var highWatermark: Int64 { state.withLock { $0.highWatermark } }

    /// The log end offset: same as the high watermark on a single node once appends complete.
    public var logEndOffset: Int64 { highWatermark }

    /// Set after a fatal disk error (EIO, a failed sync); appends then fail with `.offline`.
    public var isOffline: Bool { state.withLock { $0.isOffline } }

    /// Set while the disk is full: appends fail with `.readOnly`, reads keep working, and a periodic
    /// probe brings the log back (PartitionLog+DiskFull.swift).
    public var isReadOnly: Bool { state.withLock { $0.isReadOnly } }

    /// Whether the log takes appends, in one lock acquisition (for the produce path).
    public var storageStatus: StorageStatus {
        state.withLock { s in s.isOffline ? .offline : s.isReadOnly ? .readOnly : .online }
    }

    /// What a partition's storage can do now.
    public enum StorageStatus: Sendable {
        /// Appends and reads.
        case online
        /// Out of disk space: reads only, until a probe write succeeds.
        case readOnly
        /// After a fatal disk error: neither, until a restart.
        case offline
    }

    /// Offsets below this are durable (the writer's, read atomically: any thread).
    var recoveryPoint: Int64 { writer.recoveryPoint }

    /// Base offsets of the segments, oldest first (for tools and tests).
    public var segmentBaseOffsets: [Int64] { state.withLock { $0.segments.map(\.baseOffset) } }
    /// Number of segments (metrics).
    public var segmentCount: Int { state.withLock { $0.segments.count } }

    /// The segments now (oldest first).
    var currentSegments: [LogSegment] { state.withLock { $0.segments } }

    /// Bytes in all segments (completed appends).
    public var sizeInBytes: Int64 { state.withLock { $0.segments.reduce(0) { $0 + $1.committedSize } } }

    // MARK: DeleteRecords

    /// DeleteRecords: moves the log start offset up to `offset` (nil means the high watermark) and
    /// deletes whole segments that lie entirely below it. Returns the new log start offset.
    /// - Throws: `.offsetOutOfRange` if `offset` is negative or above the high watermark.
    public func deleteRecords(before offset: Offset?) throws(CommitLogError) -> Offset {
        try segmentFilesLock.withLock { _ throws(CommitLogError) -> Offset in Offset(try deleteRecordsLocked(before: offset)) }
    }

    private func deleteRecordsLocked(before offset: Offset?) throws(CommitLogError) -> Int64 {
        let (newStart, moved, removed) = try state.withLock { (s) throws(CommitLogError) -> (Int64, Bool, [LogSegment]) in
            guard !s.isClosed else { throw CommitLogError(.notFound, "\(topicPartition) was deleted") }
            let target = offset?.value ?? s.highWatermark
            guard target >= 0, target <= s.highWatermark else {
                throw CommitLogError(.offsetOutOfRange, "\(topicPartition): delete before \(target) is outside [0, \(s.highWatermark)]")
            }
            var moved = false
            if target > s.logStartOffset {
                s.logStartOffset = target
                moved = true
            }
            var removed: [LogSegment] = []
            while s.segments.count > 1, s.segments[1].baseOffset <= s.logStartOffset {
                removed.append(s.segments.removeFirst())
            }
            return (s.logStartOffset, moved, removed)
        }
        // Renamed to `.deleted` and unlinked later (Retention/PartitionLog+Retention.swift).
        removeSegmentFiles(removed, reason: "below the log start offset \(newStart)")
        if moved { onLogStartOffsetChanged?(self) }
        return newStart
    }

    // MARK: Writer helpers (appender thread)

    /// Takes the configuration and the closed flag from the reader-visible state into the writer's
    /// (at the start of a group or of a periodic task). Returns whether the log is closed.
    @discardableResult
    func refreshWriterState() -> Bool {
        state.withLock { s in
            writer.configuration = s.configuration
            if s.isClosed { writer.isClosed = true }
        }
        return writer.isClosed
    }

    /// Takes the configuration from the reader-visible state into the writer's (periodic tasks).
    func refreshWriterConfiguration() {
        writer.configuration = configuration
    }

    /// Marks the log offline after a disk error (appender thread).
    func goOffline(_ error: DiskError) {
        guard !writer.isOffline else { return }
        writer.isOffline = true
        writer.isReadOnly = false
        state.withLock {
            $0.isOffline = true
            $0.isReadOnly = false
        }
        logger.error("partition offline after disk error", metadata: ["error": "\(error)"])
    }

    /// Starts a new active segment at `nextOffset`: creates its files, makes the directory entry durable,
    /// then trims the old segment's indexes (its final time entry is left pending for the caller to
    /// publish: the old segment is returned with the new one). Then snapshots the producer state at the
    /// new base offset, as Kafka does on roll (a failure there is logged: recovery replays instead).
    @discardableResult
    func roll(now: Int64) throws(DiskError) -> (old: LogSegment, new: LogSegment) {
        writer.assertOwned()
        let old = writer.active
        let baseOffset = writer.nextOffset
        var created: LogSegment?
        do {
            created = try LogSegment.create(
                directory: directory, baseOffset: baseOffset, configuration: writer.configuration, io: io, random: random)
            try io.syncDirectory(directory)
            try old.deactivate()
        } catch {
            // Out of space part-way (or worse): leave no half-created segment behind to be loaded.
            created?.closeIndexFiles()
            for suffix in [SegmentFileName.log(baseOffset), SegmentFileName.offsetIndex(baseOffset), SegmentFileName.timeIndex(baseOffset)] {
                let path = SegmentFileName.join(directory, suffix)
                if io.fileExists(path) { try? io.unlink(path) }
            }
            throw error
        }
        let segment = created!
        files.register([segment])
        if !writer.unflushedSegments.contains(where: { $0 === old }) { writer.unflushedSegments.append(old) }
        writer.active = segment
        writer.pendingSegments.append(segment)
        logger.debug("rolled segment", metadata: ["baseOffset": "\(segment.baseOffset)", "previous": "\(old.baseOffset)"])
        writeProducerSnapshotLogging()
        return (old, segment)
    }

    /// Whether the flush policy asks for an fdatasync now.
    func flushDue(now: Int64) -> Bool {
        // An offline log's reservations may cover bytes that never reached the disk: never flush it
        // (that would move the recovery point over them).
        guard !writer.isOffline, !writer.isClosed else { return false }
        guard writer.nextOffset > writer.recoveryPoint || writer.unflushedSegments.contains(where: { !$0.isActive }) else { return false }
        let configuration = writer.configuration
        if writer.nextOffset - writer.recoveryPoint >= configuration.flushMessages { return true }
        if configuration.flushMs != .max, now - writer.lastFlushMs >= configuration.flushMs { return true }
        return false
    }

    /// Adds fdatasync operations covering everything unflushed (all segments, and the trimmed indexes
    /// of inactive ones) to `batch`; `onlyInactive` limits it to rolled segments.
    func appendFlushOperations(to batch: inout PartitionIOBatch, onlyInactive: Bool) {
        for segment in writer.unflushedSegments where !(onlyInactive && segment.isActive) {
            if segment.flushedSize < segment.size || !segment.isActive {
                batch.append(IOOperation(.fdatasync(fd: segment.file.fd)), owner: self)
            }
            if !segment.isActive {
                for fd in [segment.offsetIndexFD, segment.timeIndexFD] {
                    guard let fd else { continue }
                    batch.append(IOOperation(.fdatasync(fd: fd)), owner: self)
                }
            }
        }
    }

    /// Finishes a flush made by `appendFlushOperations`: takes the log offline if one of its
    /// operations failed, else records the flush. Returns whether it succeeded.
    @discardableResult
    func finishFlush(failure: DiskError?, now: Int64, onlyInactive: Bool) -> Bool {
        if let failure {
            goOffline(failure)
            return false
        }
        flushCompleted(now: now, onlyInactive: onlyInactive)
        return true
    }

    /// Records a successful flush made by `appendFlushOperations`.
    func flushCompleted(now: Int64, onlyInactive: Bool) {
        writer.assertOwned()
        defer {
            assert(
                writer.recoveryPoint <= writer.nextOffset
                    && writer.unflushedSegments.allSatisfy { $0.flushedSize <= $0.size } && writer.active.flushedSize <= writer.active.size,
                "\(topicPartition): storage invariant broken at flush completion")
        }
        var kept: [LogSegment] = []
        for segment in writer.unflushedSegments {
            if onlyInactive && segment.isActive {
                kept.append(segment)
                continue
            }
            segment.flushedSize = segment.size
            if !segment.isActive {
                segment.closeIndexFiles()
                files.unpin(segment)
            }
        }
        writer.unflushedSegments = kept
        if onlyInactive {
            writer.recoveryPoint = max(writer.recoveryPoint, writer.active.baseOffset)
        } else {
            writer.recoveryPoint = writer.nextOffset
            writer.lastFlushMs = now
        }
    }

    /// Flushes synchronously (maintenance and shutdown, outside append groups).
    /// - Throws: the first failed operation's error (the log is left as it was; the caller decides).
    func flushNow(now: Int64) throws(DiskError) {
        var batch = PartitionIOBatch()
        appendFlushOperations(to: &batch, onlyInactive: false)
        var failure: DiskError?
        batch.submit(io: io) { _, error in if failure == nil { failure = error } }
        if let failure { throw failure }
        flushCompleted(now: now, onlyInactive: false)
    }

    /// What must hold whenever appends are published (`s` is the state just published; debug
    /// builds assert it, release builds never evaluate it): the high watermark never moves back and
    /// is the writer's log end; the log start is at most the high watermark; the recovery point is at
    /// most the log end; in the segments that took writes, the committed and flushed sizes are at
    /// most the reserved size.
    func invariantsHoldLocked(_ s: State, previousHighWatermark: Int64) -> Bool {
        guard s.highWatermark >= previousHighWatermark, s.highWatermark == writer.nextOffset,
            s.logStartOffset <= s.highWatermark, writer.recoveryPoint <= writer.nextOffset
        else { return false }
        let touched = writer.groupSegments + [writer.active] + (s.segments.last.map { [$0] } ?? [])
        return touched.allSatisfy { $0.committedSize <= $0.size && $0.flushedSize <= $0.size }
    }

    /// Publishes the index entries staged outside an append group (`segments`: after a roll by time,
    /// the old and the new segment; at shutdown, the deactivated active one) and rolled segments.
    func commitOutOfGroup(_ segments: [LogSegment]) {
        writer.assertOwned()
        state.withLock { s in
            for segment in segments { segment.commitLocked() }
            publishPendingSegmentsLocked(&s)
            assert(invariantsHoldLocked(s, previousHighWatermark: s.highWatermark), "\(topicPartition): storage invariant broken")
        }
    }

    /// Makes rolled segments visible to readers, retention and the cleaner; call under `state`'s lock
    /// in the same critical section that publishes their appends.
    func publishPendingSegmentsLocked(_ s: inout State) {
        guard !writer.pendingSegments.isEmpty else { return }
        s.segments.append(contentsOf: writer.pendingSegments)
        writer.pendingSegments.removeAll(keepingCapacity: true)
    }

    /// Marks the log closed (deleted or shut down): further appends fail. Appender thread (or a
    /// stopped appender).
    func close() {
        writer.isClosed = true
        state.withLock { $0.isClosed = true }
    }

    /// Marks the log closed from any thread (deletion): readers and the appender see it at their next
    /// look — the appender at the start of its next group, failing the appends with `.notFound`.
    func markClosed() {
        state.withLock { $0.isClosed = true }
    }
}
