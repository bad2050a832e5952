import DiskIO
import NIOCore
import RecordCompression
import RecordFormat

/// Scans one segment's `.log`, validating every batch (size, CRC, offsets), and rebuilds its indexes
/// with the append path's rule (Kafka `LogSegment.recover`).
struct SegmentRecovery {
    /// Bytes of valid batches from the start of the file; the file is to be truncated here.
    var validBytes: Int64 = 0
    /// The offset after the last valid batch (the base offset if none).
    var nextOffset: Int64
    var offsetEntries: [OffsetIndexEntry] = []
    var timeEntries: [TimeIndexEntry] = []
    var indexer: SegmentIndexer
    /// The first batch's max timestamp (for `segment.ms` after a restart), -1 if none.
    var firstBatchMaxTimestamp: Int64 = -1
    /// Why the scan stopped before the end of the file, if it did.
    var stopReason: String?
    var fileSize: Int64 = 0

    /// Scans `fd` (a segment with base offset `baseOffset`) from the start. Batches must start at
    /// offsets >= `baseOffset`, increase, stay within a u32 relative offset and below `offsetLimit`
    /// (the next segment's base). The final time-index entry is included, as Kafka's recovery does.
    static func scan(
        io: any FileIO, fd: Int32, path: String, baseOffset: Int64, offsetLimit: Int64?, indexIntervalBytes: Int
    ) throws(DiskError) -> SegmentRecovery {
        var result = SegmentRecovery(
            nextOffset: baseOffset, indexer: SegmentIndexer(baseOffset: baseOffset, intervalBytes: indexIntervalBytes))
        let fileSize = try io.fileSize(fd)
        result.fileSize = fileSize
        var reader = ChunkReader(io: io, fd: fd, fileSize: fileSize)
        var position: Int64 = 0
        while position < fileSize {
            guard fileSize - position >= Int64(RecordBatchHeader.logOverhead) else {
                result.stopReason = "torn batch header at position \(position)"
                break
            }
            guard let lengthField = try reader.int32(at: position + 8) else {
                result.stopReason = "unreadable batch at position \(position)"
                break
            }
            let total = Int64(lengthField) + Int64(RecordBatchHeader.logOverhead)
            guard lengthField >= BatchHeaderReader.batchLengthMin, total <= fileSize - position else {
                result.stopReason = "batch at position \(position) claims \(total) bytes (\(fileSize - position) left)"
                break
            }
            guard let batch = try reader.slice(at: position, length: Int(total)) else {
                result.stopReason = "unreadable batch at position \(position)"
                break
            }
            let header: RecordBatchHeader
            do {
                header = try RecordBatch.validateFraming(batch, requireExactLength: true)
                // A CRC-valid batch whose records a consumer could not decode is invalid too.
                _ = try RecordBatch.validateRecordsDeep(batch, header: header, offsets: .increasing)
            } catch {
                result.stopReason = "invalid batch at position \(position): \(error)"
                break
            }
            // No `lastOffset` before the bound: baseOffset + lastOffsetDelta can overflow.
            guard header.lastOffsetDelta >= 0, header.baseOffset >= result.nextOffset,
                header.baseOffset - baseOffset <= Int64(Int32.max) - Int64(header.lastOffsetDelta)
            else {
                result.stopReason = "batch at position \(position) has offsets \(header.baseOffset) + \(header.lastOffsetDelta), expected from \(result.nextOffset)"
                break
            }
            if let offsetLimit, header.lastOffset >= offsetLimit {
                result.stopReason = "batch at position \(position) reaches offset \(header.lastOffset), into the next segment at \(offsetLimit)"
                break
            }
            if position == 0 { result.firstBatchMaxTimestamp = header.maxTimestamp }
            let (offsetEntry, timeEntry) = result.indexer.add(
                lastOffset: header.lastOffset, position: position, byteCount: Int(total), maxTimestamp: header.maxTimestamp)
            if let offsetEntry { result.offsetEntries.append(offsetEntry) }
            if let timeEntry { result.timeEntries.append(timeEntry) }
            position += total
            result.nextOffset = header.lastOffset + 1
        }
        result.validBytes = position
        if let final = result.indexer.nextTimeEntry() { result.timeEntries.append(final) }
        return result
    }
}

/// Sequential reads of a segment in large chunks.
struct ChunkReader {
    static let chunkByteCount = 1 << 20
    let io: any FileIO
    let fd: Int32
    let fileSize: Int64
    var buffer = ByteBuffer()
    /// File position of `buffer`'s reader index.
    var bufferStart: Int64 = 0

    init(io: any FileIO, fd: Int32, fileSize: Int64) {
        self.io = io
        self.fd = fd
        self.fileSize = fileSize
    }

    /// Makes `[position, position + length)` available in `buffer`; false past the end of the file.
    private mutating func load(_ position: Int64, _ length: Int) throws(DiskError) -> Bool {
        if position >= bufferStart, position + Int64(length) <= bufferStart + Int64(buffer.readableBytes) { return true }
        guard position + Int64(length) <= fileSize else { return false }
        let want = Int(min(Int64(max(length, Self.chunkByteCount)), fileSize - position))
        buffer.clear(minimumCapacity: want)
        let io = self.io
        let fd = self.fd
        let read = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { (raw) throws(DiskError) -> Int in
            try io.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[..<want]), at: position)
        }
        bufferStart = position
        return read >= length
    }

    mutating func int32(at position: Int64) throws(DiskError) -> Int32? {
        guard try load(position, 4) else { return nil }
        return buffer.getInteger(at: buffer.readerIndex + Int(position - bufferStart), as: Int32.self)
    }

    mutating func slice(at position: Int64, length: Int) throws(DiskError) -> ByteBuffer? {
        guard try load(position, length) else { return nil }
        return buffer.getSlice(at: buffer.readerIndex + Int(position - bufferStart), length: length)
    }
}
