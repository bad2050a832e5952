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

/// The result of `RecordBatch.validateRecordsDeep`.
public struct DeepValidation: Sendable {
    /// What the walk over the records learned.
    public var summary: RecordsSummary
    /// The decompressed record bytes of a compressed batch (nil for an uncompressed one), so a
    /// caller that re-encodes or looks for offending records does not decompress twice.
    public var decompressedRecords: [UInt8]?
}

extension RecordBatch {
    /// The one validating pass over the records of a framed batch (see `validateFraming`): an
    /// uncompressed batch is walked in place; a compressed one is decompressed (at most
    /// `decompressedBytesMax` bytes) and its records walked. This is Kafka's `LogValidator` pass:
    /// a batch that passes can be decoded record by record by any consumer.
    ///
    /// - Parameters:
    ///   - batch: Bytes starting at one whole, framed batch.
    ///   - header: Its header.
    ///   - offsets: `.sequential` for batches from clients, `.increasing` for batches in the log.
    ///   - decompressedBytesMax: The most bytes a compressed payload may decompress to.
    /// - Returns: The summary, and the decompressed records of a compressed batch.
    /// - Throws: `RecordBatchError`: `.corrupt` for an unknown codec or a payload that does not
    ///   decompress (or decompresses past the limit); `.invalid` for malformed records.
    public static func validateRecordsDeep(
        _ batch: ByteBuffer, header: RecordBatchHeader, offsets: RecordOffsetRule,
        decompressedBytesMax: Int = BatchCompression.decompressedBytesMax
    ) throws(RecordBatchError) -> DeepValidation {
        guard let codec = header.compression else {
            throw RecordBatchError(.corrupt, "unknown compression codec \(header.attributes & 0x7)")
        }
        if codec == .none {
            return DeepValidation(summary: try walkRecords(in: batch, header: header, offsets: offsets), decompressedRecords: nil)
        }
        precondition(header.totalByteCount <= batch.readableBytes, "validateRecordsDeep on a batch that was not framed")
        let decompressed = batch.withUnsafeReadableBytes { bytes in
            Result { () throws(CompressionError) in
                try BatchCompression.decompress(
                    codec, UnsafeRawBufferPointer(rebasing: bytes[RecordBatchHeader.byteCount..<header.totalByteCount]),
                    limit: decompressedBytesMax)
            }
        }
        let plain: [UInt8]
        switch decompressed {
        case .success(let bytes): plain = bytes
        case .failure(let error): throw RecordBatchError(.corrupt, "the \(codec.name) payload does not decompress: \(error.message)")
        }
        let walked = plain.withUnsafeBytes { bytes in
            Result { () throws(RecordBatchError) in try walkRecords(bytes, header: header, offsets: offsets) }
        }
        return DeepValidation(summary: try walked.get(), decompressedRecords: plain)
    }

    /// The batch rebuilt around already-decompressed records (attributes and CRC updated), as
    /// `decompressed(_:header:codec:)` would return it, without decompressing again.
    public static func uncompressed(_ batch: ByteBuffer, header: RecordBatchHeader, records: [UInt8]) -> ByteBuffer {
        rewrap(batch, header: header, payload: records, codec: .none)
    }
}
