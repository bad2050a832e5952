import Synchronization

extension LogManager {
    /// Runs retention on every partition now (normally every `retentionCheckIntervalMs` from
    /// `runPeriodicTasks`), checkpoints moved log start offsets, drops producer state below them,
    /// and unlinks `.deleted` files whose delay passed. Safe on any thread except the appender's.
    /// - Returns: How many segments were deleted.
    @discardableResult
    public func runRetention() -> Int {
        let now = clock.wallMilliseconds()
        lastRetentionCheckMs.withLock { $0 = now }
        var deleted = 0
        var moved = false
        for log in allLogs {
            let result = log.deleteOldSegments(now: now)
            deleted += result.deleted.count
            if let start = result.newLogStartOffset {
                moved = true
                // Producer state is writer state: trim it on the appender thread (Kafka truncateHead).
                let trim: @Sendable () -> Void = { log.writer.producers.removeProducers(lastOffsetBelow: start) }
                if !appender.enqueue(trim), !appender.isRunning { trim() }
            }
        }
        if moved { checkpointLogStartOffsets() }
        fileDeleter.unlinkDue(now: now)
        statistics.recordRetention(deletedSegments: deleted)
        return deleted
    }

    /// Retention if `retentionCheckIntervalMs` passed since the last run; due unlinks always.
    func runRetentionIfDue() {
        let now = clock.wallMilliseconds()
        let due = lastRetentionCheckMs.withLock { last -> Bool in
            guard now - last >= retentionCheckIntervalMs else { return false }
            last = now
            return true
        }
        if due { runRetention() } else { fileDeleter.unlinkDue(now: now) }
    }

    /// Segment files waiting for `file.delete.delay.ms` (tests, metrics).
    public var pendingFileDeletions: [String] { fileDeleter.pendingPaths }
}
