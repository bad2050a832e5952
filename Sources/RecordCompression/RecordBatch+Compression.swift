public import NIOCore
public import RecordFormat

extension RecordBatch {
    /// The records of any batch, decompressing its payload when the batch is compressed.
    /// Not for the produce/fetch path (which never decodes records): for compaction, tools, tests.
    public static func decodeRecords(in batch: ByteBuffer) throws -> (header: RecordBatchHeader, records: [Record]) {
        let header = try validateFraming(batch, requireExactLength: false)
        guard let codec = header.compression, codec != .none else {
            return (header, try records(in: batch))
        }
        let plain = try decompressed(batch, header: header, codec: codec)
        return (header, try records(in: plain))
    }

    /// The same batch with its payload decompressed (compression bits cleared, CRC recomputed).
    public static func decompressed(_ batch: ByteBuffer, header: RecordBatchHeader, codec: CompressionCodec) throws -> ByteBuffer {
        let payloadStart = batch.readerIndex + RecordBatchHeader.byteCount
        let payloadLength = header.totalByteCount - RecordBatchHeader.byteCount
        let plain = try batch.withUnsafeReadableBytes { bytes in
            try BatchCompression.decompress(
                codec, UnsafeRawBufferPointer(rebasing: bytes[(payloadStart - batch.readerIndex)..<(payloadStart - batch.readerIndex + payloadLength)]))
        }
        return rewrap(batch, header: header, payload: plain, codec: .none)
    }

    /// Compresses an uncompressed batch's payload with `codec` (attributes and CRC updated).
    public static func compressed(_ batch: ByteBuffer, codec: CompressionCodec) throws -> ByteBuffer {
        let header = try validateFraming(batch, requireExactLength: false)
        guard header.compression == CompressionCodec.none else { return batch }
        guard codec != .none else { return batch }
        let payloadLength = header.totalByteCount - RecordBatchHeader.byteCount
        let packed = try batch.withUnsafeReadableBytes { bytes in
            try BatchCompression.compress(
                codec, UnsafeRawBufferPointer(rebasing: bytes[RecordBatchHeader.byteCount..<(RecordBatchHeader.byteCount + payloadLength)]))
        }
        return rewrap(batch, header: header, payload: packed, codec: codec)
    }

    static func rewrap(_ batch: ByteBuffer, header: RecordBatchHeader, payload: [UInt8], codec: CompressionCodec) -> ByteBuffer {
        var output = ByteBuffer()
        output.reserveCapacity(RecordBatchHeader.byteCount + payload.count)
        var newHeader = header
        newHeader.attributes = (header.attributes & ~0x7) | codec.rawValue
        newHeader.batchLength = Int32(RecordBatchHeader.byteCount - RecordBatchHeader.logOverhead + payload.count)
        output.writeRepeatingByte(0, count: RecordBatchHeader.byteCount)
        newHeader.write(into: &output, at: 0)
        output.writeBytes(payload)
        updateCRC(in: &output, at: 0)
        return output
    }
}
