import NIOCore
import RecordCompression
import RecordFormat

/// Re-encodes a record batch that compaction filtered, keeping what Kafka keeps (`MemoryRecords.filterTo`):
/// the original `baseOffset`, `lastOffsetDelta` (so the batch still ends at its original last offset
/// and an idempotent producer's last sequence stays `baseSequence + lastOffsetDelta`), producer id,
/// epoch, base sequence, partition leader epoch, timestamp type and transactional bit; each survivor's
/// offset delta, timestamp, key, value and headers. Compressed batches are re-compressed with the same
/// codec.
///
/// Not `RecordBatchBuilder`: it derives `lastOffsetDelta` from the last record and the base timestamp
/// from the first, while a compacted batch needs the original `lastOffsetDelta` and, once it carries
/// a delete horizon (attribute bit 6), `baseTimestamp` = the horizon with record timestamp deltas
/// re-based on it (KIP-534), so record timestamps are unchanged.
enum CompactedBatchEncoder {
    struct Survivor {
        var record: Record
        /// The record's absolute timestamp (original base timestamp + delta).
        var timestamp: Int64
    }

    /// A batch holding `survivors` (at least one), shaped after `original`.
    /// - Parameter deleteHorizonMs: When set, attribute bit 6 is set and the base timestamp is it.
    static func encode(
        original: RecordBatchHeader, survivors: [Survivor], deleteHorizonMs: Int64?
    ) throws -> ByteBuffer {
        precondition(!survivors.isEmpty, "an empty batch is written with emptyBatch")
        let baseTimestamp = deleteHorizonMs ?? survivors[0].timestamp
        var maxTimestamp = original.maxTimestamp
        if !original.isLogAppendTime {
            maxTimestamp = survivors.reduce(Int64.min) { max($0, $1.timestamp) }
        }
        var body = ByteBuffer()
        body.reserveCapacity(survivors.reduce(0) { $0 + 32 + ($1.record.key?.readableBytes ?? 0) + ($1.record.value?.readableBytes ?? 0) })
        var scratch = ByteBuffer()
        for survivor in survivors {
            scratch.clear()
            let record = survivor.record
            scratch.writeInteger(Int8(0))
            writeVarlong(survivor.timestamp &- baseTimestamp, to: &scratch)
            writeVarlong(Int64(record.offsetDelta), to: &scratch)
            writeNullable(record.key, to: &scratch)
            writeNullable(record.value, to: &scratch)
            writeVarlong(Int64(record.headers.count), to: &scratch)
            for header in record.headers {
                writeVarlong(Int64(header.key.utf8.count), to: &scratch)
                scratch.writeString(header.key)
                writeNullable(header.value, to: &scratch)
            }
            writeVarlong(Int64(scratch.readableBytes), to: &body)
            body.writeImmutableBuffer(scratch)
        }
        var attributes = original.attributes & ~Int16(0x07)
        if deleteHorizonMs != nil { attributes |= 0x40 }
        let header = RecordBatchHeader(
            baseOffset: original.baseOffset,
            batchLength: Int32(RecordBatchHeader.byteCount - RecordBatchHeader.logOverhead + body.readableBytes),
            partitionLeaderEpoch: original.partitionLeaderEpoch, magic: 2, crc: 0, attributes: attributes,
            lastOffsetDelta: original.lastOffsetDelta, baseTimestamp: baseTimestamp, maxTimestamp: maxTimestamp,
            producerId: original.producerId, producerEpoch: original.producerEpoch, baseSequence: original.baseSequence,
            recordsCount: Int32(survivors.count))
        var batch = ByteBuffer()
        batch.reserveCapacity(RecordBatchHeader.byteCount + body.readableBytes)
        batch.writeRepeatingByte(0, count: RecordBatchHeader.byteCount)
        header.write(into: &batch, at: 0)
        batch.writeImmutableBuffer(body)
        RecordBatch.updateCRC(in: &batch, at: 0)
        if let codec = original.compression, codec != .none {
            return try RecordBatch.compressed(batch, codec: codec)
        }
        return batch
    }

    /// A batch header without records (uncompressed), as Kafka keeps for the last batch of an active
    /// producer whose records were all removed, and as Petrel writes to seal a cleaned segment whose
    /// last offsets were removed: `baseOffset` and `lastOffsetDelta` span the given range.
    static func emptyBatch(
        baseOffset: Int64, lastOffsetDelta: Int32, timestamp: Int64, attributes: Int16 = 0, partitionLeaderEpoch: Int32 = 0,
        producerId: Int64 = -1, producerEpoch: Int16 = -1, baseSequence: Int32 = -1
    ) -> ByteBuffer {
        let header = RecordBatchHeader(
            baseOffset: baseOffset, batchLength: Int32(RecordBatchHeader.byteCount - RecordBatchHeader.logOverhead),
            partitionLeaderEpoch: partitionLeaderEpoch, magic: 2, crc: 0, attributes: attributes & ~Int16(0x07 | 0x40),
            lastOffsetDelta: lastOffsetDelta, baseTimestamp: timestamp, maxTimestamp: timestamp, producerId: producerId,
            producerEpoch: producerEpoch, baseSequence: baseSequence, recordsCount: 0)
        var batch = ByteBuffer()
        batch.writeRepeatingByte(0, count: RecordBatchHeader.byteCount)
        header.write(into: &batch, at: 0)
        RecordBatch.updateCRC(in: &batch, at: 0)
        return batch
    }

    private static func writeVarlong(_ value: Int64, to buffer: inout ByteBuffer) {
        var raw = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        while raw >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: raw) | 0x80)
            raw >>= 7
        }
        buffer.writeInteger(UInt8(raw))
    }

    private static func writeNullable(_ bytes: ByteBuffer?, to buffer: inout ByteBuffer) {
        guard let bytes else {
            writeVarlong(-1, to: &buffer)
            return
        }
        writeVarlong(Int64(bytes.readableBytes), to: &buffer)
        buffer.writeImmutableBuffer(bytes)
    }
}
