public import NIOCore

/// Walks concatenated record batches (a segment file, a fetch response) without copying them.
///
/// Positions are byte offsets relative to the reader index the buffer had when the iterator was
/// created, i.e. positions in the file when the buffer holds a whole segment.
///
/// Iteration stops at the end of the bytes, at a truncated tail (fewer bytes than a batch needs:
/// `truncatedTailPosition` is set), or at a batch that is not a valid v2 batch (`invalidBatch` is
/// set). Only the header is checked unless the iterator is created with `validatingCRC: true`, in
/// which case every batch gets `RecordBatch.validateFraming` (CRC included), as recovery needs.
public struct RecordBatchIterator: IteratorProtocol, Sequence {
    /// One batch: where it starts and its header.
    public typealias Element = (position: Int, header: RecordBatchHeader)

    private let buffer: ByteBuffer
    private let validatingCRC: Bool
    /// Position of the next batch; after iteration ends, the end of the last batch returned.
    public private(set) var position: Int = 0
    /// Set when iteration stopped at bytes too short to hold the batch that starts there.
    public private(set) var truncatedTailPosition: Int?
    /// Set when iteration stopped at a batch that failed validation (bad magic, bad length, bad CRC).
    public private(set) var invalidBatch: (position: Int, error: RecordBatchError)?

    /// Creates an iterator over the readable bytes of `buffer`.
    ///
    /// - Parameters:
    ///   - buffer: Concatenated batches starting at the reader index.
    ///   - validatingCRC: True to check every batch's CRC (recovery); false to read headers only.
    public init(_ buffer: ByteBuffer, validatingCRC: Bool = false) {
        self.buffer = buffer
        self.validatingCRC = validatingCRC
    }

    /// True when iteration reached the end of the bytes exactly: no truncated tail, no invalid batch.
    public var endedCleanly: Bool { truncatedTailPosition == nil && invalidBatch == nil && position == buffer.readableBytes }

    /// The next batch, or nil at the end, a truncated tail, or an invalid batch.
    public mutating func next() -> Element? {
        guard truncatedTailPosition == nil, invalidBatch == nil else { return nil }
        let remaining = buffer.readableBytes - position
        guard remaining > 0 else { return nil }
        let position = self.position
        let validatingCRC = self.validatingCRC
        let result = buffer.withUnsafeReadableBytes { bytes in
            let rest = UnsafeRawBufferPointer(rebasing: bytes[position...])
            return Result { () throws(RecordBatchError) -> RecordBatchHeader in
                if validatingCRC {
                    return try RecordBatch.validateFraming(bytes: rest, requireExactLength: false)
                }
                return try Self.checkHeader(rest)
            }
        }
        switch result {
        case .success(let header):
            self.position = position + header.totalByteCount
            return (position, header)
        case .failure(let error):
            if error.kind == .truncated {
                truncatedTailPosition = position
            } else {
                invalidBatch = (position, error)
            }
            return nil
        }
    }

    /// Magic and length checks only: enough to step to the next batch safely.
    private static func checkHeader(_ bytes: UnsafeRawBufferPointer) throws(RecordBatchError) -> RecordBatchHeader {
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
        guard header.batchLength >= RecordBatch.batchLengthMin else {
            throw RecordBatchError(.corrupt, "batchLength \(header.batchLength) is below the minimum \(RecordBatch.batchLengthMin)")
        }
        guard header.totalByteCount <= bytes.count else {
            throw RecordBatchError(.truncated, "batch needs \(header.totalByteCount) bytes, \(bytes.count) available")
        }
        return header
    }
}
