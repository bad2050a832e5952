import DiskIO

/// One segment: `<base>.log` plus its `.index` and `.timeindex`.
///
/// Descriptors (see `SegmentFileCache`): the `.log` is open while the segment is active or not yet
/// flushed (*pinned*: the writer's `file`), and otherwise only while the LRU keeps it (readers go
/// through `SegmentFileCache.acquire`). The index files are never held open: the indexes live in
/// memory, and `deactivate` writes each index file whole when the segment stops being active (an
/// active segment is always rebuilt from its `.log` after a crash; a clean shutdown deactivates it).
///
/// Two kinds of state live here. The *reader-visible* part (`committedSize`, the indexes, the max
/// timestamp) is read and written only under the owning `PartitionLog`'s lock, and describes
/// completed appends only. The *writer* part (reserved size, pending index entries, index file
/// descriptors, flush bookkeeping) belongs to the appender thread — or to `LogManager` while the
/// appender is not running (load, shutdown).
final class LogSegment: @unchecked Sendable {
    let baseOffset: Int64
    let logPath: String
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

    // MARK: Descriptor (see SegmentFileCache)

    /// The open `.log`, or nil while closed. A pinned segment's handle is the writer's and never
    /// changes; an unpinned one's is read and changed under the cache's lock.
    var handle: SegmentFileHandle?
    /// Active, or holding bytes/indexes not yet fdatasynced: the LRU never closes it.
    var pinned = true
    /// The cache counting this segment's descriptor (set by `SegmentFileCache.register`).
    /// Weak: the cache holds its evictable segments, so a strong back-reference would keep both alive
    /// after their log manager is gone.
    weak var cache: SegmentFileCache?
    /// LRU stamp (cache lock).
    var lastUse: UInt64 = 0

    /// The `.log` of a pinned segment (the writer's, or the loader's before the log is registered).
    var file: SegmentFileHandle { handle! }

    init(
        baseOffset: Int64, file: SegmentFileHandle, offsetIndexPath: String, timeIndexPath: String, io: any FileIO,
        size: Int64, nextOffset: Int64, offsetIndex: OffsetIndex, timeIndex: TimeIndex, indexer: SegmentIndexer,
        offsetIndexFD: Int32?, timeIndexFD: Int32?, isActive: Bool
    ) {
        self.baseOffset = baseOffset
        self.logPath = file.path
        self.handle = file
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

    deinit {
        closeIndexFiles()
        if handle != nil { cache?.segmentReleased() }
    }

    func closeIndexFiles() {
        if let fd = offsetIndexFD { io.close(fd) }
        if let fd = timeIndexFD { io.close(fd) }
        offsetIndexFD = nil
        timeIndexFD = nil
    }

    /// Creates a new, empty, active segment: an empty `.log` and index files preallocated (zeros) to
    /// `segment.index.bytes`, as Kafka does. The caller syncs the directory.
    static func create(
        directory: String, baseOffset: Int64, configuration: LogConfiguration, io: any FileIO, random: StoreRandom
    ) throws(DiskError) -> LogSegment {
        let logPath = SegmentFileName.join(directory, SegmentFileName.log(baseOffset))
        let offsetIndexPath = SegmentFileName.join(directory, SegmentFileName.offsetIndex(baseOffset))
        let timeIndexPath = SegmentFileName.join(directory, SegmentFileName.timeIndex(baseOffset))
        let logFD = try io.open(logPath, mode: .createReadWrite)
        let file = SegmentFileHandle(fd: logFD, path: logPath, io: io)
        try io.truncate(logFD, to: 0)
        // The index files exist from the start (Kafka's layout) but are written only by `deactivate`.
        for path in [offsetIndexPath, timeIndexPath] {
            let fd = try io.open(path, mode: .createReadWrite)
            defer { io.close(fd) }
            try io.truncate(fd, to: 0)
        }
        let segment = LogSegment(
            baseOffset: baseOffset, file: file, offsetIndexPath: offsetIndexPath, timeIndexPath: timeIndexPath, io: io,
            size: 0, nextOffset: baseOffset, offsetIndex: OffsetIndex(baseOffset: baseOffset),
            timeIndex: TimeIndex(baseOffset: baseOffset),
            indexer: SegmentIndexer(baseOffset: baseOffset, intervalBytes: configuration.indexIntervalBytes),
            offsetIndexFD: nil, timeIndexFD: nil, isActive: true)
        let jitterMax = min(configuration.segmentJitterMs, configuration.segmentMs)
        if jitterMax > 0 { segment.rollJitterMs = random.int64(in: 0..<jitterMax) }
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

    /// Makes the segment inactive: stages the final time-index entry and writes both index files
    /// whole — published entries plus pending ones — at their exact length. Their descriptors stay
    /// open until the flush that makes them durable (`PartitionLog.flushCompleted` closes them).
    /// Writer thread: the published entries change only there.
    func deactivate() throws(DiskError) {
        guard isActive else { return }
        isActive = false
        if let entry = indexer.nextTimeEntry() {
            pendingTimeEntries.append(entry)
            timeEntryCount += 1
        }
        let offsetBytes = OffsetIndex.encode(offsetIndex.entries + pendingOffsetEntries)
        let timeBytes = TimeIndex.encode(timeIndex.entries + pendingTimeEntries)
        offsetIndexFD = try Self.writeIndexFile(offsetIndexPath, offsetBytes, existing: offsetIndexFD, io: io)
        timeIndexFD = try Self.writeIndexFile(timeIndexPath, timeBytes, existing: timeIndexFD, io: io)
    }

    private static func writeIndexFile(_ path: String, _ bytes: [UInt8], existing: Int32?, io: any FileIO) throws(DiskError) -> Int32 {
        let fd: Int32
        if let existing { fd = existing } else { fd = try io.open(path, mode: .createReadWrite) }
        do throws(DiskError) {
            try io.truncate(fd, to: Int64(bytes.count))
            if !bytes.isEmpty { try io.write(fd, bytes: bytes, at: 0) }
        } catch {
            if existing == nil { io.close(fd) }
            throw error
        }
        return fd
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
