public import NIOCore

/// Compression codec in attribute bits 0-2.
public enum CompressionCodec: Int16, Sendable, CaseIterable {
    case none = 0, gzip = 1, snappy = 2, lz4 = 3, zstd = 4

    public var name: String {
        switch self {
        case .none: "none"
        case .gzip: "gzip"
        case .snappy: "snappy"
        case .lz4: "lz4"
        case .zstd: "zstd"
        }
    }
}

/// The 61-byte header of a record batch v2 (magic 2), big-endian on the wire.
///
/// | off | size | field |
/// |---|---|---|
/// | 0 | 8 | baseOffset | 8 | 4 | batchLength | 12 | 4 | partitionLeaderEpoch | 16 | 1 | magic |
/// | 17 | 4 | crc (CRC-32C of bytes 21..end) | 21 | 2 | attributes | 23 | 4 | lastOffsetDelta |
/// | 27 | 8 | baseTimestamp | 35 | 8 | maxTimestamp | 43 | 8 | producerId | 51 | 2 | producerEpoch |
/// | 53 | 4 | baseSequence | 57 | 4 | recordsCount |
public struct RecordBatchHeader: Sendable, Equatable {
    public static let byteCount = 61
    /// Bytes before `batchLength`'s coverage starts: baseOffset + batchLength.
    public static let logOverhead = 12
    public static let magicOffset = 16
    public static let crcOffset = 17
    /// First byte covered by the CRC (attributes).
    public static let crcCoverageStart = 21
    public static let attributesOffset = 21
    public static let maxTimestampOffset = 35

    public var baseOffset: Int64
    /// Bytes after the `batchLength` field: total size is `batchLength + 12`.
    public var batchLength: Int32
    public var partitionLeaderEpoch: Int32
    public var magic: Int8
    public var crc: UInt32
    public var attributes: Int16
    public var lastOffsetDelta: Int32
    public var baseTimestamp: Int64
    public var maxTimestamp: Int64
    public var producerId: Int64
    public var producerEpoch: Int16
    public var baseSequence: Int32
    public var recordsCount: Int32

    public init(
        baseOffset: Int64 = 0, batchLength: Int32 = 0, partitionLeaderEpoch: Int32 = -1, magic: Int8 = 2,
        crc: UInt32 = 0, attributes: Int16 = 0, lastOffsetDelta: Int32 = 0, baseTimestamp: Int64 = -1,
        maxTimestamp: Int64 = -1, producerId: Int64 = -1, producerEpoch: Int16 = -1, baseSequence: Int32 = -1,
        recordsCount: Int32 = 0
    ) {
        self.baseOffset = baseOffset
        self.batchLength = batchLength
        self.partitionLeaderEpoch = partitionLeaderEpoch
        self.magic = magic
        self.crc = crc
        self.attributes = attributes
        self.lastOffsetDelta = lastOffsetDelta
        self.baseTimestamp = baseTimestamp
        self.maxTimestamp = maxTimestamp
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.baseSequence = baseSequence
        self.recordsCount = recordsCount
    }

    /// Total bytes of the batch including the 12-byte log overhead.
    public var totalByteCount: Int { Int(batchLength) + Self.logOverhead }
    public var lastOffset: Int64 { baseOffset + Int64(lastOffsetDelta) }
    /// The offset after this batch.
    public var nextOffset: Int64 { lastOffset + 1 }
    public var compression: CompressionCodec? { CompressionCodec(rawValue: attributes & 0x7) }
    public var isLogAppendTime: Bool { attributes & 0x8 != 0 }
    public var isTransactional: Bool { attributes & 0x10 != 0 }
    public var isControl: Bool { attributes & 0x20 != 0 }
    public var hasDeleteHorizon: Bool { attributes & 0x40 != 0 }
    public var hasProducerId: Bool { producerId >= 0 }
    public var lastSequence: Int32 {
        guard baseSequence >= 0 else { return -1 }
        let sum = Int64(baseSequence) + Int64(lastOffsetDelta)
        return sum > Int64(Int32.max) ? Int32(sum - Int64(Int32.max) - 1) : Int32(sum)
    }

    /// Parses the header from raw bytes (at least 61). Does not validate; see `RecordBatch.validate`.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.byteCount else { return nil }
        func load<T: FixedWidthInteger>(_ offset: Int, as: T.Type) -> T {
            T(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        self.init(
            baseOffset: load(0, as: Int64.self), batchLength: load(8, as: Int32.self),
            partitionLeaderEpoch: load(12, as: Int32.self), magic: load(16, as: Int8.self),
            crc: load(17, as: UInt32.self), attributes: load(21, as: Int16.self),
            lastOffsetDelta: load(23, as: Int32.self), baseTimestamp: load(27, as: Int64.self),
            maxTimestamp: load(35, as: Int64.self), producerId: load(43, as: Int64.self),
            producerEpoch: load(51, as: Int16.self), baseSequence: load(53, as: Int32.self),
            recordsCount: load(57, as: Int32.self)
        )
    }

    /// Parses the header at the reader index of `buffer` without moving it; nil if fewer than 61 bytes.
    public init?(buffer: ByteBuffer) {
        guard let header = buffer.withUnsafeReadableBytes({ RecordBatchHeader(bytes: $0) }) else { return nil }
        self = header
    }

    /// Writes the 61 header bytes (as they are, including `crc`) into `buffer` at `index`.
    public func write(into buffer: inout ByteBuffer, at index: Int) {
        buffer.setInteger(baseOffset, at: index)
        buffer.setInteger(batchLength, at: index + 8)
        buffer.setInteger(partitionLeaderEpoch, at: index + 12)
        buffer.setInteger(magic, at: index + 16)
        buffer.setInteger(crc, at: index + 17)
        buffer.setInteger(attributes, at: index + 21)
        buffer.setInteger(lastOffsetDelta, at: index + 23)
        buffer.setInteger(baseTimestamp, at: index + 27)
        buffer.setInteger(maxTimestamp, at: index + 35)
        buffer.setInteger(producerId, at: index + 43)
        buffer.setInteger(producerEpoch, at: index + 51)
        buffer.setInteger(baseSequence, at: index + 53)
        buffer.setInteger(recordsCount, at: index + 57)
    }
}
