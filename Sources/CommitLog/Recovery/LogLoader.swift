import DiskIO
import Logging
import RecordFormat

/// Opens one partition directory (Kafka `LogLoader.load`, simplified to what Petrel writes):
///
/// 1. Delete transient files (`*.deleted`, `*.cleaned`, `*.swap`, `*.tmp`) and index files without a
///    `.log`.
/// 2. Load every `N.log` in order. After an unclean shutdown every segment overlapping
///    `[recoveryPoint, ∞)` is scanned, validating each batch's CRC and offsets; the `.log` is truncated
///    at the first invalid or torn batch, all later segments are deleted, and the segment's indexes
///    are rebuilt. Other segments keep their indexes if sane (length, monotonic entries within the log,
///    last entry naming a real batch); an index that fails is rebuilt by the same validating scan.
/// 3. The log start offset is max(checkpoint, first base offset); if it is past the log end, the
///    segments are dropped for an empty one at the log start offset. An empty directory gets an empty
///    segment.
/// 4. Producer state: the newest `N.snapshot` at or below the log end plus a replay of the batch
///    headers after it (`ProducerStateLoader`); snapshots past the log end are deleted.
///
/// Crash points: every step only deletes what recovery would recreate or what lies past a torn
/// batch, and truncations are fdatasynced before later segments are deleted, so a crash while
/// loading leaves a directory the next load handles the same way.
struct LogLoader {
    let topicPartition: TopicPartition
    let directory: String
    let configuration: LogConfiguration
    let io: any FileIO
    let clock: any LogClock
    let logger: Logger
    /// The descriptor budget the loaded log counts against.
    var files: SegmentFileCache? = nil
    /// Random choices of new segments (`LogManager.random`).
    var random: StoreRandom? = nil

    func load(hadCleanShutdown: Bool, recoveryPoint checkpointRecoveryPoint: Int64?, logStartOffset checkpointLogStart: Int64?)
        throws(DiskError) -> PartitionLog
    {
        // Finish or roll back a cleaner swap cut short by a crash (Compaction/SegmentSwap.swift).
        try SegmentSwap.recover(directory: directory, io: io, logger: logger)
        let names = try io.listDirectory(directory)
        var logBases: [Int64] = []
        var indexFiles: [(name: String, base: Int64)] = []
        for name in names {
            let path = SegmentFileName.join(directory, name)
            if name.hasSuffix(SegmentFileName.deletedSuffix) || name.hasSuffix(SegmentFileName.cleanedSuffix)
                || name.hasSuffix(SegmentFileName.swapSuffix) || name.hasSuffix(SegmentFileName.temporarySuffix)
            {
                try io.unlink(path)
            } else if let base = SegmentFileName.baseOffset(of: name, suffix: SegmentFileName.logSuffix) {
                logBases.append(base)
            } else if let base = SegmentFileName.baseOffset(of: name, suffix: SegmentFileName.offsetIndexSuffix)
                ?? SegmentFileName.baseOffset(of: name, suffix: SegmentFileName.timeIndexSuffix)
            {
                indexFiles.append((name, base))
            }
        }
        logBases.sort()
        let logBaseSet = Set(logBases)
        for file in indexFiles where !logBaseSet.contains(file.base) {
            try io.unlink(SegmentFileName.join(directory, file.name))
        }
        let recoveryPoint = checkpointRecoveryPoint ?? 0

        var segments: [LogSegment] = []
        var index = 0
        while index < logBases.count {
            let base = logBases[index]
            let nextBase = index + 1 < logBases.count ? logBases[index + 1] : nil
            let needsRecovery = !hadCleanShutdown && (nextBase == nil || nextBase! > recoveryPoint)
            let (segment, truncated) = try loadSegment(base: base, nextBase: nextBase, recover: needsRecovery)
            segments.append(segment)
            // A recovered segment that ends short of the next segment's base lost its tail in the crash
            // (the next segment was created by a roll before this one's data was synced): later
            // segments cannot hold durable data then, and offsets must stay contiguous.
            let endsShort = nextBase.map { segment.nextOffset != $0 } ?? false
            if truncated || endsShort, let nextBase {
                // Offsets must stay contiguous: nothing after a truncation point survives.
                for later in logBases[(index + 1)...] {
                    for name in [SegmentFileName.log(later), SegmentFileName.offsetIndex(later), SegmentFileName.timeIndex(later)] {
                        let path = SegmentFileName.join(directory, name)
                        if io.fileExists(path) { try io.unlink(path) }
                    }
                }
                logger.warning("deleted segments after a truncated one", metadata: ["from": "\(nextBase)"])
                try io.syncDirectory(directory)
                break
            }
            index += 1
        }

        var logStart = max(checkpointLogStart ?? 0, segments.first?.baseOffset ?? 0)
        if let last = segments.last, logStart > last.nextOffset {
            logger.warning("log start offset is past the log end; dropping all segments", metadata: ["logStartOffset": "\(logStart)", "logEndOffset": "\(last.nextOffset)"])
            for segment in segments {
                for path in [segment.logPath, segment.offsetIndexPath, segment.timeIndexPath] where io.fileExists(path) {
                    try io.unlink(path)
                }
            }
            segments.removeAll()
        }
        if segments.isEmpty {
            if logStart < 0 { logStart = 0 }
            segments.append(try LogSegment.create(
                directory: directory, baseOffset: logStart, configuration: configuration, io: io, random: random ?? StoreRandom()))
            try io.syncDirectory(directory)
        } else {
            try activate(segments[segments.count - 1])
        }
        let last = segments[segments.count - 1]
        // After a clean shutdown everything is durable; otherwise only what the checkpoint says.
        let effectiveRecoveryPoint = hadCleanShutdown ? last.nextOffset : min(recoveryPoint, last.nextOffset)
        let (producers, replayedAborts) = try ProducerStateLoader(directory: directory, io: io, clock: clock, logger: logger)
            .loadWithAborts(segments: segments, logStartOffset: logStart)
        let log = PartitionLog(
            topicPartition: topicPartition, directory: directory, configuration: configuration, segments: segments,
            logStartOffset: logStart, recoveryPoint: effectiveRecoveryPoint, producers: producers, io: io, clock: clock,
            logger: logger, files: files, random: random)
        try log.loadTransactionIndexes(segments: segments, replayed: replayedAborts)
        return log
    }

    /// Opens segment `base`; recovers it when asked or when its indexes are not usable. Returns whether
    /// the `.log` was truncated.
    private func loadSegment(base: Int64, nextBase: Int64?, recover: Bool) throws(DiskError) -> (LogSegment, Bool) {
        let logPath = SegmentFileName.join(directory, SegmentFileName.log(base))
        let offsetIndexPath = SegmentFileName.join(directory, SegmentFileName.offsetIndex(base))
        let timeIndexPath = SegmentFileName.join(directory, SegmentFileName.timeIndex(base))
        let file = SegmentFileHandle(fd: try io.open(logPath, mode: .readWrite), path: logPath, io: io)
        let size = try io.fileSize(file.fd)
        if !recover {
            switch try loadTrusted(
                base: base, nextBase: nextBase, file: file, size: size, offsetIndexPath: offsetIndexPath,
                timeIndexPath: timeIndexPath)
            {
            case .success(let segment):
                return (segment, false)
            case .failure(let problem):
                logger.warning("rebuilding segment indexes", metadata: ["segment": "\(logPath)", "reason": "\(problem)"])
            }
        }
        let scan = try SegmentRecovery.scan(
            io: io, fd: file.fd, path: logPath, baseOffset: base, offsetLimit: nextBase,
            indexIntervalBytes: configuration.indexIntervalBytes)
        let truncated = scan.validBytes < scan.fileSize
        if truncated {
            logger.warning(
                "truncating segment at first invalid batch",
                metadata: ["segment": "\(logPath)", "position": "\(scan.validBytes)", "size": "\(scan.fileSize)", "reason": "\(scan.stopReason ?? "")"])
            try io.truncate(file.fd, to: scan.validBytes)
            try io.fdatasync(file.fd)
        }
        try writeIndexFile(offsetIndexPath, OffsetIndex.encode(scan.offsetEntries))
        try writeIndexFile(timeIndexPath, TimeIndex.encode(scan.timeEntries))
        let segment = LogSegment(
            baseOffset: base, file: file, offsetIndexPath: offsetIndexPath, timeIndexPath: timeIndexPath, io: io,
            size: scan.validBytes, nextOffset: scan.nextOffset,
            offsetIndex: OffsetIndex(baseOffset: base, entries: scan.offsetEntries),
            timeIndex: TimeIndex(baseOffset: base, entries: scan.timeEntries), indexer: scan.indexer,
            offsetIndexFD: nil, timeIndexFD: nil, isActive: false)
        segment.rollingBaseMs = rollingBase(firstBatchMaxTimestamp: scan.firstBatchMaxTimestamp, size: scan.validBytes)
        // The scan's final time entry closes the segment as Kafka's recovery does; if this becomes the
        // active segment, later entries only follow larger timestamps.
        return (segment, truncated)
    }

    /// Loads a segment whose data is trusted (clean shutdown, or below the recovery point), checking its
    /// indexes. Fails with the reason when they must be rebuilt.
    private func loadTrusted(
        base: Int64, nextBase: Int64?, file: SegmentFileHandle, size: Int64, offsetIndexPath: String, timeIndexPath: String
    ) throws(DiskError) -> Result<LogSegment, IndexCorruption> {
        guard let offsetBytes = try io.readWholeFile(offsetIndexPath) else { return .failure(IndexCorruption("missing offset index")) }
        guard let timeBytes = try io.readWholeFile(timeIndexPath) else { return .failure(IndexCorruption("missing time index")) }
        let offsetIndex: OffsetIndex
        do { offsetIndex = try OffsetIndex.decode(offsetBytes, baseOffset: base, logSize: size) } catch { return .failure(error) }
        if let last = offsetIndex.entries.last {
            if let nextBase, offsetIndex.offset(of: last) >= nextBase {
                return .failure(IndexCorruption("offset index names offsets past the segment"))
            }
            // The last entry must name a real batch: its last offset at that position.
            let header = try? BatchHeaderReader.header(io: io, file: file, at: Int64(last.position), end: size)
            guard let header, header.lastOffset == offsetIndex.offset(of: last) else {
                return .failure(IndexCorruption("offset index entry \(last) does not match the batch at that position"))
            }
        }
        var firstBatchMaxTimestamp: Int64 = -1
        if size > 0 {
            let first = try? BatchHeaderReader.header(io: io, file: file, at: 0, end: size)
            guard let first, first.baseOffset >= base else { return .failure(IndexCorruption("first batch is not readable")) }
            firstBatchMaxTimestamp = first.maxTimestamp
        }
        // The segment's end: the next segment's base, or for the last segment a short scan of the
        // headers after the last index entry, which must end exactly at the end of the file.
        var nextOffset = base
        var scannedMax: (timestamp: Int64, offset: Int64) = (-1, base)
        if let nextBase {
            nextOffset = nextBase
        } else if size > 0 {
            var position = Int64(offsetIndex.entries.last?.position ?? 0)
            var previousLast: Int64?
            while position < size {
                let header = try? BatchHeaderReader.header(io: io, file: file, at: position, end: size)
                // Offsets must stay within the segment's u32 relative range (checked before `lastOffset`
                // is computed, which could overflow): the indexer traps on anything else.
                guard let header, header.baseOffset >= base, header.lastOffsetDelta >= 0,
                    header.baseOffset - base <= Int64(Int32.max) - Int64(header.lastOffsetDelta),
                    previousLast.map({ header.baseOffset > $0 }) ?? true
                else { return .failure(IndexCorruption("no valid batch at \(position) after the last index entry")) }
                if header.maxTimestamp > scannedMax.timestamp { scannedMax = (header.maxTimestamp, header.lastOffset) }
                previousLast = header.lastOffset
                position += Int64(header.totalByteCount)
            }
            nextOffset = (previousLast ?? base - 1) + 1
        }
        let timeIndex: TimeIndex
        do { timeIndex = try TimeIndex.decode(timeBytes, baseOffset: base, nextOffset: nextOffset) } catch { return .failure(error) }
        // A segment gets its final time entry when it stops being active (roll or clean shutdown), so a
        // segment whose records carry timestamps cannot have an empty time index: trusting one would hide
        // the segment from timestamp lookups. (Timestamp 0 at relative offset 0 reads as a zero tail.)
        if timeIndex.entries.isEmpty, firstBatchMaxTimestamp > 0 {
            return .failure(IndexCorruption("time index is empty but the segment's records carry timestamps"))
        }
        var indexer = SegmentIndexer(baseOffset: base, intervalBytes: configuration.indexIntervalBytes)
        if let last = timeIndex.entries.last {
            indexer.maxTimestamp = last.timestamp
            indexer.offsetOfMaxTimestamp = timeIndex.offset(of: last)
            indexer.lastTimeEntryTimestamp = last.timestamp
        }
        if scannedMax.timestamp > indexer.maxTimestamp {
            indexer.maxTimestamp = scannedMax.timestamp
            indexer.offsetOfMaxTimestamp = scannedMax.offset
        }
        let segment = LogSegment(
            baseOffset: base, file: file, offsetIndexPath: offsetIndexPath, timeIndexPath: timeIndexPath, io: io,
            size: size, nextOffset: nextOffset, offsetIndex: offsetIndex, timeIndex: timeIndex, indexer: indexer,
            offsetIndexFD: nil, timeIndexFD: nil, isActive: false)
        segment.rollingBaseMs = rollingBase(firstBatchMaxTimestamp: firstBatchMaxTimestamp, size: size)
        return .success(segment)
    }

    /// `segment.ms` counts from the first batch's timestamp when it is plausible, else from now.
    private func rollingBase(firstBatchMaxTimestamp: Int64, size: Int64) -> Int64? {
        guard size > 0 else { return nil }
        let now = clock.wallMilliseconds()
        return firstBatchMaxTimestamp >= 0 && firstBatchMaxTimestamp <= now ? firstBatchMaxTimestamp : now
    }

    /// Rewrites an index file with exactly `bytes`, durably.
    private func writeIndexFile(_ path: String, _ bytes: [UInt8]) throws(DiskError) {
        let fd = try io.open(path, mode: .createReadWrite)
        defer { io.close(fd) }
        try io.truncate(fd, to: 0)
        if !bytes.isEmpty {
            try io.write(fd, bytes: bytes, at: 0)
        }
        try io.fdatasync(fd)
    }

    /// Makes a loaded segment the active one. Its index files are rewritten whole when it stops being
    /// active (`LogSegment.deactivate`); no descriptor is held meanwhile.
    private func activate(_ segment: LogSegment) throws(DiskError) {
        segment.isActive = true
    }
}
