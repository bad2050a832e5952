import DiskIO

/// One segment: `<base>.log` plus its `.index` and `.timeindex`.
///
/// Two kinds of state live here. The *reader-visible* part (`committedSize`, the indexes, the max
/// timestamp) is read and written only under the owning `PartitionLog`'s lock, and describes
/// completed appends only. The *writer* part (reserved size, pending index entries, index file
/// descriptors, flush bookkeeping) belongs to the appender thread — or to `LogManager` while the
/// appender is not running (load, shutdown).
final class LogSegment: @unchecked Sendable {
    let baseOffset: Int64
    let file: SegmentFileHandle
    let offsetIndexPath: String
    let timeIndexPath: String
    let io: any FileIO

    // MARK: Reader-visible (partition lock)

    /// Bytes of completed appends; readers never look past it.
    var committedSize: Int64
    var offsetIndex: OffsetIndex
    var timeIndex: TimeIndex
    /// Greatest batch max-timestamp among completed appends (-1 none).
    var maxTimestamp: Int64
    /// Last offset of the batch that holds `maxTimestamp`.
    var offsetOfMaxTimestamp: Int64

    // MARK: Writer (appender thread)

    /// Bytes reserved: completed plus in-flight appends.
    var size: Int64
    /// The offset after the last reserved batch.
    var nextOffset: Int64
    var indexer: SegmentIndexer
    /// Index entries of in-flight appends, published into the indexes when they complete.
    var pendingOffsetEntries: [OffsetIndexEntry] = []
    var pendingTimeEntries: [TimeIndexEntry] = []
    /// Entries in the index files including pending ones (the writer's view, no lock needed).
    var offsetEntryCount: Int
    var timeEntryCount: Int
    /// Open while the segment is active, or until its trimmed indexes are durable.
    var offsetIndexFD: Int32?
    var timeIndexFD: Int32?
    /// Wall-clock ms of the segment's first batch (for `segment.ms`); nil while empty.
    var rollingBaseMs: Int64?
    /// This segment's random reduction of `segment.ms` (Kafka's `rollJitterMs`, from `segment.jitter.ms`).
    var rollJitterMs: Int64 = 0
    /// Bytes known durable (covered by an fdatasync).
    var flushedSize: Int64
    /// Where the next write-behind (`sync_file_range`) range starts.
    var writeBehindPosition: Int64
    var isActive: Bool

    var logPath: String { file.path }

    init(
        baseOffset: Int64, file: SegmentFileHandle, offsetIndexPath: String, timeIndexPath: String, io: any FileIO,
        size: Int64, nextOffset: Int64, offsetIndex: OffsetIndex, timeIndex: TimeIndex, indexer: SegmentIndexer,
        offsetIndexFD: Int32?, timeIndexFD: Int32?, isActive: Bool
    ) {
        self.baseOffset = baseOffset
        self.file = file
        self.offsetIndexPath = offsetIndexPath
        self.timeIndexPath = timeIndexPath
        self.io = io
        self.committedSize = size
        self.offsetIndex = offsetIndex
        self.timeIndex = timeIndex
        self.maxTimestamp = indexer.maxTimestamp
        self.offsetOfMaxTimestamp = indexer.offsetOfMaxTimestamp
        self.size = size
        self.nextOffset = nextOffset
        self.indexer = indexer
        self.offsetEntryCount = offsetIndex.count
        self.timeEntryCount = timeIndex.count
        self.offsetIndexFD = offsetIndexFD
        self.timeIndexFD = timeIndexFD
        self.flushedSize = size
        self.writeBehindPosition = size
        self.isActive = isActive
    }

    deinit { closeIndexFiles() }

    func closeIndexFiles() {
        if let fd = offsetIndexFD { io.close(fd) }
        if let fd = timeIndexFD { io.close(fd) }
        offsetIndexFD = nil
        timeIndexFD = nil
    }

    /// Creates a new, empty, active segment: an empty `.log` and index files preallocated (zeros) to
    /// `segment.index.bytes`, as Kafka does. The caller syncs the directory.
    static func create(
        directory: String, baseOffset: Int64, configuration: LogConfiguration, io: any FileIO
    ) throws(DiskError) -> LogSegment {
        let logPath = SegmentFileName.join(directory, SegmentFileName.log(baseOffset))
        let offsetIndexPath = SegmentFileName.join(directory, SegmentFileName.offsetIndex(baseOffset))
        let timeIndexPath = SegmentFileName.join(directory, SegmentFileName.timeIndex(baseOffset))
        let logFD = try io.open(logPath, mode: .createReadWrite)
        let file = SegmentFileHandle(fd: logFD, path: logPath, io: io)
        try io.truncate(logFD, to: 0)
        let offsetFD = try io.open(offsetIndexPath, mode: .createReadWrite)
        let timeFD: Int32
        do {
            try io.truncate(offsetFD, to: 0)
            try io.truncate(offsetFD, to: Int64(configuration.offsetIndexEntriesMax * OffsetIndex.entryByteCount))
            timeFD = try io.open(timeIndexPath, mode: .createReadWrite)
        } catch {
            io.close(offsetFD)
            throw error
        }
        do {
            try io.truncate(timeFD, to: 0)
            try io.truncate(timeFD, to: Int64(configuration.timeIndexEntriesMax * TimeIndex.entryByteCount))
        } catch {
            io.close(offsetFD)
            io.close(timeFD)
            throw error
        }
        let segment = LogSegment(
            baseOffset: baseOffset, file: file, offsetIndexPath: offsetIndexPath, timeIndexPath: timeIndexPath, io: io,
            size: 0, nextOffset: baseOffset, offsetIndex: OffsetIndex(baseOffset: baseOffset),
            timeIndex: TimeIndex(baseOffset: baseOffset),
            indexer: SegmentIndexer(baseOffset: baseOffset, intervalBytes: configuration.indexIntervalBytes),
            offsetIndexFD: offsetFD, timeIndexFD: timeFD, isActive: true)
        let jitterMax = min(configuration.segmentJitterMs, configuration.segmentMs)
        if jitterMax > 0 { segment.rollJitterMs = Int64.random(in: 0..<jitterMax) }
        return segment
    }

    // MARK: Writer operations

    /// Whether Kafka's `shouldRoll` says to start a new segment before appending a batch of
    /// `byteCount` bytes whose last offset is `lastOffset` at wall time `now`. An empty segment never
    /// rolls (its successor would have the same base offset).
    func shouldRoll(byteCount: Int, lastOffset: Int64, now: Int64, configuration: LogConfiguration) -> Bool {
        guard size > 0 else { return false }
        if size > Int64(configuration.segmentBytesClamped) - Int64(byteCount) { return true }
        if let base = rollingBaseMs, now - base > configuration.segmentMs - rollJitterMs { return true }
        if offsetEntryCount >= configuration.offsetIndexEntriesMax { return true }
        if timeEntryCount >= configuration.timeIndexEntriesMax - 1 { return true }
        if lastOffset - baseOffset > Int64(Int32.max) { return true }
        return false
    }

    /// Whether `segment.ms` has passed since the first batch (for rolls without an append).
    func isDueForTimeRoll(now: Int64, configuration: LogConfiguration) -> Bool {
        guard size > 0, let base = rollingBaseMs else { return false }
        return now - base > configuration.segmentMs - rollJitterMs
    }

    /// Reserves the next `byteCount` bytes for a batch and stages the index entries it earns.
    /// Returns the batch's file position.
    func reserve(lastOffset: Int64, byteCount: Int, maxTimestamp: Int64, now: Int64) -> Int64 {
        let position = size
        if rollingBaseMs == nil { rollingBaseMs = now }
        let (offsetEntry, timeEntry) = indexer.add(
            lastOffset: lastOffset, position: position, byteCount: byteCount, maxTimestamp: maxTimestamp)
        if let offsetEntry {
            pendingOffsetEntries.append(offsetEntry)
            offsetEntryCount += 1
        }
        if let timeEntry {
            pendingTimeEntries.append(timeEntry)
            timeEntryCount += 1
        }
        size += Int64(byteCount)
        nextOffset = lastOffset + 1
        return position
    }

    /// Makes the segment inactive: stages the final time-index entry and trims both index files to the
    /// length they will have once the pending entries are written (which the caller does next).
    func deactivate() throws(DiskError) {
        guard isActive else { return }
        isActive = false
        if let entry = indexer.nextTimeEntry() {
            pendingTimeEntries.append(entry)
            timeEntryCount += 1
        }
        if let fd = offsetIndexFD { try io.truncate(fd, to: Int64(offsetEntryCount * OffsetIndex.entryByteCount)) }
        if let fd = timeIndexFD { try io.truncate(fd, to: Int64(timeEntryCount * TimeIndex.entryByteCount)) }
    }

    /// File position of pending offset-index entry `i`.
    func offsetEntryFilePosition(pending i: Int) -> Int64 {
        Int64((offsetEntryCount - pendingOffsetEntries.count + i) * OffsetIndex.entryByteCount)
    }

    func timeEntryFilePosition(pending i: Int) -> Int64 {
        Int64((timeEntryCount - pendingTimeEntries.count + i) * TimeIndex.entryByteCount)
    }

    /// Writes pending index entries with plain writes (outside an appender group: shutdown).
    func writePendingIndexEntries() throws(DiskError) {
        if let fd = offsetIndexFD, !pendingOffsetEntries.isEmpty {
            let bytes = OffsetIndex.encode(pendingOffsetEntries)
            let position = offsetEntryFilePosition(pending: 0)
            try io.write(fd, bytes: bytes, at: position)
        }
        if let fd = timeIndexFD, !pendingTimeEntries.isEmpty {
            let bytes = TimeIndex.encode(pendingTimeEntries)
            let position = timeEntryFilePosition(pending: 0)
            try io.write(fd, bytes: bytes, at: position)
        }
    }

    /// Publishes completed appends to readers. Caller holds the partition lock.
    func commitLocked() {
        committedSize = size
        if !pendingOffsetEntries.isEmpty {
            offsetIndex.entries.append(contentsOf: pendingOffsetEntries)
            pendingOffsetEntries.removeAll(keepingCapacity: true)
        }
        if !pendingTimeEntries.isEmpty {
            timeIndex.entries.append(contentsOf: pendingTimeEntries)
            pendingTimeEntries.removeAll(keepingCapacity: true)
        }
        maxTimestamp = indexer.maxTimestamp
        offsetOfMaxTimestamp = indexer.offsetOfMaxTimestamp
    }
}
