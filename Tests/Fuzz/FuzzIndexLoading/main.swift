// Index loading: a valid two-segment partition, shut down cleanly, whose `.index` and `.timeindex`
// of one segment are replaced by the input. Loading must either accept the indexes (they passed the
// sanity checks) or rebuild them; either way the log must answer exactly as with its real indexes.
//
// Input: one selector byte (bit 0: which segment), a u16 length L, L bytes of `.index`, and the
// rest as `.timeindex`.
//
// Invariants: loading never fails or traps; reading the whole log and reading from every offset give
// the same answers as the reference load, or throw (see the known gap below); timestamp lookups too when the time index is the real one,
// (or empty: then it must be rebuilt), and otherwise name a record of the log.
import CommitLog
import DiskIOTesting
import FuzzSupport
import NIOCore
import RecordFormat

struct Reference {
    /// Every file of the cleanly shut-down partition.
    var files: [(path: String, bytes: [UInt8])]
    var bases: [Int64]
    var contents: LogContents
    var timestamps: [Int64]
    var byTimestamp: [(offset: Int64, timestamp: Int64)?]
    var maxTimestamp: (offset: Int64, timestamp: Int64)?
}

/// Timestamp lookups; a throw is a violation only when `mayThrow` is false.
func answers(_ log: PartitionLog, _ timestamps: [Int64], mayThrow: Bool = false) -> [(offset: Int64, timestamp: Int64)?] {
    timestamps.map { timestamp in
        do { return try log.offset(forTimestamp: timestamp).map { (offset: $0.offset.value, timestamp: $0.timestamp) } } catch {
            if mayThrow { return nil }
            violated("offset(forTimestamp: \(timestamp)) threw: \(error)")
        }
    }
}

nonisolated(unsafe) let reference: Reference = {
    let fixture = StorageFixture()
    // Segment 0: offsets 0-19; segment 20: offsets 20-35. Batches of 1-4 records, so index entries
    // (every 128 bytes) fall on batch ends inside both segments.
    for (base, counts) in [(Int64(0), [2, 3, 1, 4, 2, 3, 1, 4]), (Int64(20), [3, 1, 4, 2, 2, 4])] {
        var bytes: [UInt8] = []
        var offset = base
        for count in counts {
            bytes += makeBatch(baseOffset: offset, count: count, timestamp: 1_600_000_000_000 + offset * 100).readableBytesView
            offset += Int64(count)
        }
        fixture.write(StorageFixture.path(base, ".log"), bytes)
    }
    let log = fixture.load()  // unclean: rebuilds the indexes
    let reloaded = fixture.restart()  // clean: trims them, then trusts them
    invariant(reloaded.segmentBaseOffsets == [0, 20] && reloaded.highWatermark == 36, "reference log is not as built: \(log.segmentBaseOffsets)")
    guard let contents = reloaded.readEverything(verifyCRC: true) else { violated("reference log unreadable") }
    do { try fixture.manager.shutdown() } catch { violated("\(error)") }
    let timestamps: [Int64] = [-1, 0, 1_600_000_000_000, 1_600_000_000_150, 1_600_000_000_700, 1_600_000_001_999, 1_600_000_002_000, 1_600_000_003_000, 1_600_000_003_530, 1_600_000_009_000]
    return Reference(
        files: fixture.disk.allFiles().compactMap { path in fixture.disk.currentContents(of: path).map { (path, $0) } },
        bases: [0, 20], contents: contents, timestamps: timestamps, byTimestamp: answers(reloaded, timestamps),
        maxTimestamp: (try? reloaded.offsetOfMaxTimestamp()).map { (offset: $0.offset.value, timestamp: $0.timestamp) })
}()

func fuzzOne(_ input: [UInt8]) {
    guard input.count >= 3 else { return }
    let base = reference.bases[Int(input[0] & 1)]
    let indexLength = min(Int(input[1]) << 8 | Int(input[2]), input.count - 3)
    let index = Array(input[3..<(3 + indexLength)])
    let timeIndex = Array(input[(3 + indexLength)...])

    let fixture = StorageFixture()
    for file in reference.files { fixture.write(file.path, file.bytes) }
    fixture.write(StorageFixture.path(base, ".index"), index)
    fixture.write(StorageFixture.path(base, ".timeindex"), timeIndex)

    let log = fixture.load()
    invariant(log.segmentBaseOffsets == reference.bases && log.highWatermark == 36, "the log changed: \(log.segmentBaseOffsets) up to \(log.highWatermark)")
    // Reads. Known gap (reported, not fixed): only the last offset-index entry is checked against the
    // log at load (as Kafka's sanity check), so a well-formed entry pointing inside a batch is trusted
    // and a read starting from it throws `corruptBatch`. A read may therefore throw; it must never
    // return other bytes than the log holds.
    if let contents = log.readEverything(verifyCRC: false) {
        invariant(contents == reference.contents, "reading the whole log gives different batches")
    }
    for header in reference.contents.batches {
        for offset in header.baseOffset...header.lastOffset {
            var buffer = ByteBuffer()
            do {
                let result = try log.read(from: Offset(offset), maxBytes: 1)
                for slice in result.slices { try slice.read(appendingTo: &buffer) }
            } catch {
                continue
            }
            let first = RecordBatchHeader(buffer: buffer)
            invariant(first == header, "read(from: \(offset)) starts at \(String(describing: first?.baseOffset)), not at the batch \(header.baseOffset)...\(header.lastOffset)")
        }
    }
    // Timestamp lookups: a time index that passes the sanity checks is trusted after a clean shutdown
    // (as Kafka does), so a hostile but well-formed one can shift the answers; they must still name a
    // record of the log at or after the target. With the real index they are the reference's.
    // Lookups start from offset-index positions too, so with a hostile offset index they may throw
    // (the known gap above).
    let intact = timeIndex.isEmpty || timeIndex == reference.files.first { $0.path == StorageFixture.path(base, ".timeindex") }?.bytes
    let indexIntact = index.isEmpty || index == reference.files.first { $0.path == StorageFixture.path(base, ".index") }?.bytes
    let byTimestamp = answers(log, reference.timestamps, mayThrow: !indexIntact)
    for (i, answer) in byTimestamp.enumerated() {
        let expected = reference.byTimestamp[i]
        if intact && indexIntact {
            invariant(answer?.offset == expected?.offset && answer?.timestamp == expected?.timestamp, "offset(forTimestamp: \(reference.timestamps[i])) is \(String(describing: answer)), expected \(String(describing: expected))")
        } else if let answer {
            invariant((0..<36).contains(answer.offset) && answer.timestamp >= reference.timestamps[i], "offset(forTimestamp: \(reference.timestamps[i])) is \(answer)")
        }
    }
    let maxTimestamp = (try? log.offsetOfMaxTimestamp()).map { (offset: $0.offset.value, timestamp: $0.timestamp) }
    if intact && indexIntact {
        invariant(maxTimestamp?.offset == reference.maxTimestamp?.offset && maxTimestamp?.timestamp == reference.maxTimestamp?.timestamp, "offsetOfMaxTimestamp is \(String(describing: maxTimestamp)), expected \(String(describing: reference.maxTimestamp))")
    } else if let maxTimestamp {
        invariant((0..<36).contains(maxTimestamp.offset), "offsetOfMaxTimestamp is \(maxTimestamp)")
    }
}

func seeds() -> [[UInt8]] {
    var seeds: [[UInt8]] = []
    for (selector, base) in reference.bases.enumerated() {
        let index = reference.files.first { $0.path == StorageFixture.path(base, ".index") }?.bytes ?? []
        let timeIndex = reference.files.first { $0.path == StorageFixture.path(base, ".timeindex") }?.bytes ?? []
        let s = UInt8(selector)
        seeds.append([s, UInt8(index.count >> 8), UInt8(index.count & 0xFF)] + index + timeIndex)
        // Preallocated (zero-filled) tails, as an unclean shutdown leaves them.
        let paddedIndex = index + [UInt8](repeating: 0, count: 32)
        seeds.append([s, UInt8(paddedIndex.count >> 8), UInt8(paddedIndex.count & 0xFF)] + paddedIndex + timeIndex + [UInt8](repeating: 0, count: 36))
        seeds.append([s, 0, 0])
    }
    return seeds
}

runFuzzTarget(seeds: seeds, fuzzOne)
