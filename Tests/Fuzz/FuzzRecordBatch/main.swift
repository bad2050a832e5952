// Record-batch validation: the checks a produce request's batch goes through, and the deep walk over
// its records (decompressing a compressed payload).
//
// Input: one flags byte, then the batch bytes.
//   bit 0  recompute the batch's CRC when it frames, so mutations get past the CRC check
//   bit 1  validate with requireExactLength: false (a batch followed by more bytes, as in a segment)
//
// Invariants: no validator traps; whatever `validateFromClient` accepts also passes `validate` and
// `validateFraming` with the same header; decoded records number `recordsCount`; a decompressed
// batch recompresses and decodes to the same records.
import FuzzSupport
import NIOCore
import RecordCompression
import RecordFormat

func fuzzOne(_ input: [UInt8]) {
    guard let flags = input.first else { return }
    var bytes = Array(input.dropFirst())
    if flags & 1 != 0 { fixBatchCRCs(&bytes) }
    let exact = flags & 2 == 0
    let batch = ByteBuffer(bytes: bytes)

    validators(batch, exact: exact)

    let framed = try? RecordBatch.validateFraming(batch, requireExactLength: exact)
    if let accepted = try? RecordBatch.validateFromClient(batch, requireExactLength: exact) {
        invariant(accepted == framed && accepted == (try? RecordBatch.validate(batch, requireExactLength: exact)), "validators disagree on the header")
    }
    if let records = try? RecordBatch.records(in: batch) {
        invariant(records.count == Int(framed?.recordsCount ?? -1) || framed == nil, "records(in:) decoded \(records.count) of \(String(describing: framed?.recordsCount))")
    }
    if let (header, records) = try? RecordBatch.decodeRecords(in: batch) {
        invariant(records.count == Int(header.recordsCount), "decodeRecords decoded \(records.count) of \(header.recordsCount)")
        if let codec = header.compression, codec != .none {
            // The payload round-trips through our own compressor.
            guard let plain = try? RecordBatch.decompressed(batch, header: header, codec: codec) else {
                violated("decodeRecords decompressed what decompressed(_:) cannot")
            }
            let packed: ByteBuffer
            do { packed = try RecordBatch.compressed(plain, codec: codec) } catch { violated("recompressing with \(codec) failed: \(error)") }
            guard let again = try? RecordBatch.decodeRecords(in: packed) else { violated("a recompressed \(codec) batch does not decode") }
            invariant(again.records.count == records.count, "recompressed batch has \(again.records.count) records, not \(records.count)")
        }
    }
    // Walking concatenated batches (a segment, a fetch response) stays inside the bytes.
    for validating in [false, true] {
        var iterator = RecordBatchIterator(batch, validatingCRC: validating)
        var last = 0
        while let (position, header) = iterator.next() {
            invariant(position >= last && position + header.totalByteCount <= bytes.count, "iterator left the bytes")
            last = position + header.totalByteCount
        }
    }
}

/// Every validator a produced batch may meet, in one place.
func validators(_ batch: ByteBuffer, exact: Bool) {
    _ = try? RecordBatch.validateFromClient(batch, requireExactLength: exact)
    let decoded = try? RecordBatch.decodeRecords(in: batch)
    // The deep validator (the broker's produce walk): a batch it accepts decodes, record for record.
    if let header = try? RecordBatch.validateFromClient(batch, requireExactLength: exact),
        (try? RecordBatch.validateRecordsDeep(batch, header: header, offsets: .sequential, decompressedBytesMax: 1 << 24)) != nil
    {
        invariant(decoded?.records.count == Int(header.recordsCount), "the record walk accepted a batch that does not decode")
    }
    // Legacy message sets (Produce v0-2) from the same bytes: what converts is a valid v2 batch.
    if let converted = try? LegacyMessageSet.upConvert(batch, now: 0, decompressedBytesMax: 1 << 24) {
        invariant((try? RecordBatch.validateFromClient(converted, requireExactLength: true)) != nil, "an up-converted message set is not a valid batch")
    }
}

func seeds() -> [[UInt8]] {
    var batches: [ByteBuffer] = []
    var builder = RecordBatchBuilder()
    builder.append(key: Array("k".utf8), value: Array("v".utf8), timestamp: 1_600_000_000_000)
    batches.append(builder.build())
    builder = RecordBatchBuilder(producerId: 4, producerEpoch: 0, baseSequence: 0)
    for i in 0..<5 {
        builder.append(
            key: i == 2 ? nil : Array("key-\(i)".utf8), value: i == 3 ? nil : [UInt8](repeating: UInt8(i), count: 30 * i),
            headers: [("trace", [1, 2, 3]), ("empty", nil)], timestamp: 1_600_000_000_000 + Int64(i))
    }
    batches.append(builder.build())
    let plain = makeBatch(baseOffset: 0, count: 8, timestamp: 1_600_000_000_000, valueBytes: 100)
    batches.append(plain)
    for codec in CompressionCodec.allCases where codec != .none {
        if let compressed = try? RecordBatch.compressed(plain, codec: codec) { batches.append(compressed) }
        if let compressed = try? RecordBatch.compressed(batches[1], codec: codec) { batches.append(compressed) }
    }
    var seeds: [[UInt8]] = []
    for batch in batches {
        seeds.append([0] + batch.readableBytesView)
        seeds.append([1] + batch.readableBytesView)
    }
    seeds.append([3] + batches[0].readableBytesView + batches[1].readableBytesView)
    return seeds
}

runFuzzTarget(seeds: seeds, fuzzOne)
