@testable import CommitLog
import DiskIO
import DiskIOTesting
import NIOCore
import RecordCompression
import RecordFormat
import SeededRandom
import TestSupport

/// One record as a test sees it: absolute offset, key, value (nil = tombstone), timestamp.
struct StoredRecord: Equatable, CustomStringConvertible {
    var offset: Int64
    var key: [UInt8]?
    var value: [UInt8]?
    var timestamp: Int64
    var description: String {
        "\(offset):\(key.map { String(decoding: $0, as: UTF8.self) } ?? "nil")=\(value.map { String(decoding: $0, as: UTF8.self) } ?? "∅")"
    }
}

/// A batch read back from a log: header plus decoded records.
struct StoredBatch {
    var header: RecordBatchHeader
    var records: [StoredRecord]
}

extension Harness {
    /// Every batch from the log start to the high watermark, compacted ones included (gaps, empty
    /// batches, compression), CRC-checked and decoded.
    func storedBatches(_ log: PartitionLog) throws -> [StoredBatch] {
        var batches: [StoredBatch] = []
        var offset = log.logStartOffset
        while offset < log.highWatermark {
            let result = try log.read(from: Offset(offset), maxBytes: 1 << 20)
            var buffer = ByteBuffer(bytes: try bytes(of: result))
            var advanced = false
            while buffer.readableBytes > 0 {
                let (header, records) = try RecordBatch.decodeRecords(in: buffer)
                buffer.moveReaderIndex(forwardBy: header.totalByteCount)
                if header.lastOffset < offset { continue }
                batches.append(StoredBatch(header: header, records: records.map { record in
                    StoredRecord(
                        offset: header.baseOffset + Int64(record.offsetDelta), key: record.key.map { Array(buffer: $0) },
                        value: record.value.map { Array(buffer: $0) }, timestamp: header.baseTimestamp + record.timestampDelta)
                }))
                offset = header.nextOffset
                advanced = true
            }
            if !advanced { break }
        }
        return batches
    }

    func storedRecords(_ log: PartitionLog) throws -> [StoredRecord] {
        try storedBatches(log).flatMap(\.records).filter { $0.offset >= log.logStartOffset }
    }
}

/// A keyed batch: `(key, value)` pairs (value nil = tombstone), optionally compressed.
func keyedBatch(_ pairs: [(String?, String?)], timestamp: Int64, codec: CompressionCodec = .none, producer: (id: Int64, epoch: Int16, sequence: Int32)? = nil) throws -> ByteBuffer {
    var builder = RecordBatchBuilder(
        baseOffset: 0, producerId: producer?.id ?? -1, producerEpoch: producer?.epoch ?? -1, baseSequence: producer?.sequence ?? -1)
    for (index, pair) in pairs.enumerated() {
        builder.append(key: pair.0.map { Array($0.utf8) }, value: pair.1.map { Array($0.utf8) }, timestamp: timestamp + Int64(index))
    }
    let batch = builder.build()
    return codec == .none ? batch : try RecordBatch.compressed(batch, codec: codec)
}

/// What a compacted log must hold: below `cleanedUpTo` only the latest record per key among the
/// records below it (tombstones too unless `tombstonesExpired`), keyless records dropped; from
/// `cleanedUpTo` on, everything.
func expectedAfterCompaction(_ all: [StoredRecord], cleanedUpTo: Int64, tombstonesExpired: Bool) -> [StoredRecord] {
    var latest: [[UInt8]: Int64] = [:]
    for record in all where record.offset < cleanedUpTo {
        if let key = record.key { latest[key] = record.offset }
    }
    return all.filter { record in
        guard record.offset < cleanedUpTo else { return true }
        guard let key = record.key, latest[key] == record.offset else { return false }
        return !(record.value == nil && tombstonesExpired)
    }
}

/// A seeded random keyed workload: `batches` batches of 1–8 records over `keys` keys, ~10% tombstones.
func randomWorkload(seed: UInt64, batches: Int, keys: Int) -> [[(String?, String?)]] {
    var rng = SplitMix64(seed: seed)
    var workload: [[(String?, String?)]] = []
    for batch in 0..<batches {
        var pairs: [(String?, String?)] = []
        for index in 0..<Int.random(in: 1...8, using: &rng) {
            let key = "key-\(Int.random(in: 0..<keys, using: &rng))"
            let tombstone = Int.random(in: 0..<10, using: &rng) == 0
            pairs.append((key, tombstone ? nil : "value-\(batch)-\(index)-\(String(repeating: "x", count: Int.random(in: 0..<40, using: &rng)))"))
        }
        workload.append(pairs)
    }
    return workload
}

/// Small segments, compaction on, cleaning whenever anything is dirty.
func compactedConfiguration(segmentBytes: Int = 2048) -> LogConfiguration {
    var configuration = testConfiguration()
    configuration.segmentBytes = segmentBytes
    configuration.cleanupPolicy = .compact
    configuration.minCleanableDirtyRatio = 0
    configuration.indexIntervalBytes = 256
    return configuration
}
