// Segment recovery from arbitrary file bytes: the input becomes a partition's `.log` (and, by the
// flags, a second segment, a producer snapshot, or a clean-shutdown marker), the partition is loaded
// as at broker start, and everything is read back.
//
// Input: one flags byte, then the payload.
//   bit 0  recompute the CRC of every batch that frames, so mutations get past the CRC check
//   bit 1  split the batches over two segments (the second named after its first batch's offset)
//   bit 2  clean shutdown: the marker and empty index files exist, so the segments are trusted
//   bit 3  the payload starts with a u16 length and that many bytes of a producer snapshot at 0
//
// Invariants: loading never fails or traps; after an unclean shutdown the log reads back as whole
// CRC-valid batches with increasing offsets below the high watermark, each `.log` is a prefix of what
// was written (recovery only truncates), and a clean restart reads back exactly the same.
import CommitLog
import DiskIOTesting
import FuzzSupport
import NIOCore
import RecordCompression
import RecordFormat

func fuzzOne(_ input: [UInt8]) {
    guard let flags = input.first else { return }
    var payload = Array(input.dropFirst())
    var snapshot: [UInt8]?
    if flags & 8 != 0 {
        guard payload.count >= 2 else { return }
        let length = min(Int(payload[0]) << 8 | Int(payload[1]), payload.count - 2)
        snapshot = Array(payload[2..<(2 + length)])
        payload = Array(payload[(2 + length)...])
    }
    if flags & 1 != 0 { fixBatchCRCs(&payload) }

    var segments: [(base: Int64, bytes: [UInt8])] = [(0, payload)]
    if flags & 2 != 0 {
        let batches = Array(RecordBatchIterator(ByteBuffer(bytes: payload)))
        if batches.count >= 2 {
            let (position, header) = batches[batches.count / 2]
            if header.baseOffset > 0 {
                segments = [(0, Array(payload[..<position])), (header.baseOffset, Array(payload[position...]))]
            }
        }
    }

    let fixture = StorageFixture()
    let clean = flags & 4 != 0
    for segment in segments {
        fixture.write(StorageFixture.path(segment.base, ".log"), segment.bytes)
        if clean {
            fixture.write(StorageFixture.path(segment.base, ".index"), [])
            fixture.write(StorageFixture.path(segment.base, ".timeindex"), [])
        }
    }
    if let snapshot { fixture.write(StorageFixture.path(0, ".snapshot"), snapshot) }
    if clean { fixture.writeCleanShutdownMarker() }

    let log = fixture.load()
    let contents = log.readEverything(verifyCRC: !clean)
    _ = try? log.offsetOfMaxTimestamp()
    _ = try? log.offset(forTimestamp: 1_700_000_000_000)
    if clean {
        // Trusted bytes: no invariants beyond not trapping, through a restart too.
        _ = fixture.restart().readEverything(verifyCRC: false)
        return
    }
    for segment in segments {
        guard let now = fixture.disk.currentContents(of: StorageFixture.path(segment.base, ".log")) else { continue }
        invariant(now.count <= segment.bytes.count && Array(segment.bytes[..<now.count]) == now, "recovery rewrote segment \(segment.base) instead of truncating it")
    }
    let before = (log.logStartOffset, log.highWatermark)
    let reloaded = fixture.restart()
    invariant((reloaded.logStartOffset, reloaded.highWatermark) == before, "a clean restart moved the log from \(before) to \((reloaded.logStartOffset, reloaded.highWatermark))")
    invariant(reloaded.readEverything(verifyCRC: true) == contents, "a clean restart reads back different batches")
}

func seeds() -> [[UInt8]] {
    var plain: [UInt8] = []
    var offset: Int64 = 0
    for (i, count) in [1, 3, 2, 5, 1, 4].enumerated() {
        var batch = makeBatch(baseOffset: offset, count: count, timestamp: 1_600_000_000_000 + Int64(i) * 1000)
        if i == 3, let compressed = try? RecordBatch.compressed(batch, codec: .zstd) { batch = compressed }
        if i == 4, let compressed = try? RecordBatch.compressed(batch, codec: .lz4) { batch = compressed }
        plain += batch.readableBytesView
        offset += Int64(count)
    }
    // An idempotent producer's batches, then a transaction ended by a commit marker.
    var producer: [UInt8] = []
    var builder = RecordBatchBuilder(baseOffset: 0, producerId: 7, producerEpoch: 0, baseSequence: 0)
    builder.append(key: [1], value: [2], timestamp: 1_600_000_000_000)
    builder.append(key: [3], value: [4], timestamp: 1_600_000_000_001)
    producer += builder.build().readableBytesView
    builder = RecordBatchBuilder(baseOffset: 2, producerId: 8, producerEpoch: 1, baseSequence: 0, isTransactional: true)
    builder.append(key: nil, value: [5], timestamp: 1_600_000_000_002)
    producer += builder.build().readableBytesView
    builder = RecordBatchBuilder(baseOffset: 3, producerId: 8, producerEpoch: 1, baseSequence: -1, isTransactional: true, isControl: true)
    builder.append(key: [0, 0, 0, 1], value: [0, 0, 0, 0, 0, 0], timestamp: 1_600_000_000_003)
    producer += builder.build().readableBytesView

    var seeds: [[UInt8]] = []
    for flags: UInt8 in [0, 1, 2, 3, 4, 6] {
        seeds.append([flags] + plain)
        seeds.append([flags] + producer)
    }
    seeds.append([0] + plain.dropLast(7))  // a torn tail
    seeds.append([8, 0, 0] + producer)  // an empty producer snapshot
    return seeds
}

runFuzzTarget(seeds: seeds, fuzzOne)
