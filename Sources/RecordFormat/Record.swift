public import NIOCore

/// One record of an uncompressed batch, decoded. For tools, tests and compaction; the append and
/// fetch paths never decode records.
public struct Record: Sendable {
    /// Offset of the record minus the batch's base offset.
    public var offsetDelta: Int32
    /// Timestamp of the record minus the batch's base timestamp (may be negative after compaction).
    public var timestampDelta: Int64
    /// The key, or nil for a null key. A slice of the batch's buffer (no copy).
    public var key: ByteBuffer?
    /// The value, or nil for a tombstone. A slice of the batch's buffer (no copy).
    public var value: ByteBuffer?
    /// Headers in order; keys are UTF-8 (decoded leniently), values may be null.
    public var headers: [(key: String, value: ByteBuffer?)]

    /// Creates a record from its parts.
    public init(
        offsetDelta: Int32, timestampDelta: Int64, key: ByteBuffer?, value: ByteBuffer?,
        headers: [(key: String, value: ByteBuffer?)] = []
    ) {
        self.offsetDelta = offsetDelta
        self.timestampDelta = timestampDelta
        self.key = key
        self.value = value
        self.headers = headers
    }
}

extension RecordBatch {
    /// Decodes the records of the uncompressed batch at the reader index of `batch`.
    ///
    /// The batch is first checked with `validateFraming` (magic, length, CRC). Every length read from
    /// the records is bounded by the bytes that remain, the number of records must equal
    /// `recordsCount`, and no bytes may follow the last record.
    ///
    /// - Parameter batch: Bytes starting at one batch; bytes after it are ignored.
    /// - Returns: The records in order.
    /// - Throws: `RecordBatchError`: as `validateFraming`; `.corrupt` for malformed records;
    ///   `.invalid` for a compressed batch (not supported yet).
    public static func records(in batch: ByteBuffer) throws(RecordBatchError) -> [Record] {
        let header = try validateFraming(batch, requireExactLength: false)
        guard let codec = header.compression else {
            throw RecordBatchError(.corrupt, "unknown compression codec \(header.attributes & compressionMask)")
        }
        guard codec == .none else {
            throw RecordBatchError(.invalid, "cannot decode records: \(codec.name) compression is not supported yet")
        }
        guard header.recordsCount >= 0 else {
            throw RecordBatchError(.corrupt, "negative recordsCount \(header.recordsCount)")
        }
        let recordsStart = batch.readerIndex + RecordBatchHeader.byteCount
        let recordsLength = header.totalByteCount - RecordBatchHeader.byteCount
        guard var body = batch.getSlice(at: recordsStart, length: recordsLength) else {
            preconditionFailure("validateFraming accepted a batch longer than the buffer")
        }
        // The smallest record is 7 bytes: never let recordsCount alone size an allocation.
        var records: [Record] = []
        records.reserveCapacity(min(Int(header.recordsCount), recordsLength / 7))
        for _ in 0..<header.recordsCount {
            records.append(try readRecord(from: &body))
        }
        guard body.readableBytes == 0 else {
            throw RecordBatchError(.corrupt, "\(body.readableBytes) bytes follow the last of \(header.recordsCount) records")
        }
        return records
    }

    private static func readRecord(from body: inout ByteBuffer) throws(RecordBatchError) -> Record {
        let length = try body.readRecordVarint()
        guard length >= 0, Int(length) <= body.readableBytes else {
            throw RecordBatchError(.corrupt, "record length \(length) with \(body.readableBytes) bytes left")
        }
        guard var record = body.readSlice(length: Int(length)) else {
            preconditionFailure("bounded slice unavailable")
        }
        guard record.readInteger(as: Int8.self) != nil else {
            throw RecordBatchError(.corrupt, "record ends before its attributes")
        }
        let timestampDelta = try record.readRecordVarlong()
        let offsetDelta = try record.readRecordVarint()
        let key = try readNullableBytes(from: &record, what: "key")
        let value = try readNullableBytes(from: &record, what: "value")
        let headerCount = try record.readRecordVarint()
        // Each header takes at least 2 bytes.
        guard headerCount >= 0, Int(headerCount) <= record.readableBytes / 2 else {
            throw RecordBatchError(.corrupt, "header count \(headerCount) with \(record.readableBytes) bytes left")
        }
        var headers: [(key: String, value: ByteBuffer?)] = []
        headers.reserveCapacity(Int(headerCount))
        for _ in 0..<headerCount {
            guard let keyBytes = try readNullableBytes(from: &record, what: "header key") else {
                throw RecordBatchError(.corrupt, "null header key")
            }
            let headerValue = try readNullableBytes(from: &record, what: "header value")
            headers.append((String(buffer: keyBytes), headerValue))
        }
        guard record.readableBytes == 0 else {
            throw RecordBatchError(.corrupt, "\(record.readableBytes) bytes follow the record's headers")
        }
        return Record(offsetDelta: offsetDelta, timestampDelta: timestampDelta, key: key, value: value, headers: headers)
    }

    private static func readNullableBytes(from record: inout ByteBuffer, what: String) throws(RecordBatchError) -> ByteBuffer? {
        let length = try record.readRecordVarint()
        if length == -1 { return nil }
        guard length >= 0, Int(length) <= record.readableBytes else {
            throw RecordBatchError(.corrupt, "\(what) length \(length) with \(record.readableBytes) bytes left")
        }
        return record.readSlice(length: Int(length))
    }
}
