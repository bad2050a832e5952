public import NIOCore
import Checksums

extension RecordBatch {
    /// Validates one batch at the reader index of `buffer` (which is not moved) and returns its header.
    ///
    /// Checks, in order: at least 17 bytes; magic (byte 16) is 2; at least 61 bytes; `batchLength` is
    /// at least 49 and the whole batch is present (and, if `requireExactLength`, nothing follows it);
    /// the CRC-32C of bytes 21..end; `recordsCount == lastOffsetDelta + 1` and `recordsCount > 0`.
    /// Records themselves are not parsed and nothing is allocated on success.
    ///
    /// Batches rewritten by compaction may have offset gaps (`recordsCount < lastOffsetDelta + 1`) or
    /// no records at all; use `validateFraming` for those.
    ///
    /// - Parameters:
    ///   - buffer: Bytes starting at the batch.
    ///   - requireExactLength: True when the readable bytes must be exactly one batch (a produce
    ///     request's partition data); false when more batches may follow (a segment file).
    /// - Returns: The parsed header.
    /// - Throws: `RecordBatchError` with `.truncated` when bytes are missing, `.corrupt` on a CRC
    ///   mismatch or impossible length, `.unsupportedMagic` when magic is not 2, `.invalid` on a count
    ///   mismatch, an empty batch, or trailing bytes when `requireExactLength`.
    public static func validate(_ buffer: ByteBuffer, requireExactLength: Bool) throws(RecordBatchError) -> RecordBatchHeader {
        let header = try validateFraming(buffer, requireExactLength: requireExactLength)
        try checkRecordCount(header)
        return header
    }

    /// `validate`, plus Kafka's rules for batches arriving in a produce request: no control batches,
    /// and a batch with `producerId >= 0` must carry `baseSequence >= 0`.
    ///
    /// - Parameters:
    ///   - buffer: Bytes starting at the batch.
    ///   - requireExactLength: True (the default) when the readable bytes must be exactly one batch,
    ///     as Produce v3+ demands.
    /// - Returns: The parsed header.
    /// - Throws: As `validate`; `.invalid` for a control batch or a producer id without a sequence.
    public static func validateFromClient(_ buffer: ByteBuffer, requireExactLength: Bool = true) throws(RecordBatchError) -> RecordBatchHeader {
        let header = try validate(buffer, requireExactLength: requireExactLength)
        try checkClientRules(header)
        return header
    }

    /// Validates framing and integrity only: magic, `batchLength`, CRC. No record-count rules, so
    /// compacted batches with offset gaps and empty batches pass. This is what recovery needs.
    ///
    /// - Parameters:
    ///   - buffer: Bytes starting at the batch.
    ///   - requireExactLength: True when the readable bytes must be exactly one batch.
    /// - Returns: The parsed header.
    /// - Throws: `RecordBatchError` with `.truncated`, `.corrupt`, `.unsupportedMagic`, or `.invalid`
    ///   (trailing bytes when `requireExactLength`).
    public static func validateFraming(_ buffer: ByteBuffer, requireExactLength: Bool) throws(RecordBatchError) -> RecordBatchHeader {
        let result = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(RecordBatchError) in try validateFraming(bytes: bytes, requireExactLength: requireExactLength) }
        }
        return try result.get()
    }

    /// `validate` on raw memory starting at the batch.
    ///
    /// - Parameters:
    ///   - bytes: Memory starting at the batch.
    ///   - requireExactLength: True when `bytes` must hold exactly one batch.
    /// - Returns: The parsed header.
    /// - Throws: As `validate(_:requireExactLength:)`.
    public static func validate(bytes: UnsafeRawBufferPointer, requireExactLength: Bool) throws(RecordBatchError) -> RecordBatchHeader {
        let header = try validateFraming(bytes: bytes, requireExactLength: requireExactLength)
        try checkRecordCount(header)
        return header
    }

    /// `validateFromClient` on raw memory starting at the batch.
    ///
    /// - Parameters:
    ///   - bytes: Memory starting at the batch.
    ///   - requireExactLength: True (the default) when `bytes` must hold exactly one batch.
    /// - Returns: The parsed header.
    /// - Throws: As `validateFromClient(_:requireExactLength:)`.
    public static func validateFromClient(bytes: UnsafeRawBufferPointer, requireExactLength: Bool = true) throws(RecordBatchError) -> RecordBatchHeader {
        let header = try validate(bytes: bytes, requireExactLength: requireExactLength)
        try checkClientRules(header)
        return header
    }

    /// `validateFraming` on raw memory starting at the batch.
    ///
    /// - Parameters:
    ///   - bytes: Memory starting at the batch.
    ///   - requireExactLength: True when `bytes` must hold exactly one batch.
    /// - Returns: The parsed header.
    /// - Throws: As `validateFraming(_:requireExactLength:)`.
    public static func validateFraming(bytes: UnsafeRawBufferPointer, requireExactLength: Bool) throws(RecordBatchError) -> RecordBatchHeader {
        // Byte 16 is the magic in every format: check it before anything that assumes v2.
        guard bytes.count > RecordBatchHeader.magicOffset else {
            throw RecordBatchError(.truncated, "\(bytes.count) bytes, too few for a batch header")
        }
        let magic = bytes.load(fromByteOffset: RecordBatchHeader.magicOffset, as: Int8.self)
        guard magic == 2 else {
            throw RecordBatchError(.unsupportedMagic(magic), "magic \(magic); only record batch v2 (magic 2) is supported")
        }
        guard let header = RecordBatchHeader(bytes: bytes) else {
            throw RecordBatchError(.truncated, "\(bytes.count) bytes, fewer than the 61-byte batch header")
        }
        guard header.batchLength >= batchLengthMin else {
            throw RecordBatchError(.corrupt, "batchLength \(header.batchLength) is below the minimum \(batchLengthMin)")
        }
        let total = header.totalByteCount
        guard total <= bytes.count else {
            throw RecordBatchError(.truncated, "batch needs \(total) bytes, \(bytes.count) available")
        }
        if requireExactLength, total != bytes.count {
            throw RecordBatchError(.invalid, "\(bytes.count - total) bytes follow the batch; exactly one batch expected")
        }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[RecordBatchHeader.crcCoverageStart..<total]))
        guard crc == header.crc else {
            throw RecordBatchError(.corrupt, "CRC mismatch: stored \(hex(header.crc)), computed \(hex(crc))")
        }
        return header
    }

    static func checkRecordCount(_ header: RecordBatchHeader) throws(RecordBatchError) {
        guard header.recordsCount > 0 else {
            throw RecordBatchError(.invalid, "batch has recordsCount \(header.recordsCount); at least one record expected")
        }
        guard Int64(header.recordsCount) == Int64(header.lastOffsetDelta) + 1 else {
            throw RecordBatchError(
                .invalid, "recordsCount \(header.recordsCount) does not match lastOffsetDelta \(header.lastOffsetDelta) + 1"
            )
        }
    }

    static func checkClientRules(_ header: RecordBatchHeader) throws(RecordBatchError) {
        guard !header.isControl else {
            throw RecordBatchError(.invalid, "clients may not send control batches")
        }
        if header.producerId >= 0, header.baseSequence < 0 {
            throw RecordBatchError(
                .invalid, "producerId \(header.producerId) with baseSequence \(header.baseSequence); a sequence is required"
            )
        }
    }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}
