import DiskIO
import Logging
import Synchronization

extension PartitionLog {
    /// Retention for this partition (Kafka `deleteOldSegments`): removes the segments
    /// `RetentionPlanner` picks from the list — readers stop seeing them at once and the log start
    /// offset moves to the first remaining segment's base — then renames their files `.deleted` for
    /// the deleter. Runs on the maintenance thread; appends and fetches never wait for it (fetches
    /// that already hold a segment keep reading it through its descriptor).
    ///
    /// Crash points: the list change is in memory only. A crash before the renames reloads the
    /// segments (retention deletes them again); after some renames, the loader unlinks the
    /// `.deleted` files and index files without a `.log`. The renames are not followed by a directory
    /// fsync: a crash that loses some of them is the same as a crash before them. The log start
    /// offset is checkpointed by the caller afterwards; before that, the loader takes the first
    /// remaining segment's base.
    /// - Returns: The deleted segments' base offsets and the new log start offset if it moved.
    @discardableResult
    func deleteOldSegments(now: Int64) -> (deleted: [Int64], newLogStartOffset: Int64?) {
        segmentFilesLock.withLock { _ in
            let (removed, reasons, newStart) = state.withLock { s -> ([LogSegment], [RetentionPlanner.Reason], Int64?) in
                guard !s.isClosed, !s.isOffline else { return ([], [], nil) }
                let infos = s.segments.map {
                    RetentionPlanner.Segment(baseOffset: $0.baseOffset, sizeBytes: $0.committedSize, largestTimestamp: $0.maxTimestamp)
                }
                let plan = RetentionPlanner.plan(segments: infos, logStartOffset: s.logStartOffset, configuration: s.configuration, now: now)
                guard plan.count > 0 else { return ([], [], nil) }
                let removed = Array(s.segments.prefix(plan.count))
                s.segments.removeFirst(plan.count)
                // Aborted transactions whose ABORT marker went with the removed segments: their
                // data went too (segments go in offset order), so consumers need them no more.
                let firstKept = s.segments[0].baseOffset
                s.abortedTransactions.removeAll { $0.lastOffset < firstKept }
                var newStart: Int64?
                if s.segments[0].baseOffset > s.logStartOffset {
                    s.logStartOffset = s.segments[0].baseOffset
                    newStart = s.logStartOffset
                }
                return (removed, plan.reasons, newStart)
            }
            for (segment, reason) in zip(removed, reasons) {
                logger.info(
                    "retention deleting segment",
                    metadata: [
                        "baseOffset": "\(segment.baseOffset)", "reason": "\(reason.rawValue)", "bytes": "\(segment.committedSize)",
                        "largestTimestamp": "\(segment.maxTimestamp)",
                    ])
            }
            removeSegmentFiles(removed, reason: "retention")
            return (removed.map(\.baseOffset), newStart)
        }
    }

    /// Renames the files of segments already removed from the list to `*.deleted` — `.log` first,
    /// then its indexes, its `.txnindex` and a producer snapshot named at its base — and queues them for unlinking
    /// after `file.delete.delay.ms`. Without a deleter (a log not owned by a `LogManager`) they are
    /// unlinked at once. Failures are logged: a leftover file is cleaned up by the next load.
    /// Caller holds `segmentFilesLock`.
    func removeSegmentFiles(_ segments: [LogSegment], reason: String) {
        guard !segments.isEmpty else { return }
        files.forget(segments)
        let due = clock.wallMilliseconds() + max(0, configuration.fileDeleteDelayMs)
        for segment in segments {
            let snapshot = SegmentFileName.join(directory, ProducerSnapshotFile.name(segment.baseOffset))
            let transactionIndex = SegmentFileName.join(directory, TransactionIndexFile.name(segment.baseOffset))
            for path in [segment.logPath, segment.offsetIndexPath, segment.timeIndexPath, transactionIndex, snapshot] where io.fileExists(path) {
                do {
                    if let fileDeleter {
                        let renamed = SegmentFileName.with(path, suffix: SegmentFileName.deletedSuffix)
                        try io.rename(path, to: renamed)
                        fileDeleter.schedule(renamed, dueMs: due)
                    } else {
                        try io.unlink(path)
                    }
                } catch {
                    logger.warning("could not delete segment file", metadata: ["path": "\(path)", "error": "\(error)"])
                }
            }
            logger.debug("segment files scheduled for deletion", metadata: ["baseOffset": "\(segment.baseOffset)", "reason": "\(reason)"])
        }
    }
}
