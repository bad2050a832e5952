import DiskIO
import RecordFormat

/// Reads batch headers straight from a segment file with `pread`, for lookups and short scans.
enum BatchHeaderReader {
    /// Smallest `batchLength`: a header with no records.
    static let batchLengthMin = Int32(RecordBatchHeader.byteCount - RecordBatchHeader.logOverhead)

    /// The header of the batch starting at `position`, which must end by `end` (the segment's committed
    /// size). Does not check the CRC: the bytes were CRC-checked when appended or recovered.
    /// - Throws: `.corruptBatch` if the header is implausible, `.storage` if the read fails.
    static func header(
        io: any FileIO, file: SegmentFileHandle, at position: Int64, end: Int64
    ) throws(CommitLogError) -> RecordBatchHeader {
        let result = withUnsafeTemporaryAllocation(byteCount: RecordBatchHeader.byteCount, alignment: 8) {
            (buffer) -> Result<RecordBatchHeader?, DiskError> in
            Result { () throws(DiskError) -> RecordBatchHeader? in
                let count = try io.read(file.fd, into: buffer, at: position)
                return RecordBatchHeader(bytes: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            }
        }
        let parsed: RecordBatchHeader?
        do { parsed = try result.get() } catch {
            throw CommitLogError.storage(error, "reading a batch header of \(file.path) at \(position)")
        }
        guard let header = parsed, header.magic == 2, header.batchLength >= batchLengthMin,
            position + Int64(header.totalByteCount) <= end
        else {
            throw CommitLogError(.corruptBatch, "no valid batch header in \(file.path) at position \(position) (end \(end))")
        }
        return header
    }

    /// Reads `count` bytes at `position` into a fresh array.
    static func bytes(io: any FileIO, file: SegmentFileHandle, at position: Int64, count: Int) throws(CommitLogError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let read: Int
        do { read = try io.read(file.fd, into: &bytes, at: position) } catch {
            throw CommitLogError.storage(error, "reading \(count) bytes of \(file.path) at \(position)")
        }
        guard read == count else {
            throw CommitLogError(.corruptBatch, "short read of \(file.path) at \(position): \(read) of \(count) bytes")
        }
        return bytes
    }
}

/// Just enough of the record format to find record offsets and timestamps inside an uncompressed batch
/// (ListOffsets by timestamp); batches otherwise stay opaque.
enum RecordTimestampScanner {
    /// Calls `body(offset, timestamp)` for each record of the uncompressed batch in `bytes` until it
    /// returns true. Returns false if the records do not parse.
    @discardableResult
    static func forEachRecord(
        in bytes: UnsafeRawBufferPointer, header: RecordBatchHeader, _ body: (Int64, Int64) -> Bool
    ) -> Bool {
        var index = RecordBatchHeader.byteCount
        let end = min(bytes.count, header.totalByteCount)
        for _ in 0..<max(0, Int(header.recordsCount)) {
            guard let length = readVarint(bytes, &index, end: end), length >= 0 else { return false }
            let recordEnd = index + Int(length)
            guard recordEnd <= end else { return false }
            index += 1  // attributes
            guard let timestampDelta = readVarint(bytes, &index, end: recordEnd),
                let offsetDelta = readVarint(bytes, &index, end: recordEnd)
            else { return false }
            let timestamp = header.isLogAppendTime ? header.maxTimestamp : header.baseTimestamp &+ timestampDelta
            if body(header.baseOffset + offsetDelta, timestamp) { return true }
            index = recordEnd
        }
        return true
    }

    /// A zig-zag varint/varlong (Kafka's `ByteUtils.readVarlong`).
    static func readVarint(_ bytes: UnsafeRawBufferPointer, _ index: inout Int, end: Int) -> Int64? {
        var raw: UInt64 = 0
        var shift: UInt64 = 0
        while index < end, shift < 64 {
            let byte = bytes[index]
            index += 1
            raw |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1) }
            shift += 7
        }
        return nil
    }
}
