import DiskIO
import Synchronization

/// The writer's side of one partition: everything only the single writer touches — the appender
/// thread, or `LogManager` while the appender is not running (load, shutdown) or from a task it runs
/// on the appender thread (periodic rolls and flushes).
///
/// `PartitionLog` is the view readers use: what they see (segment list, committed sizes, indexes,
/// high watermark, log start offset) sits behind its lock and describes completed appends only. This
/// type holds what is ahead of that view (the active segment, the next offset, unflushed segments,
/// producer state, rolled segments not yet published) and the appender's per-group scratch, so no
/// lock is taken for it and no reader ever looks at it. The one exception is `recoveryPoint`, an
/// atomic, which the checkpoint writer reads from any thread.
final class PartitionWriter: @unchecked Sendable {
    /// The segment appends go to (the last of the published list, or a rolled one still pending).
    var active: LogSegment
    /// The offset the next batch gets (log end offset including in-flight appends).
    var nextOffset: Int64
    /// Offsets below this are durable (fsynced). Written by the writer only; readable from any thread.
    var recoveryPoint: Int64 {
        get { recoveryPointStorage.load(ordering: .relaxed) }
        set { recoveryPointStorage.store(newValue, ordering: .relaxed) }
    }
    private let recoveryPointStorage: Atomic<Int64>
    var lastFlushMs: Int64
    /// Segments holding bytes (or trimmed indexes) not yet covered by an fdatasync, oldest first.
    var unflushedSegments: [LogSegment] = []
    /// The partition's configuration as of the start of the current group (or periodic task).
    var configuration: LogConfiguration
    /// After a fatal disk error; mirrored into the reader-visible state by `PartitionLog.goOffline`.
    var isOffline = false
    /// Out of disk space, rolled back to the published state; probed by `LogManager` (PartitionLog+DiskFull).
    var isReadOnly = false
    /// When the space probe last ran (or the log went read-only).
    var lastSpaceProbeMs: Int64 = 0
    /// Deleted or shut down, as the writer last saw it.
    var isClosed = false
    /// Idempotent-producer state: checked and updated at offset assignment, snapshotted on roll and
    /// shutdown, rebuilt by `LogLoader`.
    var producers: ProducerStateManager
    /// ABORT markers written in the current group, published with it (PartitionLog+Transactions).
    var groupAborted: [AbortedTransaction] = []
    /// Segments created by rolls whose appends are not published yet. They join the reader-visible
    /// list only together with those appends (`PartitionLog.publishPendingSegmentsLocked`): until then
    /// the old segment stays the last one, so retention and the cleaner never treat it as closed while
    /// it still has in-flight, unpublished batches.
    var pendingSegments: [LogSegment] = []

    // MARK: Per-group scratch (LogAppender only)

    /// The partition has appends in the group being run.
    var inGroup = false
    /// Segments the group wrote to (their pending index entries are published with the group).
    var groupSegments: [LogSegment] = []
    /// The first disk error of the group; its later appends fail, and the log goes offline or read-only.
    var groupFailure: DiskError?
    /// The group rolled a segment (the rolled one is flushed after the group).
    var groupRolled = false
    /// The partition's appends wait for the group commit (fdatasync).
    var groupNeedsFlush = false
    /// The log start offset published with the group (for `AppendResult`).
    var groupLogStartOffset: Int64 = 0
    /// The group moved the high watermark (listeners are told).
    var groupAdvanced = false

    /// Debug builds: tells whether the calling thread may touch this state (set by `LogManager`:
    /// the appender thread, or any thread while the appender is not running). Nil: unchecked.
    var ownerCheck: (@Sendable () -> Bool)?

    /// Debug builds: traps when called off the writer's thread (see `ownerCheck`). Free in release.
    @inline(__always)
    func assertOwned(_ function: StaticString = #function) {
        assert(ownerCheck?() ?? true, "PartitionWriter used off the appender thread in \(function)")
    }

    init(active: LogSegment, recoveryPoint: Int64, configuration: LogConfiguration, producers: ProducerStateManager, now: Int64) {
        self.active = active
        self.nextOffset = active.nextOffset
        self.recoveryPointStorage = Atomic(min(recoveryPoint, active.nextOffset))
        self.lastFlushMs = now
        self.configuration = configuration
        self.producers = producers
    }

    /// Opens the group scratch for a partition's first append of a group.
    func beginGroup() {
        assertOwned()
        inGroup = true
        groupSegments.removeAll(keepingCapacity: true)
        groupSegments.append(active)
    }

    /// Notes that the group wrote to `segment`.
    func noteGroupSegment(_ segment: LogSegment) {
        if groupSegments.last !== segment && !groupSegments.contains(where: { $0 === segment }) { groupSegments.append(segment) }
    }

    /// Clears the group scratch after a group.
    func endGroup() {
        inGroup = false
        groupSegments.removeAll(keepingCapacity: true)
        groupFailure = nil
        groupRolled = false
        groupNeedsFlush = false
        groupAdvanced = false
    }
}
