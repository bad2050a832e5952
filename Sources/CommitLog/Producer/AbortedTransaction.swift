public import NIOCore
import RecordFormat

/// One aborted transaction of a partition (Kafka `AbortedTxn`): the producer, the first offset the
/// transaction wrote here, the offset of its ABORT marker, and the last stable offset when the
/// marker was written. read_committed fetches return the ones overlapping the fetched range.
public struct AbortedTransaction: Sendable, Equatable {
    public var producerId: Int64
    public var firstOffset: Int64
    /// The ABORT marker's offset.
    public var lastOffset: Int64
    public var lastStableOffset: Int64

    public init(producerId: Int64, firstOffset: Int64, lastOffset: Int64, lastStableOffset: Int64) {
        self.producerId = producerId
        self.firstOffset = firstOffset
        self.lastOffset = lastOffset
        self.lastStableOffset = lastStableOffset
    }
}

/// Kafka's `.txnindex` file, one per segment (`<20-digit base offset>.txnindex`), holding the
/// aborted transactions whose ABORT marker lies in that segment, in marker order.
///
/// | field | type |
/// |---|---|
/// | version | int16 (0) |
/// | producerId | int64 |
/// | firstOffset | int64 |
/// | lastOffset | int64 |
/// | lastStableOffset | int64 |
///
/// 34 bytes per entry, big-endian, no header (Kafka `TransactionIndex`).
enum TransactionIndexFile {
    static let suffix = ".txnindex"
    static let entryByteCount = 34
    static let version: Int16 = 0

    static func name(_ baseOffset: Int64) -> String { SegmentFileName.stem(baseOffset) + suffix }

    static func baseOffset(of name: String) -> Int64? { SegmentFileName.baseOffset(of: name, suffix: suffix) }

    static func encode(_ entries: [AbortedTransaction]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * entryByteCount)
        func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
        for entry in entries {
            put(version)
            put(entry.producerId)
            put(entry.firstOffset)
            put(entry.lastOffset)
            put(entry.lastStableOffset)
        }
        return bytes
    }

    /// Decodes whole entries; a torn trailing entry or an unknown version ends the file.
    static func decode(_ bytes: [UInt8]) -> [AbortedTransaction] {
        var entries: [AbortedTransaction] = []
        var index = 0
        func get<T: FixedWidthInteger>(_: T.Type) -> T {
            var value: T = 0
            for _ in 0..<MemoryLayout<T>.size {
                value = value << 8 | T(truncatingIfNeeded: bytes[index])
                index += 1
            }
            return value
        }
        while bytes.count - index >= entryByteCount {
            guard get(Int16.self) == version else { break }
            entries.append(
                AbortedTransaction(
                    producerId: get(Int64.self), firstOffset: get(Int64.self), lastOffset: get(Int64.self),
                    lastStableOffset: get(Int64.self)))
        }
        return entries
    }
}

/// A transaction marker's type (Kafka `ControlRecordType`): the key of the one record of a control
/// batch is {version int16 0, type int16}; the value is {version int16 0, coordinatorEpoch int32}.
public enum ControlRecordType: Int16, Sendable {
    case abort = 0
    case commit = 1

    /// The type of the control batch `batch` (its readable bytes are the whole batch), or nil when
    /// it is not a transaction marker.
    public init?(controlBatch batch: ByteBuffer) {
        guard let records = try? RecordBatch.records(in: batch), let key = records.first?.key else { return nil }
        self.init(controlKey: key)
    }

    /// The type in a control record's key (int16 version, int16 type), or nil when it is not a
    /// transaction marker.
    public init?(controlKey key: ByteBuffer) {
        guard key.readableBytes >= 4, let type = key.getInteger(at: key.readerIndex + 2, as: Int16.self) else { return nil }
        self.init(rawValue: type)
    }

    /// One control batch with this marker for `producerId`/`producerEpoch` (offsets assigned at append).
    public func markerBatch(producerId: Int64, producerEpoch: Int16, coordinatorEpoch: Int32, timestamp: Int64) -> ByteBuffer {
        var builder = RecordBatchBuilder(
            producerId: producerId, producerEpoch: producerEpoch, baseSequence: -1, isTransactional: true, isControl: true)
        var key: [UInt8] = [0, 0, 0, 0]
        key[3] = UInt8(rawValue)
        var value: [UInt8] = [0, 0]
        withUnsafeBytes(of: coordinatorEpoch.bigEndian) { value.append(contentsOf: $0) }
        builder.append(key: key, value: value, timestamp: timestamp)
        return builder.build()
    }
}
