import DiskIO
import Logging
import NIOCore
import RecordCompression
import RecordFormat
import Synchronization

/// One cleaning round of one partition (Kafka `Cleaner.doClean`):
///
/// 1. Map keys → latest offsets over the dirty range [firstDirty, firstUncleanable), batch by batch,
///    until the fixed-size map is full; `endOffset` is where mapping stopped (all records below it
///    were mapped). A map smaller than the key set thus needs several rounds, each one cleaning
///    further (Kafka stops mid-segment too: `Cleaner.buildOffsetMap` ends wherever the map fills).
/// 2. Group the segments from the log start up to the one holding `endOffset - 1` into runs of at
///    most `segment.bytes`, `segment.index.bytes` of index and 2^31 offsets.
/// 3. Rewrite each run into one new segment with the survivors and swap it in (`SegmentSwap`).
/// 4. The caller records `endOffset` in `cleaner-offset-checkpoint`.
///
/// Which records survive (`shouldRetainRecord`): records at or past `endOffset` (not analysed yet);
/// else keyed records whose offset is the latest for their key (`>= map[key]`; keys not in the map
/// were already deduplicated by earlier rounds) — a tombstone only until its batch's delete horizon
/// (attribute bit 6, base timestamp = horizon): a batch keeping a tombstone without a horizon gets
/// `now + delete.retention.ms` (KIP-534). Keyless records below `endOffset` are dropped (produce
/// refuses them on compacted topics). Aborted transactions' data goes. A transaction marker stays
/// while data of its transaction does (else a reload would take that data for an open
/// transaction), and while aborted data of its producer was seen this round (removed in this
/// round's swap, it must be gone for good first); once neither holds it gets a delete horizon
/// (`now + delete.retention.ms`) and is removed after it, as Kafka's cleaner does (KIP-534) —
/// unless it is an active producer's last batch. A batch whose records all go is still kept, empty, when it is the last batch of an
/// active idempotent producer, so its sequence survives a reload. Batches that lose nothing and need
/// no horizon are copied byte for byte; others are re-encoded, re-compressed with their codec.
///
/// Every rewritten segment ends exactly where its run ended: if the run's last offsets were all
/// removed, an empty batch header at the run's last offset seals it. Offsets stay contiguous between
/// segments (recovery relies on it) and the swap's range is exact.
struct CompactionRound {
    struct Statistics: Sendable, Equatable {
        var bytesRead: Int64 = 0
        var bytesWritten: Int64 = 0
        var recordsRead: Int64 = 0
        var recordsRemoved: Int64 = 0
        var segmentsRewritten = 0
        var mappedRecords: Int64 = 0
    }

    struct Outcome: Sendable {
        /// Everything below it was mapped and cleaned: the new first dirty offset.
        var endOffset: Int64
        /// The earliest delete horizon left in the cleaned segments (nil: no tombstones wait).
        var earliestDeleteHorizonMs: Int64?
        var statistics: Statistics
    }

    /// The log changed under the round (retention or DeleteRecords removed a segment, or it was
    /// deleted): the round stops; nothing is damaged.
    struct LogChanged: Error, CustomStringConvertible {
        var description: String
    }

    let log: PartitionLog
    let io: any FileIO
    let logger: Logger
    let now: Int64
    /// Last offset of each active idempotent producer's last batch.
    let producerLastOffsets: [Int64: Int64]
    let ioBufferBytes: Int
    let crashHook: SegmentSwap.CrashHook?
    let throttle: IOThrottle?
    /// The partition's aborted transactions: their records are removed (and never shadow a key),
    /// as Kafka's cleaner does.
    var abortedTransactions: [AbortedTransaction] = []

    /// Kafka's `CleanedTransactionMetadata`, reduced: what the round saw of each producer's
    /// transaction since its last marker, in offset order across the groups.
    struct MarkerTracker {
        /// Producers with data of their current transaction kept.
        var keptData: Set<Int64> = []
        /// Producers with aborted data of their current transaction seen (and removed) this round.
        var abortedSeen: Set<Int64> = []

        /// A marker of `producerId`: whether nothing of its transaction remains; ends the transaction.
        mutating func closes(_ producerId: Int64) -> Bool {
            let kept = keptData.remove(producerId) != nil
            let aborted = abortedSeen.remove(producerId) != nil
            return !kept && !aborted
        }
    }

    /// Whether the batch is data of an aborted transaction.
    func isAborted(_ header: RecordBatchHeader) -> Bool {
        guard header.isTransactional, !header.isControl, header.producerId >= 0, !abortedTransactions.isEmpty else { return false }
        return abortedTransactions.contains {
            $0.producerId == header.producerId && $0.firstOffset <= header.baseOffset && header.baseOffset < $0.lastOffset
        }
    }

    private struct SegmentView {
        let segment: LogSegment
        let size: Int64
        let endOffset: Int64
        let indexBytes: Int
    }

    func run(plan: CompactionPlanner.Plan, map: inout KeyOffsetMap) throws -> Outcome {
        var statistics = Statistics()
        let (views, configuration, logStart) = try snapshot(below: plan.firstUncleanableOffset)

        // 1. The offset map.
        map.clear()
        var endOffset = plan.firstDirtyOffset
        mapping: for view in views where view.endOffset > plan.firstDirtyOffset {
            var full = false
            try forEachBatch(view) { header, batch in
                if full { return }
                guard header.lastOffset >= plan.firstDirtyOffset, !header.isControl, !isAborted(header) else { return }
                let (_, records) = try RecordBatch.decodeRecords(in: batch)
                for record in records {
                    let offset = header.baseOffset + Int64(record.offsetDelta)
                    guard offset >= plan.firstDirtyOffset else { continue }
                    if let key = record.key {
                        guard map.put(key, offset: offset) else {
                            full = true
                            endOffset = offset
                            return
                        }
                    }
                    statistics.mappedRecords += 1
                }
            }
            if full { break mapping }
            endOffset = view.endOffset
        }
        endOffset = max(endOffset, plan.firstDirtyOffset)

        // 2. Groups: from the log start through the segment holding endOffset - 1 (for a
        //    horizon-only round, endOffset is the first dirty offset: the clean part).
        let cleanViews = views.filter { $0.segment.baseOffset < endOffset && $0.endOffset > logStart }
        var groups: [[SegmentView]] = []
        var current: [SegmentView] = []
        var bytes: Int64 = 0
        var indexBytes = 0
        for view in cleanViews {
            if let first = current.first,
                bytes + view.size > Int64(configuration.segmentBytesClamped)
                    || indexBytes + view.indexBytes > configuration.segmentIndexBytes
                    || view.endOffset - 1 - first.segment.baseOffset > Int64(Int32.max)
            {
                groups.append(current)
                current = []
                bytes = 0
                indexBytes = 0
            }
            current.append(view)
            bytes += view.size
            indexBytes += view.indexBytes
        }
        if !current.isEmpty { groups.append(current) }

        // 3. Rewrite and swap each group.
        var earliestHorizon: Int64?
        var markers = MarkerTracker()
        for group in groups {
            let horizon = try clean(
                group, endOffset: endOffset, map: map, configuration: configuration, markers: &markers, statistics: &statistics)
            if let horizon { earliestHorizon = min(earliestHorizon ?? .max, horizon) }
        }
        return Outcome(endOffset: endOffset, earliestDeleteHorizonMs: earliestHorizon, statistics: statistics)
    }

    /// The closed segments below `limit`, with their committed sizes and end offsets.
    private func snapshot(below limit: Int64) throws -> ([SegmentView], LogConfiguration, Int64) {
        try log.state.withLock { s throws -> ([SegmentView], LogConfiguration, Int64) in
            guard !s.isClosed else { throw LogChanged(description: "\(log.topicPartition) was deleted") }
            var views: [SegmentView] = []
            for index in 0..<(s.segments.count - 1) where s.segments[index].baseOffset < limit {
                let segment = s.segments[index]
                views.append(SegmentView(
                    segment: segment, size: segment.committedSize, endOffset: s.segments[index + 1].baseOffset,
                    indexBytes: segment.offsetIndex.byteCount + segment.timeIndex.byteCount))
            }
            return (views, s.configuration, s.logStartOffset)
        }
    }

    /// Calls `body` with each batch of a segment (header and bytes), in order.
    private func forEachBatch(_ view: SegmentView, _ body: (RecordBatchHeader, ByteBuffer) throws -> Void) throws {
        let file = try log.files.acquire(view.segment)
        defer { withExtendedLifetime(file) {} }  // the reader borrows its descriptor
        var reader = ChunkReader(io: io, fd: file.fd, fileSize: view.size)
        var position: Int64 = 0
        while position < view.size {
            guard let lengthField = try reader.int32(at: position + 8) else {
                throw CommitLogError(.corruptBatch, "\(view.segment.logPath): unreadable batch at \(position)")
            }
            let total = Int(lengthField) + RecordBatchHeader.logOverhead
            guard lengthField >= RecordBatch.batchLengthMin, position + Int64(total) <= view.size,
                let batch = try reader.slice(at: position, length: total), let header = RecordBatchHeader(buffer: batch)
            else {
                throw CommitLogError(.corruptBatch, "\(view.segment.logPath): invalid batch at \(position)")
            }
            try throttle?.consume(total)
            try body(header, batch)
            position += Int64(total)
        }
    }

    /// Rewrites one group into `<base>.*.cleaned` and swaps it in. Returns the earliest delete
    /// horizon it holds.
    private func clean(
        _ group: [SegmentView], endOffset: Int64, map: KeyOffsetMap, configuration: LogConfiguration, markers: inout MarkerTracker,
        statistics: inout Statistics
    ) throws -> Int64? {
        let base = group[0].segment.baseOffset
        let groupEnd = group[group.count - 1].endOffset
        let directory = log.directory
        var writer = try CleanedSegmentWriter(
            directory: directory, baseOffset: base, indexIntervalBytes: configuration.indexIntervalBytes, io: io,
            bufferBytes: ioBufferBytes)
        var earliestHorizon: Int64?
        do {
            for view in group {
                try forEachBatch(view) { header, batch in
                    statistics.bytesRead += Int64(batch.readableBytes)
                    let (output, horizon, removed, read) = try filter(
                        header, batch, endOffset: endOffset, map: map, configuration: configuration, markers: &markers)
                    statistics.recordsRead += read
                    statistics.recordsRemoved += removed
                    if let horizon { earliestHorizon = min(earliestHorizon ?? .max, horizon) }
                    if let output { try writer.append(output) }
                }
            }
            if writer.nextOffset < groupEnd {
                let sealBase = groupEnd - 1
                try writer.append(CompactedBatchEncoder.emptyBatch(baseOffset: max(sealBase, writer.nextOffset), lastOffsetDelta: 0, timestamp: -1))
            }
            try writer.finish()
            try SegmentSwap.check(crashHook, .cleanedWritten)
        } catch let interrupted as SegmentSwap.Interrupted {
            throw interrupted
        } catch {
            writer.abandon()
            throw error
        }
        statistics.bytesWritten += writer.size
        try swapIn(group, writer: writer, groupEnd: groupEnd)
        statistics.segmentsRewritten += 1
        return earliestHorizon
    }

    /// What to write for one batch: nil to drop it. Also the horizon it carries if it keeps a
    /// tombstone, records removed, records read.
    private func filter(
        _ header: RecordBatchHeader, _ batch: ByteBuffer, endOffset: Int64, map: KeyOffsetMap, configuration: LogConfiguration,
        markers: inout MarkerTracker
    ) throws -> (ByteBuffer?, Int64?, Int64, Int64) {
        if header.isControl { return try filterMarker(header, batch, endOffset: endOffset, configuration: configuration, markers: &markers) }
        let (output, horizon, removed, read) = try filterData(header, batch, endOffset: endOffset, map: map, configuration: configuration)
        if header.isTransactional, header.producerId >= 0 {
            if isAborted(header) {
                markers.abortedSeen.insert(header.producerId)
            } else if output != nil {
                markers.keptData.insert(header.producerId)
            }
        }
        return (output, horizon, removed, read)
    }

    /// A transaction marker: kept while its transaction has data left (or aborted data went this
    /// round); then given a delete horizon, and dropped once it passed.
    private func filterMarker(
        _ header: RecordBatchHeader, _ batch: ByteBuffer, endOffset: Int64, configuration: LogConfiguration, markers: inout MarkerTracker
    ) throws -> (ByteBuffer?, Int64?, Int64, Int64) {
        guard header.producerId >= 0 else { return (batch, nil, 0, 0) }
        let closesEmpty = markers.closes(header.producerId)
        guard closesEmpty, header.lastOffset < endOffset else { return (batch, nil, 0, 0) }
        if header.hasDeleteHorizon {
            let isProducersLast = producerLastOffsets[header.producerId] == header.lastOffset
            if now >= header.baseTimestamp && !isProducersLast { return (nil, nil, Int64(header.recordsCount), Int64(header.recordsCount)) }
            return (batch, header.baseTimestamp, 0, 0)
        }
        let (_, records) = try RecordBatch.decodeRecords(in: batch)
        guard !records.isEmpty else { return (batch, nil, 0, 0) }
        let horizon = now &+ configuration.deleteRetentionMs
        let survivors = records.map { CompactedBatchEncoder.Survivor(record: $0, timestamp: header.baseTimestamp &+ $0.timestampDelta) }
        return (try CompactedBatchEncoder.encode(original: header, survivors: survivors, deleteHorizonMs: horizon), horizon, 0, 0)
    }

    /// A data batch: the survivors (see the type's notes).
    private func filterData(
        _ header: RecordBatchHeader, _ batch: ByteBuffer, endOffset: Int64, map: KeyOffsetMap, configuration: LogConfiguration
    ) throws -> (ByteBuffer?, Int64?, Int64, Int64) {
        let aborted = isAborted(header)
        // Not analysed yet: kept as it is (a tombstone in it gets its horizon once it is analysed).
        if header.baseOffset >= endOffset && !aborted { return (batch, nil, 0, Int64(header.recordsCount)) }
        let (_, records) = try RecordBatch.decodeRecords(in: batch)
        let timestampBase = header.baseTimestamp
        var survivors: [CompactedBatchEncoder.Survivor] = []
        survivors.reserveCapacity(records.count)
        var keepsTombstone = false
        var keepsAnalysedTombstone = false
        let horizonPassed = header.hasDeleteHorizon && now >= header.baseTimestamp
        for record in records {
            let offset = header.baseOffset + Int64(record.offsetDelta)
            var keep: Bool
            if aborted {
                keep = false
            } else if offset >= endOffset {
                // Not analysed: older values of its key may still be below, so a tombstone here stays.
                keep = true
            } else if let key = record.key {
                keep = offset >= (map.get(key) ?? -1)
                if keep && record.value == nil {
                    if horizonPassed { keep = false } else { keepsAnalysedTombstone = true }
                }
            } else {
                keep = false
            }
            if keep {
                if record.value == nil { keepsTombstone = true }
                survivors.append(.init(record: record, timestamp: timestampBase &+ record.timestampDelta))
            }
        }
        let removed = Int64(records.count - survivors.count)
        let horizon: Int64?
        if header.hasDeleteHorizon {
            horizon = keepsTombstone ? header.baseTimestamp : nil
        } else {
            horizon = keepsAnalysedTombstone ? now &+ configuration.deleteRetentionMs : nil
        }
        let needsHorizon = keepsAnalysedTombstone && !header.hasDeleteHorizon
        if survivors.isEmpty {
            if header.producerId >= 0, producerLastOffsets[header.producerId] == header.lastOffset {
                let empty = CompactedBatchEncoder.emptyBatch(
                    baseOffset: header.baseOffset, lastOffsetDelta: header.lastOffsetDelta, timestamp: header.maxTimestamp,
                    attributes: header.attributes, partitionLeaderEpoch: header.partitionLeaderEpoch, producerId: header.producerId,
                    producerEpoch: header.producerEpoch, baseSequence: header.baseSequence)
                return (empty, nil, removed, Int64(records.count))
            }
            return (nil, nil, removed, Int64(records.count))
        }
        if removed == 0 && !needsHorizon { return (batch, horizon, 0, Int64(records.count)) }
        let rewritten = try CompactedBatchEncoder.encode(
            original: header, survivors: survivors, deleteHorizonMs: header.hasDeleteHorizon ? header.baseTimestamp : horizon)
        return (rewritten, horizon, removed, Int64(records.count))
    }

    /// Steps 2–5 of `SegmentSwap` for one group.
    private func swapIn(_ group: [SegmentView], writer: CleanedSegmentWriter, groupEnd: Int64) throws {
        let directory = log.directory
        let base = writer.baseOffset
        do {
            try SegmentSwap.renameCleanedToSwap(directory: directory, baseOffset: base, io: io, hook: crashHook)
        } catch let interrupted as SegmentSwap.Interrupted {
            throw interrupted
        } catch {
            SegmentSwap.discard(directory: directory, baseOffset: base, io: io)
            throw error
        }
        try SegmentSwap.check(crashHook, .swapped)
        let newSegment = writer.makeSegment(endOffset: groupEnd)
        try log.segmentFilesLock.withLock { _ throws in
            let replaced = log.state.withLock { s -> Bool in
                guard !s.isClosed, let first = s.segments.firstIndex(where: { $0 === group[0].segment }),
                    first + group.count < s.segments.count
                else { return false }
                for (offset, view) in group.enumerated() where s.segments[first + offset] !== view.segment { return false }
                s.segments.replaceSubrange(first..<(first + group.count), with: [newSegment])
                return true
            }
            guard replaced else {
                SegmentSwap.discard(directory: directory, baseOffset: base, io: io)
                throw LogChanged(description: "\(log.topicPartition): segments changed while cleaning \(base)")
            }
            // The cleaned segment is durable and inactive: the LRU may close it; the old ones go.
            log.files.forget(group.map(\.segment))
            newSegment.pinned = false
            log.files.register([newSegment])
            // Step 3: the old files go to `.deleted`.
            let due = log.clock.wallMilliseconds() + max(0, log.configuration.fileDeleteDelayMs)
            var renamedAny = false
            for view in group {
                for path in [view.segment.logPath, view.segment.offsetIndexPath, view.segment.timeIndexPath] where io.fileExists(path) {
                    let renamed = SegmentFileName.with(path, suffix: SegmentFileName.deletedSuffix)
                    do throws(DiskError) { try io.rename(path, to: renamed) } catch {
                        throw CommitLogError.storage(error, "renaming \(path) to .deleted")
                    }
                    if let deleter = log.fileDeleter { deleter.schedule(renamed, dueMs: due) }
                    if !renamedAny {
                        renamedAny = true
                        try SegmentSwap.check(crashHook, .deletingOld)
                    }
                }
            }
            // The merged segment's `.txnindex` holds the group's aborted transactions; the other
            // segments' indexes go. (Lost by a crash here, they only named aborted data this round
            // removed: the loader drops indexes without a segment.)
            let aborted = log.state.withLock { s in s.abortedTransactions.filter { $0.lastOffset >= base && $0.lastOffset < groupEnd } }
            do throws(DiskError) {
                let merged = SegmentFileName.join(directory, TransactionIndexFile.name(base))
                if aborted.isEmpty {
                    if io.fileExists(merged) { try io.unlink(merged) }
                } else {
                    try io.writeFileAtomically(merged, TransactionIndexFile.encode(aborted))
                }
                for view in group.dropFirst() {
                    let path = SegmentFileName.join(directory, TransactionIndexFile.name(view.segment.baseOffset))
                    if io.fileExists(path) { try io.unlink(path) }
                }
            } catch {
                logger.warning("could not merge the transaction indexes", metadata: ["baseOffset": "\(base)", "error": "\(error)"])
            }
            do throws(DiskError) { try io.syncDirectory(directory) } catch { throw CommitLogError.storage(error, "syncing \(directory)") }
            if log.fileDeleter == nil {
                for view in group {
                    for path in [view.segment.logPath, view.segment.offsetIndexPath, view.segment.timeIndexPath] {
                        try? io.unlink(SegmentFileName.with(path, suffix: SegmentFileName.deletedSuffix))
                    }
                }
            }
            // Step 4.
            try SegmentSwap.stripSwap(directory: directory, baseOffset: base, io: io, hook: crashHook)
        }
        try SegmentSwap.check(crashHook, .stripped)
    }
}

/// Writes a cleaned segment: `<base>.log.cleaned` through a bounded buffer, then its indexes
/// (built with the append path's `SegmentIndexer` rule) and fdatasyncs all three.
struct CleanedSegmentWriter {
    let directory: String
    let baseOffset: Int64
    let io: any FileIO
    let bufferBytes: Int
    let logFD: Int32
    private(set) var size: Int64 = 0
    /// The offset after the last batch written (the base offset if none).
    private(set) var nextOffset: Int64
    private var buffer = ByteBuffer()
    private var bufferStart: Int64 = 0
    private var indexer: SegmentIndexer
    private var offsetEntries: [OffsetIndexEntry] = []
    private var timeEntries: [TimeIndexEntry] = []

    init(directory: String, baseOffset: Int64, indexIntervalBytes: Int, io: any FileIO, bufferBytes: Int) throws {
        self.directory = directory
        self.baseOffset = baseOffset
        self.io = io
        self.bufferBytes = max(4096, bufferBytes)
        self.nextOffset = baseOffset
        self.indexer = SegmentIndexer(baseOffset: baseOffset, intervalBytes: indexIntervalBytes)
        // A leftover from an earlier failed round would otherwise be appended to.
        SegmentSwap.discard(directory: directory, baseOffset: baseOffset, io: io)
        let path = SegmentFileName.join(directory, SegmentFileName.log(baseOffset) + SegmentFileName.cleanedSuffix)
        do {
            logFD = try io.open(path, mode: .createReadWrite)
            try io.truncate(logFD, to: 0)
        } catch { throw CommitLogError.storage(error, "creating \(path)") }
        buffer.reserveCapacity(self.bufferBytes)
    }

    mutating func append(_ batch: ByteBuffer) throws {
        guard let header = RecordBatchHeader(buffer: batch) else { preconditionFailure("a cleaned batch without a header") }
        precondition(header.baseOffset >= nextOffset && header.totalByteCount == batch.readableBytes, "cleaned batches out of order")
        let (offsetEntry, timeEntry) = indexer.add(
            lastOffset: header.lastOffset, position: size, byteCount: batch.readableBytes, maxTimestamp: header.maxTimestamp)
        if let offsetEntry { offsetEntries.append(offsetEntry) }
        if let timeEntry { timeEntries.append(timeEntry) }
        if buffer.readableBytes + batch.readableBytes > bufferBytes { try flushBuffer() }
        buffer.writeImmutableBuffer(batch)
        size += Int64(batch.readableBytes)
        nextOffset = header.lastOffset + 1
    }

    private mutating func flushBuffer() throws {
        guard buffer.readableBytes > 0 else { return }
        let io = self.io
        let fd = logFD
        let at = bufferStart
        let result = buffer.withUnsafeReadableBytes { raw in Result { () throws(DiskError) in try io.write(fd, raw, at: at) } }
        do { try result.get() } catch { throw CommitLogError.storage(error, "writing a cleaned segment of \(directory)") }
        bufferStart += Int64(buffer.readableBytes)
        buffer.clear()
    }

    /// Writes the rest and the indexes, fdatasyncs everything (step 1 of `SegmentSwap`).
    mutating func finish() throws {
        try flushBuffer()
        if let final = indexer.nextTimeEntry() { timeEntries.append(final) }
        do {
            try io.fdatasync(logFD)
            try writeFile(SegmentFileName.offsetIndex(baseOffset), OffsetIndex.encode(offsetEntries))
            try writeFile(SegmentFileName.timeIndex(baseOffset), TimeIndex.encode(timeEntries))
        } catch { throw CommitLogError.storage(error, "finishing the cleaned segment \(baseOffset) of \(directory)") }
    }

    private func writeFile(_ name: String, _ bytes: [UInt8]) throws(DiskError) {
        let fd = try io.open(SegmentFileName.join(directory, name + SegmentFileName.cleanedSuffix), mode: .createReadWrite)
        defer { io.close(fd) }
        try io.truncate(fd, to: 0)
        if !bytes.isEmpty { try io.write(fd, bytes: bytes, at: 0) }
        try io.fdatasync(fd)
    }

    /// Closes and deletes the cleaned files after a failure.
    func abandon() {
        io.close(logFD)
        SegmentSwap.discard(directory: directory, baseOffset: baseOffset, io: io)
    }

    /// The in-memory segment for the swapped-in files, named by their final paths (the descriptor
    /// follows the renames).
    func makeSegment(endOffset: Int64) -> LogSegment {
        let logPath = SegmentFileName.join(directory, SegmentFileName.log(baseOffset))
        var indexer = self.indexer
        _ = indexer.nextTimeEntry()
        let segment = LogSegment(
            baseOffset: baseOffset, file: SegmentFileHandle(fd: logFD, path: logPath, io: io),
            offsetIndexPath: SegmentFileName.join(directory, SegmentFileName.offsetIndex(baseOffset)),
            timeIndexPath: SegmentFileName.join(directory, SegmentFileName.timeIndex(baseOffset)), io: io, size: size,
            nextOffset: endOffset, offsetIndex: OffsetIndex(baseOffset: baseOffset, entries: offsetEntries),
            timeIndex: TimeIndex(baseOffset: baseOffset, entries: timeEntries), indexer: indexer, offsetIndexFD: nil,
            timeIndexFD: nil, isActive: false)
        return segment
    }
}
