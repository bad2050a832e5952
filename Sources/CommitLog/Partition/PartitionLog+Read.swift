import DiskIO
import RecordFormat
import Synchronization

extension PartitionLog {
    private struct ReadPlan {
        let segment: LogSegment
        /// The segment's `.log`, held open for this read (and by the slices returned).
        let file: SegmentFileHandle
        /// The segment's committed size: nothing past it is read.
        let end: Int64
        /// Where to start scanning for the batch containing the cursor (an index entry or 0).
        let scanFrom: Int64
        /// A batch start at most `scanFrom + budget` from the index, to skip scanning toward maxBytes.
        let jump: Int64?
    }

    /// Slices of the log starting at the batch **containing** `offset`: whole batches, up to the high
    /// watermark, at most `maxBytes` — but always at least one whole batch when one exists at or after
    /// `offset` (KIP-74), even if larger than `maxBytes`. Empty when `offset` is the high watermark.
    ///
    /// Thread-safe and concurrent with appends. IO is limited to the index lookup's short scan
    /// (`pread` of batch headers).
    /// - Throws: `.offsetOutOfRange` if `offset` is below the log start offset or above the high
    ///   watermark; `.corruptBatch` / `.storage` if the file cannot be scanned.
    public func read(from start: Offset, maxBytes: Int) throws(CommitLogError) -> LogReadResult {
        let offset = start.value
        var slices: [FileSlice] = []
        var byteCount = 0
        var highWatermark: Int64 = 0
        var logStartOffset: Int64 = 0
        var exhaustedSegmentBase: Int64?
        var first = true
        while true {
            let plan = try state.withLock { (s) throws(CommitLogError) -> ReadPlan? in
                if first {
                    guard offset >= s.logStartOffset, offset <= s.highWatermark else {
                        throw CommitLogError(
                            .offsetOutOfRange,
                            "\(topicPartition): offset \(offset) is outside [\(s.logStartOffset), \(s.highWatermark)]")
                    }
                    logStartOffset = s.logStartOffset
                }
                // Committed sizes and the high watermark are published together under this lock:
                // the last pass's high watermark bounds every byte returned.
                highWatermark = s.highWatermark
                guard offset < s.highWatermark else { return nil }
                let index: Int
                if let exhausted = exhaustedSegmentBase {
                    guard let next = s.segments.firstIndex(where: { $0.baseOffset > exhausted }) else { return nil }
                    index = next
                } else {
                    index = Self.floorSegmentIndex(s.segments, offset)
                }
                let segment = s.segments[index]
                let scanFrom = exhaustedSegmentBase == nil ? segment.offsetIndex.lookup(offset).position : 0
                let budget = Int64(max(0, maxBytes - byteCount))
                let jump = segment.offsetIndex.floorPosition(atMost: scanFrom + budget)
                // Opened (if the LRU closed it) while the segment is still in the list, so retention
                // cannot have renamed it yet.
                let file: SegmentFileHandle
                do throws(DiskError) { file = try files.acquire(segment) } catch { throw .storage(error, "opening \(segment.logPath)") }
                return ReadPlan(segment: segment, file: file, end: segment.committedSize, scanFrom: scanFrom, jump: jump)
            }
            first = false
            guard let plan else { break }

            // Find the batch containing `offset` (the first whose last offset reaches it).
            func scan(from start: Int64) throws(CommitLogError) -> (Int64, RecordBatchHeader?) {
                var position = start
                while position < plan.end {
                    let header = try BatchHeaderReader.header(io: io, file: plan.file, at: position, end: plan.end)
                    if header.lastOffset >= offset { return (position, header) }
                    position += Int64(header.totalByteCount)
                }
                return (position, nil)
            }
            var (position, firstHeader): (Int64, RecordBatchHeader?)
            do {
                (position, firstHeader) = try scan(from: plan.scanFrom)
                // An index entry that does not point at the batch holding the offset (a well-formed
                // but wrong entry that survived the load's sanity check) is not trusted: rescan the
                // segment from its start.
                if plan.scanFrom > 0, let header = firstHeader, header.baseOffset > offset { (position, firstHeader) = try scan(from: 0) }
            } catch where plan.scanFrom > 0 {
                (position, firstHeader) = try scan(from: 0)
            }
            guard let firstHeader else {
                exhaustedSegmentBase = plan.segment.baseOffset
                continue
            }
            let budget = Int64(maxBytes - byteCount)
            let firstEnd = position + Int64(firstHeader.totalByteCount)
            if firstEnd - position > budget && !slices.isEmpty { break }

            // Extend over whole batches while they fit in the budget.
            var end = firstEnd
            let limit = position + budget
            if limit >= plan.end {
                end = plan.end
            } else {
                if let jump = plan.jump, jump > end { end = jump }
                while end < plan.end {
                    let header = try BatchHeaderReader.header(io: io, file: plan.file, at: end, end: plan.end)
                    let next = end + Int64(header.totalByteCount)
                    if next > limit { break }
                    end = next
                }
            }
            let length = Int(end - position)
            slices.append(FileSlice(file: plan.file, position: FilePosition(position), length: length))
            byteCount += length
            if end < plan.end || byteCount >= maxBytes { break }
            exhaustedSegmentBase = plan.segment.baseOffset
        }
        return LogReadResult(slices: slices, byteCount: byteCount, highWatermark: Offset(highWatermark), logStartOffset: Offset(logStartOffset))
    }

    /// ListOffsets by timestamp: the first offset whose record timestamp is >= `timestamp`, with that
    /// timestamp. Uses the time index, then scans batches by max timestamp; inside an uncompressed batch
    /// it finds the record, for a compressed one it answers the batch's base offset and max timestamp.
    /// nil if no record qualifies.
    public func offset(forTimestamp timestamp: Int64) throws(CommitLogError) -> (offset: Offset, timestamp: Int64)? {
        struct Candidate {
            let segment: LogSegment
            let end: Int64
            let scanFrom: Int64
        }
        let (candidates, logStart) = state.withLock { s -> ([Candidate], Int64) in
            var candidates: [Candidate] = []
            for segment in s.segments where segment.committedSize > 0 && segment.maxTimestamp >= timestamp {
                let startOffset = candidates.isEmpty ? max(segment.timeIndex.lookup(timestamp), s.logStartOffset) : segment.baseOffset
                let scanFrom = segment.offsetIndex.lookup(startOffset).position
                candidates.append(Candidate(segment: segment, end: segment.committedSize, scanFrom: scanFrom))
            }
            return (candidates, s.logStartOffset)
        }
        for candidate in candidates {
            let file: SegmentFileHandle
            do throws(DiskError) { file = try files.acquire(candidate.segment) } catch { throw .storage(error, "opening \(candidate.segment.logPath)") }
            var position = candidate.scanFrom
            while position < candidate.end {
                let header = try BatchHeaderReader.header(io: io, file: file, at: position, end: candidate.end)
                defer { position += Int64(header.totalByteCount) }
                guard header.maxTimestamp >= timestamp, header.lastOffset >= logStart else { continue }
                if header.isLogAppendTime || header.compression != CompressionCodec.none {
                    return (Offset(max(header.baseOffset, logStart)), header.maxTimestamp)
                }
                let bytes = try BatchHeaderReader.bytes(io: io, file: file, at: position, count: header.totalByteCount)
                var found: (offset: Int64, timestamp: Int64)?
                _ = bytes.withUnsafeBytes { raw in
                    RecordTimestampScanner.forEachRecord(in: raw, header: header) { recordOffset, recordTimestamp in
                        guard recordOffset >= logStart, recordTimestamp >= timestamp else { return false }
                        found = (recordOffset, recordTimestamp)
                        return true
                    }
                }
                if let found { return (Offset(found.offset), found.timestamp) }
            }
        }
        return nil
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734): the offset of the record with the greatest timestamp (the
    /// first such), with that timestamp; nil for an empty log or one without timestamps.
    public func offsetOfMaxTimestamp() throws(CommitLogError) -> (offset: Offset, timestamp: Int64)? {
        let target = state.withLock { s -> (segment: LogSegment, end: Int64, scanFrom: Int64, maxTimestamp: Int64, batchLastOffset: Int64)? in
            var best: LogSegment?
            for segment in s.segments where segment.committedSize > 0 && segment.maxTimestamp >= 0 {
                if best == nil || segment.maxTimestamp > best!.maxTimestamp { best = segment }
            }
            guard let best else { return nil }
            let scanFrom = best.offsetIndex.lookup(best.offsetOfMaxTimestamp).position
            return (best, best.committedSize, scanFrom, best.maxTimestamp, best.offsetOfMaxTimestamp)
        }
        guard let target else { return nil }
        let file: SegmentFileHandle
        do throws(DiskError) { file = try files.acquire(target.segment) } catch { throw .storage(error, "opening \(target.segment.logPath)") }
        var position = target.scanFrom
        while position < target.end {
            let header = try BatchHeaderReader.header(io: io, file: file, at: position, end: target.end)
            defer { position += Int64(header.totalByteCount) }
            guard header.maxTimestamp == target.maxTimestamp else { continue }
            if header.isLogAppendTime || header.compression != CompressionCodec.none {
                return (Offset(header.baseOffset), header.maxTimestamp)
            }
            let bytes = try BatchHeaderReader.bytes(io: io, file: file, at: position, count: header.totalByteCount)
            var found: Int64?
            _ = bytes.withUnsafeBytes { raw in
                RecordTimestampScanner.forEachRecord(in: raw, header: header) { recordOffset, recordTimestamp in
                    guard recordTimestamp == header.maxTimestamp else { return false }
                    found = recordOffset
                    return true
                }
            }
            return (Offset(found ?? header.baseOffset), header.maxTimestamp)
        }
        return nil
    }

    /// Index of the last segment whose base offset is <= `offset` (0 if none is).
    static func floorSegmentIndex(_ segments: [LogSegment], _ offset: Int64) -> Int {
        var low = 0
        var high = segments.count
        while low < high {
            let mid = (low + high) / 2
            if segments[mid].baseOffset <= offset { low = mid + 1 } else { high = mid }
        }
        return max(0, low - 1)
    }
}
