import DiskIO

/// Kafka's producer-state snapshot, `<20-digit offset>.snapshot` in the partition directory: the
/// state of every producer after all batches below that offset (Kafka
/// `ProducerStateManager.writeSnapshot` / `readSnapshot`; the layout below is the whole format).
///
/// | field | type |
/// |---|---|
/// | version | int16 (1) |
/// | crc | uint32, CRC-32C of everything after it |
/// | count | int32 |
/// | entries | count × {producerId int64, epoch int16, lastSequence int32, lastOffset int64, offsetDelta int32, timestamp int64, coordinatorEpoch int32, currentTxnFirstOffset int64} |
///
/// All big-endian. Only each producer's last batch is stored (as Kafka does); `offsetDelta` is its
/// `lastOffset - firstOffset`, and `timestamp` the producer's last write time.
enum ProducerSnapshotFile {
    static let suffix = ".snapshot"
    static let version: Int16 = 1
    static let headerByteCount = 10
    static let entryByteCount = 46
    /// Snapshots kept per partition (the newest); older ones are deleted after each write.
    static let retainedMax = 2
    /// Bounds decoding of a damaged count.
    static let entriesMax = 10_000_000

    static func name(_ offset: Int64) -> String { SegmentFileName.stem(offset) + suffix }

    static func offset(of name: String) -> Int64? { SegmentFileName.baseOffset(of: name, suffix: suffix) }

    static func encode(_ entries: [ProducerStateEntry]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerByteCount + entries.count * entryByteCount)
        append(version, to: &bytes)
        append(UInt32(0), to: &bytes)
        append(Int32(entries.count), to: &bytes)
        for entry in entries {
            let last = entry.batches.last
            append(entry.producerId, to: &bytes)
            append(entry.epoch, to: &bytes)
            append(last?.lastSequence ?? -1, to: &bytes)
            append(last?.lastOffset ?? -1, to: &bytes)
            append(Int32(clamping: (last.map { $0.lastOffset - $0.firstOffset }) ?? 0), to: &bytes)
            append(entry.lastTimestamp, to: &bytes)
            append(entry.coordinatorEpoch, to: &bytes)
            append(entry.currentTxnFirstOffset, to: &bytes)
        }
        let crc = SnapshotCRC32C.checksum(bytes[6...])
        withUnsafeBytes(of: crc.bigEndian) { for (i, byte) in $0.enumerated() { bytes[2 + i] = byte } }
        return bytes
    }

    /// - Throws: a description when the bytes are not a valid version-1 snapshot.
    static func decode(_ bytes: [UInt8]) throws(IndexCorruption) -> [ProducerStateEntry] {
        guard bytes.count >= headerByteCount else { throw IndexCorruption("snapshot of \(bytes.count) bytes is too short") }
        var reader = Reader(bytes: bytes)
        let version: Int16 = reader.read()
        guard version == Self.version else { throw IndexCorruption("snapshot version \(version), expected \(Self.version)") }
        let crc: UInt32 = reader.read()
        let actual = SnapshotCRC32C.checksum(bytes[6...])
        guard crc == actual else { throw IndexCorruption("snapshot CRC \(crc) does not match \(actual)") }
        let count: Int32 = reader.read()
        guard count >= 0, count <= entriesMax, bytes.count == headerByteCount + Int(count) * entryByteCount else {
            throw IndexCorruption("snapshot claims \(count) entries in \(bytes.count) bytes")
        }
        var entries: [ProducerStateEntry] = []
        entries.reserveCapacity(Int(count))
        for _ in 0..<count {
            let producerId: Int64 = reader.read()
            let epoch: Int16 = reader.read()
            let lastSequence: Int32 = reader.read()
            let lastOffset: Int64 = reader.read()
            let offsetDelta: Int32 = reader.read()
            let timestamp: Int64 = reader.read()
            let coordinatorEpoch: Int32 = reader.read()
            let currentTxnFirstOffset: Int64 = reader.read()
            var batches: [ProducerBatchMetadata] = []
            if lastOffset >= 0 {
                // Kafka's `decrementSequence`: the first sequence, wrapping below 0 to Int32.max.
                let first = Int64(lastSequence) - Int64(offsetDelta)
                let firstSequence = first < 0 ? Int32(truncatingIfNeeded: first + Int64(Int32.max) + 1) : Int32(first)
                batches.append(
                    ProducerBatchMetadata(
                        firstSequence: firstSequence, lastSequence: lastSequence, firstOffset: lastOffset - Int64(offsetDelta),
                        lastOffset: lastOffset, maxTimestamp: timestamp))
            }
            entries.append(
                ProducerStateEntry(
                    producerId: producerId, epoch: epoch, batches: batches, lastTimestamp: timestamp,
                    coordinatorEpoch: coordinatorEpoch, currentTxnFirstOffset: currentTxnFirstOffset))
        }
        return entries
    }

    /// Snapshot offsets present in `directory`, ascending.
    static func list(_ directory: String, io: any FileIO) throws(DiskError) -> [Int64] {
        try io.listDirectory(directory).compactMap(offset(of:)).sorted()
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        mutating func read<T: FixedWidthInteger>() -> T {
            var value: T = 0
            for _ in 0..<MemoryLayout<T>.size {
                value = value << 8 | T(truncatingIfNeeded: bytes[index])
                index += 1
            }
            return value
        }
    }
}

/// CRC-32C (Castagnoli), bytewise table. `CommitLog` does not depend on `Checksums` (STYLE §1), and
/// a snapshot is a few KiB written on roll and shutdown, so a table is fast enough.
enum SnapshotCRC32C {
    private static let table: [UInt32] = (0..<256).map { (index: UInt32) -> UInt32 in
        var crc = index
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
