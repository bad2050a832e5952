public import NIOCore

/// What one validating walk over a batch's records learned (Kafka `LogValidator`'s per-record pass).
///
/// The walk touches every record once and allocates nothing; record indices of offending records
/// are found by a second walk (`recordIndices`) only when a request is refused.
public struct RecordsSummary: Sendable, Equatable {
    /// Records walked (equals the header's `recordsCount`).
    public var recordCount: Int = 0
    /// Records whose key is null.
    public var keylessCount: Int = 0
    /// Smallest absolute CreateTime (`baseTimestamp + timestampDelta`); `Int64.max` when there are no records.
    public var minTimestamp: Int64 = .max
    /// Largest absolute CreateTime; `Int64.min` when there are no records.
    public var maxTimestamp: Int64 = .min

    public init() {}
}

/// Which offset deltas a batch's records may carry.
public enum RecordOffsetRule: Sendable {
    /// Batches from clients: record i has offset delta i (so the last has `lastOffsetDelta`).
    case sequential
    /// Batches in the log, possibly rewritten by compaction: deltas strictly increase, start at 0
    /// or above and end at `lastOffsetDelta` or below; a batch may hold no records at all.
    case increasing
}

extension RecordBatch {
    /// Walks the records of the uncompressed payload `records` (the bytes after the 61-byte header)
    /// and checks each one as Kafka's `DefaultRecord.readFrom` and `LogValidator` do: the length
    /// prefix fits the bytes left and is exactly what the record's fields use; key and value are
    /// null (-1) or fit; the header count is not negative and every header key is present; offset
    /// deltas follow `offsets`; exactly `header.recordsCount` records and no bytes after the last.
    ///
    /// - Parameters:
    ///   - records: The uncompressed record bytes of one batch (after its header, or decompressed).
    ///   - header: The batch's header (for `recordsCount`, `lastOffsetDelta`, `baseTimestamp`).
    ///   - offsets: Which offset deltas are acceptable.
    /// - Returns: Counts and the timestamp range, for the key and timestamp rules.
    /// - Throws: `RecordBatchError(.invalid)` naming the first malformed record and what is wrong
    ///   (Kafka answers INVALID_RECORD: "Found invalid record structure").
    public static func walkRecords(
        _ records: UnsafeRawBufferPointer, header: RecordBatchHeader, offsets: RecordOffsetRule
    ) throws(RecordBatchError) -> RecordsSummary {
        var summary = RecordsSummary()
        let count = Int(header.recordsCount)
        switch offsets {
        case .sequential:
            guard count > 0, Int64(count) == Int64(header.lastOffsetDelta) + 1 else {
                throw RecordBatchError(.invalid, "recordsCount \(header.recordsCount) does not match lastOffsetDelta \(header.lastOffsetDelta) + 1")
            }
        case .increasing:
            guard count >= 0, Int64(count) <= Int64(header.lastOffsetDelta) + 1 else {
                throw RecordBatchError(.invalid, "recordsCount \(header.recordsCount) exceeds lastOffsetDelta \(header.lastOffsetDelta) + 1")
            }
        }
        var cursor = RecordCursor(records)
        var previousDelta: Int32 = -1
        var index = 0
        while index < count {
            let record = try cursor.record(index: index)
            switch offsets {
            case .sequential:
                guard record.offsetDelta == Int32(truncatingIfNeeded: index) else {
                    throw RecordBatchError(.invalid, "record \(index) has offset delta \(record.offsetDelta); expected \(index)")
                }
            case .increasing:
                guard record.offsetDelta > previousDelta, record.offsetDelta <= header.lastOffsetDelta else {
                    throw RecordBatchError(
                        .invalid, "record \(index) has offset delta \(record.offsetDelta) after \(previousDelta) (lastOffsetDelta \(header.lastOffsetDelta))")
                }
            }
            previousDelta = record.offsetDelta
            if record.keyIsNull { summary.keylessCount += 1 }
            let timestamp = header.baseTimestamp &+ record.timestampDelta
            if timestamp < summary.minTimestamp { summary.minTimestamp = timestamp }
            if timestamp > summary.maxTimestamp { summary.maxTimestamp = timestamp }
            index += 1
        }
        guard cursor.remaining == 0 else {
            throw RecordBatchError(.invalid, "\(cursor.remaining) bytes follow the last of \(count) records (incorrect declared batch size)")
        }
        summary.recordCount = count
        return summary
    }

    /// `walkRecords` on the batch at the reader index of `batch`, which must be uncompressed and
    /// already framed (see `validateFraming`).
    ///
    /// - Parameters:
    ///   - batch: Bytes starting at one whole batch.
    ///   - header: Its header.
    ///   - offsets: Which offset deltas are acceptable.
    /// - Returns: As `walkRecords`.
    /// - Throws: As `walkRecords`; `.invalid` for a compressed batch (decompress first).
    public static func walkRecords(
        in batch: ByteBuffer, header: RecordBatchHeader, offsets: RecordOffsetRule
    ) throws(RecordBatchError) -> RecordsSummary {
        guard header.compression == CompressionCodec.none else {
            throw RecordBatchError(.invalid, "walkRecords needs an uncompressed batch")
        }
        precondition(header.totalByteCount <= batch.readableBytes, "walkRecords on a batch that was not framed")
        let result = batch.withUnsafeReadableBytes { bytes in
            Result { () throws(RecordBatchError) in
                try walkRecords(
                    UnsafeRawBufferPointer(rebasing: bytes[RecordBatchHeader.byteCount..<header.totalByteCount]),
                    header: header, offsets: offsets)
            }
        }
        return try result.get()
    }

    /// Indices (0-based, in batch order) of the records for which `matches(keyIsNull, timestamp)`
    /// holds, at most `limit` of them. For refusals only (it allocates); the records must already
    /// have passed `walkRecords`.
    ///
    /// - Parameters:
    ///   - records: The uncompressed record bytes of one batch.
    ///   - header: The batch's header.
    ///   - limit: The most indices to return.
    ///   - matches: Called with whether the key is null and the record's absolute timestamp.
    /// - Returns: The matching indices in order.
    public static func recordIndices(
        _ records: UnsafeRawBufferPointer, header: RecordBatchHeader, limit: Int = 1000,
        where matches: (_ keyIsNull: Bool, _ timestamp: Int64) -> Bool
    ) -> [Int] {
        var cursor = RecordCursor(records)
        var found: [Int] = []
        var index = 0
        while index < Int(header.recordsCount), found.count < limit, let record = try? cursor.record(index: index) {
            if matches(record.keyIsNull, header.baseTimestamp &+ record.timestampDelta) { found.append(index) }
            index += 1
        }
        return found
    }

    /// `recordIndices` for the uncompressed batch at the reader index of `batch`.
    public static func recordIndices(
        in batch: ByteBuffer, header: RecordBatchHeader, limit: Int = 1000,
        where matches: (_ keyIsNull: Bool, _ timestamp: Int64) -> Bool
    ) -> [Int] {
        guard header.compression == CompressionCodec.none, header.totalByteCount <= batch.readableBytes else { return [] }
        return batch.withUnsafeReadableBytes { bytes in
            recordIndices(
                UnsafeRawBufferPointer(rebasing: bytes[RecordBatchHeader.byteCount..<header.totalByteCount]),
                header: header, limit: limit, where: matches)
        }
    }
}

/// The fields of one record the validator needs; key, value and headers are skipped, not copied.
struct WalkedRecord {
    var timestampDelta: Int64
    var offsetDelta: Int32
    var keyIsNull: Bool
}

/// Reads records from raw memory with every length checked against the bytes left.
struct RecordCursor {
    private let base: UnsafeRawPointer?
    private var position = 0
    private let end: Int

    init(_ bytes: UnsafeRawBufferPointer) {
        base = bytes.baseAddress
        end = bytes.count
    }

    var remaining: Int { end - position }

    mutating func record(index: Int) throws(RecordBatchError) -> WalkedRecord {
        let length = try varint(index, "record length")
        guard length >= 0, Int(length) <= remaining else {
            throw RecordBatchError(.invalid, "record \(index): invalid record size \(length) with \(remaining) bytes left")
        }
        let recordEnd = position + Int(length)
        guard position < recordEnd else {
            throw RecordBatchError(.invalid, "record \(index): empty record (no attributes)")
        }
        position += 1  // attributes: unused in v2
        let timestampDelta = try varlong(index, "timestamp delta", before: recordEnd)
        let offsetDelta = try varint(index, "offset delta", before: recordEnd)
        let keyLength = try varint(index, "key length", before: recordEnd)
        try skipNullable(keyLength, index, "key", before: recordEnd)
        let valueLength = try varint(index, "value length", before: recordEnd)
        try skipNullable(valueLength, index, "value", before: recordEnd)
        let headerCount = try varint(index, "header count", before: recordEnd)
        guard headerCount >= 0 else {
            throw RecordBatchError(.invalid, "record \(index): invalid number of record headers \(headerCount)")
        }
        var header: Int32 = 0
        while header < headerCount {
            let keyLength = try varint(index, "header key length", before: recordEnd)
            guard keyLength >= 0 else {
                throw RecordBatchError(.invalid, "record \(index): invalid negative header key size \(keyLength)")
            }
            try skipNullable(keyLength, index, "header key", before: recordEnd)
            let valueLength = try varint(index, "header value length", before: recordEnd)
            try skipNullable(valueLength, index, "header value", before: recordEnd)
            header += 1
        }
        guard position == recordEnd else {
            throw RecordBatchError(
                .invalid, "record \(index): invalid record size: expected to read \(length) bytes, read \(position - (recordEnd - Int(length)))")
        }
        return WalkedRecord(timestampDelta: timestampDelta, offsetDelta: offsetDelta, keyIsNull: keyLength == -1)
    }

    private mutating func skipNullable(_ length: Int32, _ index: Int, _ what: StaticString, before limit: Int) throws(RecordBatchError) {
        if length == -1 { return }
        guard length >= 0, Int(length) <= limit - position else {
            throw RecordBatchError(.invalid, "record \(index): \(what) length \(length) with \(limit - position) bytes left in the record")
        }
        position += Int(length)
    }

    @inline(__always)
    private mutating func varint(_ index: Int, _ what: StaticString, before limit: Int? = nil) throws(RecordBatchError) -> Int32 {
        let raw = try unsignedVarint(index, what, maxBytes: 5, before: limit ?? end)
        guard raw <= UInt64(UInt32.max) else { throw RecordBatchError(.invalid, "record \(index): \(what) varint overflows 32 bits") }
        let value = UInt32(truncatingIfNeeded: raw)
        return Int32(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
    }

    @inline(__always)
    private mutating func varlong(_ index: Int, _ what: StaticString, before limit: Int) throws(RecordBatchError) -> Int64 {
        let value = try unsignedVarint(index, what, maxBytes: 10, before: limit)
        return Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
    }

    @inline(__always)
    private mutating func unsignedVarint(_ index: Int, _ what: StaticString, maxBytes: Int, before limit: Int) throws(RecordBatchError) -> UInt64 {
        guard let base else { throw RecordBatchError(.invalid, "record \(index): no bytes left for its \(what)") }
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var count = 0
        while count < maxBytes {
            guard position < limit else {
                throw RecordBatchError(.invalid, "record \(index): its \(what) runs past the end of the record")
            }
            let byte = base.load(fromByteOffset: position, as: UInt8.self)
            position += 1
            let bits = UInt64(byte & 0x7F)
            // The 10th byte of a varlong may only carry the top bit of 64.
            guard count < 9 || bits <= 1 else { throw RecordBatchError(.invalid, "record \(index): \(what) varlong overflows 64 bits") }
            result |= bits << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            count += 1
        }
        throw RecordBatchError(.invalid, "record \(index): \(what) varint longer than \(maxBytes) bytes")
    }
}
