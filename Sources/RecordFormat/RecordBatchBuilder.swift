public import NIOCore
import Checksums

/// Builds one uncompressed record batch v2, for clients, tools, tests and compaction.
///
/// Records are encoded as they are appended; `build()` writes the header and the CRC.
///
/// ```swift
/// var builder = RecordBatchBuilder(baseOffset: 0)
/// builder.append(key: Array("k".utf8), value: Array("v".utf8), timestamp: now)
/// let batch = builder.build()
/// ```
public struct RecordBatchBuilder: Sendable {
    /// How the batch's timestamps are to be read (attribute bit 3).
    public enum TimestampType: Sendable {
        /// Timestamps set by the producer.
        case createTime
        /// Timestamps set by the broker at append; `maxTimestamp` is the append time.
        case logAppendTime
    }

    /// The base offset written into the header.
    public var baseOffset: Int64
    /// The producer id (-1: none).
    public var producerId: Int64
    /// The producer epoch (-1: none).
    public var producerEpoch: Int16
    /// The sequence of the first record (-1: none).
    public var baseSequence: Int32
    /// Sets attribute bit 4.
    public var isTransactional: Bool
    /// Sets attribute bit 5 (transaction markers; clients may not send these).
    public var isControl: Bool
    /// Attribute bit 3.
    public var timestampType: TimestampType
    /// The partition leader epoch written into the header (-1: unknown).
    public var partitionLeaderEpoch: Int32

    private var body: ByteBuffer
    private var baseTimestamp: Int64 = -1
    private var maxTimestamp: Int64 = -1
    private var lastOffsetDelta: Int32 = -1
    /// Records appended so far.
    public private(set) var count: Int = 0

    /// Creates an empty builder.
    ///
    /// - Parameters:
    ///   - baseOffset: Header `baseOffset`; producers send 0.
    ///   - producerId: -1 for a non-idempotent producer.
    ///   - producerEpoch: -1 for a non-idempotent producer.
    ///   - baseSequence: -1 for a non-idempotent producer.
    ///   - isTransactional: Attribute bit 4.
    ///   - isControl: Attribute bit 5.
    ///   - timestampType: Attribute bit 3.
    ///   - partitionLeaderEpoch: Header `partitionLeaderEpoch`.
    ///   - allocator: Where the buffers come from.
    public init(
        baseOffset: Int64 = 0, producerId: Int64 = -1, producerEpoch: Int16 = -1, baseSequence: Int32 = -1,
        isTransactional: Bool = false, isControl: Bool = false, timestampType: TimestampType = .createTime,
        partitionLeaderEpoch: Int32 = -1, allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) {
        self.baseOffset = baseOffset
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.baseSequence = baseSequence
        self.isTransactional = isTransactional
        self.isControl = isControl
        self.timestampType = timestampType
        self.partitionLeaderEpoch = partitionLeaderEpoch
        self.body = allocator.buffer(capacity: 256)
    }

    /// Bytes `build()` will return.
    public var byteCount: Int { RecordBatchHeader.byteCount + body.readableBytes }

    /// Appends a record at the next offset (offset delta = previous delta + 1).
    ///
    /// - Parameters:
    ///   - key: The key, or nil for a null key.
    ///   - value: The value, or nil for a tombstone.
    ///   - headers: Header keys and (nullable) values.
    ///   - timestamp: Milliseconds since the epoch. The first record's timestamp is the base timestamp.
    public mutating func append(key: [UInt8]?, value: [UInt8]?, headers: [(String, [UInt8]?)] = [], timestamp: Int64) {
        append(key: key, value: value, headers: headers, timestamp: timestamp, offsetDelta: lastOffsetDelta + 1)
    }

    /// Appends a record at an explicit offset delta, leaving a gap as compaction does.
    ///
    /// - Parameters:
    ///   - key: The key, or nil for a null key.
    ///   - value: The value, or nil for a tombstone.
    ///   - headers: Header keys and (nullable) values.
    ///   - timestamp: Milliseconds since the epoch.
    ///   - offsetDelta: Greater than the previous record's delta.
    public mutating func append(
        key: [UInt8]?, value: [UInt8]?, headers: [(String, [UInt8]?)] = [], timestamp: Int64, offsetDelta: Int32
    ) {
        precondition(offsetDelta > lastOffsetDelta, "offset deltas must increase")
        if count == 0 { baseTimestamp = timestamp }
        maxTimestamp = count == 0 ? timestamp : max(maxTimestamp, timestamp)
        let timestampDelta = timestamp &- baseTimestamp

        var length = 1 + Varint.size(timestampDelta) + Varint.size(offsetDelta)
        length += Self.nullableSize(key) + Self.nullableSize(value)
        length += Varint.size(Int32(headers.count))
        for (headerKey, headerValue) in headers {
            length += Varint.size(Int32(headerKey.utf8.count)) + headerKey.utf8.count + Self.nullableSize(headerValue)
        }

        let start = body.writerIndex
        Varint.write(Int32(length), to: &body)
        let recordStart = body.writerIndex
        body.writeInteger(Int8(0))
        Varint.write(timestampDelta, to: &body)
        Varint.write(offsetDelta, to: &body)
        Self.writeNullable(key, to: &body)
        Self.writeNullable(value, to: &body)
        Varint.write(Int32(headers.count), to: &body)
        for (headerKey, headerValue) in headers {
            Varint.write(Int32(headerKey.utf8.count), to: &body)
            body.writeString(headerKey)
            Self.writeNullable(headerValue, to: &body)
        }
        precondition(body.writerIndex - recordStart == length && recordStart > start, "record size miscomputed")

        lastOffsetDelta = offsetDelta
        count += 1
    }

    /// The finished batch: header (with `lastOffsetDelta`, timestamps, count and CRC) and records.
    ///
    /// An empty builder yields a batch with no records, `lastOffsetDelta` 0 and timestamps -1; it passes
    /// `RecordBatch.validateFraming` but not `validate`.
    public func build() -> ByteBuffer {
        var attributes: Int16 = 0
        if timestampType == .logAppendTime { attributes |= RecordBatch.timestampTypeBit }
        if isTransactional { attributes |= RecordBatch.transactionalBit }
        if isControl { attributes |= RecordBatch.controlBit }
        let header = RecordBatchHeader(
            baseOffset: baseOffset,
            batchLength: Int32(byteCount - RecordBatchHeader.logOverhead),
            partitionLeaderEpoch: partitionLeaderEpoch,
            magic: 2,
            crc: 0,
            attributes: attributes,
            lastOffsetDelta: count == 0 ? 0 : lastOffsetDelta,
            baseTimestamp: baseTimestamp,
            maxTimestamp: maxTimestamp,
            producerId: producerId,
            producerEpoch: producerEpoch,
            baseSequence: baseSequence,
            recordsCount: Int32(count)
        )
        var batch = ByteBufferAllocator().buffer(capacity: byteCount)
        batch.moveWriterIndex(forwardBy: RecordBatchHeader.byteCount)
        header.write(into: &batch, at: 0)
        batch.writeImmutableBuffer(body)
        RecordBatch.updateCRC(in: &batch, at: batch.readerIndex)
        return batch
    }

    private static func nullableSize(_ bytes: [UInt8]?) -> Int {
        guard let bytes else { return Varint.size(Int32(-1)) }
        return Varint.size(Int32(bytes.count)) + bytes.count
    }

    private static func writeNullable(_ bytes: [UInt8]?, to buffer: inout ByteBuffer) {
        guard let bytes else {
            Varint.write(Int32(-1), to: &buffer)
            return
        }
        Varint.write(Int32(bytes.count), to: &buffer)
        buffer.writeBytes(bytes)
    }
}
