public import NIOCore
import Checksums

/// Operations on record batches v2 (magic 2) held as bytes: validation (`RecordBatch+Validation`),
/// in-place patching on the append path (this file) and record decoding (`Record.swift`).
///
/// All functions work on one batch starting at a given position; nothing here copies a batch.
public enum RecordBatch {
    /// The smallest `batchLength` a v2 batch can have: the 61-byte header minus the 12-byte log overhead.
    public static let batchLengthMin: Int32 = Int32(RecordBatchHeader.byteCount - RecordBatchHeader.logOverhead)

    static let baseOffsetOffset = 0
    static let batchLengthOffset = 8
    static let partitionLeaderEpochOffset = 12

    // MARK: - Patching a ByteBuffer in place

    /// Overwrites the batch's `baseOffset` (bytes 0..<8; not covered by the CRC, so the CRC stays valid).
    ///
    /// - Parameters:
    ///   - offset: The first offset assigned to the batch.
    ///   - buffer: The buffer holding the batch.
    ///   - index: Absolute index in `buffer` where the batch starts; the 61-byte header must be readable there.
    public static func setBaseOffset(_ offset: Int64, in buffer: inout ByteBuffer, at index: Int) {
        precondition(headerIsReadable(in: buffer, at: index), "batch header outside the buffer's readable bytes")
        buffer.setInteger(offset, at: index + baseOffsetOffset)
    }

    /// Overwrites the batch's `partitionLeaderEpoch` (bytes 12..<16; not covered by the CRC).
    ///
    /// - Parameters:
    ///   - epoch: The partition leader epoch to stamp.
    ///   - buffer: The buffer holding the batch.
    ///   - index: Absolute index in `buffer` where the batch starts; the 61-byte header must be readable there.
    public static func setPartitionLeaderEpoch(_ epoch: Int32, in buffer: inout ByteBuffer, at index: Int) {
        precondition(headerIsReadable(in: buffer, at: index), "batch header outside the buffer's readable bytes")
        buffer.setInteger(epoch, at: index + partitionLeaderEpochOffset)
    }

    /// Marks the batch as LogAppendTime: sets attribute bit 3 and `maxTimestamp = ms`, then recomputes
    /// the CRC, since both fields are covered by it.
    ///
    /// The whole batch (per its `batchLength`) must be readable at `index`: validate it first.
    ///
    /// - Parameters:
    ///   - ms: The broker's append time in milliseconds since the epoch.
    ///   - buffer: The buffer holding the batch.
    ///   - index: Absolute index in `buffer` where the batch starts, at or after the reader index.
    public static func stampLogAppendTime(_ ms: Int64, in buffer: inout ByteBuffer, at index: Int) {
        precondition(headerIsReadable(in: buffer, at: index), "batch header outside the buffer's readable bytes")
        let start = index - buffer.readerIndex
        buffer.withUnsafeMutableReadableBytes { bytes in
            let batch = UnsafeMutableRawBufferPointer(rebasing: bytes[start...])
            stampLogAppendTime(ms, in: batch)
        }
    }

    /// A copy of the batch at the reader index of `batch` (exactly one whole batch) whose
    /// `maxTimestamp` is `ms`, with its CRC recomputed. For batches whose header disagrees with
    /// their records: the copy is made only then, never on the common path.
    ///
    /// - Parameters:
    ///   - ms: The records' largest timestamp.
    ///   - batch: One whole, validated batch.
    /// - Returns: The patched copy.
    public static func withMaxTimestamp(_ ms: Int64, _ batch: ByteBuffer) -> ByteBuffer {
        var copy = ByteBufferAllocator().buffer(capacity: batch.readableBytes)
        copy.writeImmutableBuffer(batch)
        copy.setInteger(ms, at: RecordBatchHeader.maxTimestampOffset)
        updateCRC(in: &copy, at: 0)
        return copy
    }

    // MARK: - Patching raw memory in place

    /// Overwrites `baseOffset` of the batch starting at `batch.baseAddress` (CRC stays valid).
    ///
    /// - Parameters:
    ///   - offset: The first offset assigned to the batch.
    ///   - batch: Memory starting at the batch; at least 61 bytes.
    public static func setBaseOffset(_ offset: Int64, in batch: UnsafeMutableRawBufferPointer) {
        precondition(batch.count >= RecordBatchHeader.byteCount, "batch header outside the buffer")
        batch.storeBytes(of: offset.bigEndian, toByteOffset: baseOffsetOffset, as: Int64.self)
    }

    /// Overwrites `partitionLeaderEpoch` of the batch starting at `batch.baseAddress` (CRC stays valid).
    ///
    /// - Parameters:
    ///   - epoch: The partition leader epoch to stamp.
    ///   - batch: Memory starting at the batch; at least 61 bytes.
    public static func setPartitionLeaderEpoch(_ epoch: Int32, in batch: UnsafeMutableRawBufferPointer) {
        precondition(batch.count >= RecordBatchHeader.byteCount, "batch header outside the buffer")
        batch.storeBytes(of: epoch.bigEndian, toByteOffset: partitionLeaderEpochOffset, as: Int32.self)
    }

    /// Sets attribute bit 3 and `maxTimestamp = ms` of the batch starting at `batch.baseAddress` and
    /// recomputes its CRC.
    ///
    /// - Parameters:
    ///   - ms: The broker's append time in milliseconds since the epoch.
    ///   - batch: Memory starting at the batch and holding all of it (per its `batchLength`).
    public static func stampLogAppendTime(_ ms: Int64, in batch: UnsafeMutableRawBufferPointer) {
        precondition(batch.count >= RecordBatchHeader.byteCount, "batch header outside the buffer")
        let batchLength = Int(Int32(bigEndian: batch.loadUnaligned(fromByteOffset: batchLengthOffset, as: Int32.self)))
        let total = batchLength + RecordBatchHeader.logOverhead
        precondition(
            batchLength >= Int(batchLengthMin) && total <= batch.count,
            "stampLogAppendTime on a batch that was not validated"
        )
        let attributesAt = RecordBatchHeader.attributesOffset
        let attributes = Int16(bigEndian: batch.loadUnaligned(fromByteOffset: attributesAt, as: Int16.self))
        batch.storeBytes(of: (attributes | timestampTypeBit).bigEndian, toByteOffset: attributesAt, as: Int16.self)
        batch.storeBytes(of: ms.bigEndian, toByteOffset: RecordBatchHeader.maxTimestampOffset, as: Int64.self)
        updateCRC(in: UnsafeMutableRawBufferPointer(rebasing: batch[0..<total]))
    }

    /// Recomputes and stores the CRC of the batch that exactly fills `batch`.
    ///
    /// - Parameter batch: Memory holding exactly one whole batch.
    public static func updateCRC(in batch: UnsafeMutableRawBufferPointer) {
        precondition(batch.count >= RecordBatchHeader.byteCount, "batch header outside the buffer")
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: batch[RecordBatchHeader.crcCoverageStart...]))
        batch.storeBytes(of: crc.bigEndian, toByteOffset: RecordBatchHeader.crcOffset, as: UInt32.self)
    }

    /// Recomputes and stores the CRC of the batch at `index`, whose `batchLength` must fit in the buffer.
    ///
    /// - Parameters:
    ///   - buffer: The buffer holding the batch.
    ///   - index: Absolute index in `buffer` where the batch starts, at or after the reader index.
    public static func updateCRC(in buffer: inout ByteBuffer, at index: Int) {
        precondition(headerIsReadable(in: buffer, at: index), "batch header outside the buffer's readable bytes")
        let start = index - buffer.readerIndex
        buffer.withUnsafeMutableReadableBytes { bytes in
            let batchLength = Int(Int32(bigEndian: bytes.loadUnaligned(fromByteOffset: start + batchLengthOffset, as: Int32.self)))
            let total = batchLength + RecordBatchHeader.logOverhead
            precondition(batchLength >= Int(batchLengthMin) && start + total <= bytes.count, "updateCRC on a batch that was not validated")
            updateCRC(in: UnsafeMutableRawBufferPointer(rebasing: bytes[start..<(start + total)]))
        }
    }

    // MARK: - Attribute bits

    static let compressionMask: Int16 = 0x07
    static let timestampTypeBit: Int16 = 0x08
    static let transactionalBit: Int16 = 0x10
    static let controlBit: Int16 = 0x20
    static let deleteHorizonBit: Int16 = 0x40

    static func headerIsReadable(in buffer: ByteBuffer, at index: Int) -> Bool {
        index >= buffer.readerIndex && index + RecordBatchHeader.byteCount <= buffer.writerIndex
    }
}
