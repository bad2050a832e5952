import DiskIO
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension DiskError {
    /// ENOSPC or EDQUOT from a write, open, truncate or create — the file system is full, the bytes
    /// already written are intact. Not from a sync: a failed fsync/fdatasync/sync_file_range may have
    /// dropped dirty pages (acknowledged bytes the disk never got), which stays fatal.
    var isOutOfSpace: Bool { (errno == ENOSPC || errno == EDQUOT) && operation != .sync }
}

/// Disk full: a recoverable storage state between online and offline.
///
/// A write-path error that is `isOutOfSpace` makes the partition *read-only* instead of offline:
///
/// 1. The writer rolls back to what readers see (`rollBackToPublished`): segments created by a roll
///    whose appends were never published are unlinked, the last published segment's `.log` is
///    truncated to its committed size (so a half-written batch is never read, now or after a restart)
///    and fdatasynced, its index/indexer state is rebuilt from the published indexes, producer
///    snapshots past the high watermark are deleted and, if unpublished batches touched producer
///    state, it is rebuilt from the newest snapshot plus a replay up to the high watermark.
/// 2. Appends fail with `.readOnly` (`KAFKA_STORAGE_ERROR`, which producers retry); fetches, ListOffsets
///    and Metadata keep serving the published prefix; retention keeps running (it frees space); the
///    cleaner and `segment.ms` rolls pause (both need space).
/// 3. `LogManager.runPeriodicTasks` probes every `diskFullProbeIntervalMs` (broker config
///    `petrel.disk.full.probe.interval.ms`, default 2000): it writes `spaceProbeBytes` to a scratch
///    `.tmp` file in the partition directory and unlinks it. When that write succeeds the partition is
///    online again, with no restart. (Kafka has no equivalent: it takes the whole log dir offline on
///    any IOException until the broker restarts.)
///
/// Any other disk error (EIO, a failed sync, a rollback that itself fails) still takes the partition
/// offline for good: bytes that may not be on disk are never published and the recovery point never
/// moves past them. An offline partition also refuses fetches and is reported offline in Metadata, as
/// Kafka does for replicas in a failed log dir: after EIO even the page cache may no longer match the
/// disk.
///
/// Crash points of the rollback: before the truncation is durable a restart recovers the last segment
/// by CRC scan (a torn batch is cut; a complete but unacknowledged batch may survive, as with any failed
/// produce); unlinked pending segments that reappear hold only offsets past the published end and are
/// recovered the same way; a `.tmp` probe file left behind is deleted by the next load.
extension PartitionLog {
    /// Bytes the space probe writes (a few file-system blocks, about one typical produce batch).
    static let spaceProbeBytes = 64 << 10
    /// The probe's scratch file; the `.tmp` suffix makes `LogLoader` delete a leftover one.
    static let spaceProbeFileName = "petrel-space-probe" + SegmentFileName.temporarySuffix
    private static let spaceProbeZeros = [UInt8](repeating: 0, count: spaceProbeBytes)

    /// Handles a disk error of the write path (appender thread, or `LogManager` while it is stopped):
    /// out of space makes the log read-only after rolling the writer back to the published state;
    /// anything else, or a failed rollback, takes it offline.
    func writeFailed(_ error: DiskError, now: Int64) {
        guard !writer.isOffline, !writer.isClosed else { return }
        guard error.isOutOfSpace else {
            goOffline(error)
            return
        }
        do {
            try rollBackToPublished()
        } catch {
            logger.error("could not roll back after running out of space", metadata: ["error": "\(error)"])
            goOffline(error)
            return
        }
        writer.lastSpaceProbeMs = now
        if !writer.isReadOnly {
            writer.isReadOnly = true
            state.withLock { $0.isReadOnly = true }
            logger.error(
                "partition read-only: out of disk space; reads continue, writes resume when a probe write succeeds",
                metadata: ["error": "\(error)", "highWatermark": "\(writer.nextOffset)"])
        }
    }

    /// Writes and removes a probe file; back online when the write succeeds (appender thread).
    func probeSpace(now: Int64) {
        guard writer.isReadOnly, !writer.isOffline, !writer.isClosed else { return }
        writer.lastSpaceProbeMs = now
        let path = SegmentFileName.join(directory, Self.spaceProbeFileName)
        do throws(DiskError) {
            let fd = try io.open(path, mode: .createReadWrite)
            defer { io.close(fd) }
            do {
                try io.write(fd, bytes: Self.spaceProbeZeros, at: 0)
            } catch {
                try? io.unlink(path)
                throw error
            }
            try io.unlink(path)
        } catch {
            if !error.isOutOfSpace { goOffline(error) }
            return
        }
        writer.isReadOnly = false
        state.withLock { $0.isReadOnly = false }
        logger.notice("partition writable again: a probe write succeeded")
    }

    /// Rolls the writer's state back to exactly what readers see (see the type comment, step 1).
    /// Also usable when nothing is unpublished: then it only re-derives what it already has.
    /// - Throws: the disk error of a truncation, unlink or sync; the caller takes the log offline.
    func rollBackToPublished() throws(DiskError) {
        let discarded = writer.pendingSegments
        writer.pendingSegments.removeAll()
        writer.unflushedSegments.removeAll { segment in discarded.contains { $0 === segment } }
        for segment in discarded {
            segment.closeIndexFiles()
            for path in [segment.logPath, segment.offsetIndexPath, segment.timeIndexPath] where io.fileExists(path) {
                try io.unlink(path)
            }
        }

        let (last, highWatermark, committed, offsetEntries, lastOffsetEntryPosition, timeEntries, lastTimeEntry) =
            state.withLock { s in
                let last = s.segments[s.segments.count - 1]
                return (
                    last, s.highWatermark, last.committedSize, last.offsetIndex.count, last.offsetIndex.entries.last.map { Int64($0.position) },
                    last.timeIndex.count, last.timeIndex.entries.last?.timestamp
                )
            }
        // The torn or unpublished tail goes; the published bytes below `committed` are untouched.
        try io.truncate(last.file.fd, to: committed)
        try io.fdatasync(last.file.fd)
        last.size = committed
        last.nextOffset = highWatermark
        last.pendingOffsetEntries.removeAll(keepingCapacity: true)
        last.pendingTimeEntries.removeAll(keepingCapacity: true)
        last.offsetEntryCount = offsetEntries
        last.timeEntryCount = timeEntries
        var indexer = SegmentIndexer(baseOffset: last.baseOffset, intervalBytes: last.indexer.intervalBytes)
        indexer.bytesSinceLastEntry = Int(committed - (lastOffsetEntryPosition ?? 0))
        indexer.maxTimestamp = last.maxTimestamp
        indexer.offsetOfMaxTimestamp = last.offsetOfMaxTimestamp
        indexer.lastTimeEntryTimestamp = lastTimeEntry ?? -1
        last.indexer = indexer
        if committed == 0 { last.rollingBaseMs = nil }
        last.writeBehindPosition = min(last.writeBehindPosition, committed)
        last.flushedSize = min(last.flushedSize, committed)
        if !last.isActive {
            // A roll in the failed group deactivated it (its index files were trimmed): it is the
            // active segment again. Index writes past the trimmed end extend the files.
            if last.offsetIndexFD == nil { last.offsetIndexFD = try io.open(last.offsetIndexPath, mode: .readWrite) }
            if last.timeIndexFD == nil { last.timeIndexFD = try io.open(last.timeIndexPath, mode: .readWrite) }
            last.isActive = true
        }
        writer.active = last
        writer.nextOffset = highWatermark
        writer.recoveryPoint = min(writer.recoveryPoint, highWatermark)
        if !discarded.isEmpty { try io.syncDirectory(directory) }

        // A roll snapshotted producer state that includes unpublished batches.
        for offset in try ProducerSnapshotFile.list(directory, io: io) where offset > highWatermark {
            try io.unlink(SegmentFileName.join(directory, ProducerSnapshotFile.name(offset)))
        }
        if writer.producers.entries.values.contains(where: { $0.lastOffset >= highWatermark }) {
            let (segments, logStart) = state.withLock { ($0.segments, $0.logStartOffset) }
            writer.producers = try ProducerStateLoader(directory: directory, io: io, clock: clock, logger: logger)
                .load(segments: segments, logStartOffset: logStart)
        }
        logger.warning(
            "rolled back unpublished appends", metadata: ["highWatermark": "\(highWatermark)", "segmentBytes": "\(committed)"])
    }
}
