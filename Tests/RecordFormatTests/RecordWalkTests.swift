import NIOCore
import RecordFormat
import SeededRandom
import Testing
import TestSupport

/// Zig-zag varint bytes, written independently of RecordFormat's encoder.
private func varint(_ value: Int64) -> [UInt8] {
    var raw = UInt64(bitPattern: (value << 1) ^ (value >> 63))
    var out: [UInt8] = []
    while raw >= 0x80 {
        out.append(UInt8(raw & 0x7F) | 0x80)
        raw >>= 7
    }
    out.append(UInt8(raw))
    return out
}

/// One record's bytes: length prefix + body; `lengthAdjust` lies about the length.
private func record(
    offsetDelta: Int64, timestampDelta: Int64 = 0, key: [UInt8]?, value: [UInt8]?,
    headers: [(keyLength: Int64, key: [UInt8], value: [UInt8]?)] = [], lengthAdjust: Int64 = 0, keyLengthOverride: Int64? = nil
) -> [UInt8] {
    var body: [UInt8] = [0]
    body += varint(timestampDelta) + varint(offsetDelta)
    if let key { body += varint(keyLengthOverride ?? Int64(key.count)) + key } else { body += varint(keyLengthOverride ?? -1) }
    if let value { body += varint(Int64(value.count)) + value } else { body += varint(-1) }
    body += varint(Int64(headers.count))
    for header in headers {
        body += varint(header.keyLength) + header.key
        if let value = header.value { body += varint(Int64(value.count)) + value } else { body += varint(-1) }
    }
    return varint(Int64(body.count) + lengthAdjust) + body
}

/// A CRC-valid uncompressed batch around `records` with the given count fields.
private func batch(_ records: [UInt8], count: Int32, lastOffsetDelta: Int32, baseTimestamp: Int64 = 1_000) -> ByteBuffer {
    var buffer = ByteBuffer()
    let header = RecordBatchHeader(
        batchLength: Int32(RecordBatchHeader.byteCount - RecordBatchHeader.logOverhead + records.count),
        lastOffsetDelta: lastOffsetDelta, baseTimestamp: baseTimestamp, maxTimestamp: baseTimestamp, recordsCount: count)
    buffer.writeRepeatingByte(0, count: RecordBatchHeader.byteCount)
    header.write(into: &buffer, at: 0)
    buffer.writeBytes(records)
    RecordBatch.updateCRC(in: &buffer, at: 0)
    return buffer
}

private func walk(_ buffer: ByteBuffer, _ rule: RecordOffsetRule = .sequential) throws(RecordBatchError) -> RecordsSummary {
    let header = try RecordBatch.validateFraming(buffer, requireExactLength: true)
    return try RecordBatch.walkRecords(in: buffer, header: header, offsets: rule)
}

private func failure(_ buffer: ByteBuffer, _ rule: RecordOffsetRule = .sequential) -> RecordBatchError? {
    do {
        _ = try walk(buffer, rule)
        return nil
    } catch {
        return error
    }
}

@Suite struct RecordWalkTests {
    @Test func builderBatchesPassAndAreSummarised() throws {
        var builder = RecordBatchBuilder()
        builder.append(key: nil, value: Array("v0".utf8), timestamp: 1_000)
        builder.append(key: Array("k1".utf8), value: nil, headers: [("h", Array("x".utf8)), ("n", nil)], timestamp: 990)
        builder.append(key: [], value: [UInt8](repeating: 0xAB, count: 300), timestamp: 2_000)
        let summary = try walk(builder.build())
        #expect(summary.recordCount == 3)
        #expect(summary.keylessCount == 1)
        #expect(summary.minTimestamp == 990)
        #expect(summary.maxTimestamp == 2_000)
    }

    @Test func wellFormedHandBuiltBatchPasses() throws {
        let records = record(offsetDelta: 0, timestampDelta: 5, key: [1], value: [2, 3])
            + record(offsetDelta: 1, key: nil, value: nil, headers: [(1, [0x61], nil)])
        let summary = try walk(batch(records, count: 2, lastOffsetDelta: 1))
        #expect(summary.recordCount == 2)
        #expect(summary.keylessCount == 1)
        #expect(summary.maxTimestamp == 1_005)
    }

    @Test func recordLengthPastTheBatchIsRefused() {
        let records = record(offsetDelta: 0, key: [1], value: [2], lengthAdjust: 40)
        let error = failure(batch(records, count: 1, lastOffsetDelta: 0))
        #expect(error?.kind == .invalid)
        #expect(error?.message.contains("record 0") == true)
    }

    @Test func recordLengthShorterThanItsFieldsIsRefused() {
        // The length claims one byte less than the fields use: the value runs past the record.
        let records = record(offsetDelta: 0, key: [1], value: [2, 3, 4], lengthAdjust: -1) + [0]
        #expect(failure(batch(records, count: 1, lastOffsetDelta: 0))?.kind == .invalid)
    }

    @Test func bytesLeftInsideARecordAreRefused() {
        // The length claims two bytes more than the fields use (the extra bytes are present).
        let records = record(offsetDelta: 0, key: [1], value: [2], lengthAdjust: 2) + [0, 0]
        #expect(failure(batch(records, count: 1, lastOffsetDelta: 0))?.message.contains("invalid record size") == true)
    }

    @Test func fewerRecordsThanTheCountAreRefused() {
        let records = record(offsetDelta: 0, key: [1], value: [2])
        #expect(failure(batch(records, count: 2, lastOffsetDelta: 1))?.kind == .invalid)
    }

    @Test func moreRecordsThanTheCountAreRefused() {
        let records = record(offsetDelta: 0, key: [1], value: [2]) + record(offsetDelta: 1, key: [1], value: [2])
        let error = failure(batch(records, count: 1, lastOffsetDelta: 0))
        #expect(error?.message.contains("follow the last") == true)
    }

    @Test func offsetDeltasOutOfOrderAreRefused() {
        let records = record(offsetDelta: 1, key: [1], value: [2]) + record(offsetDelta: 0, key: [1], value: [2])
        let buffer = batch(records, count: 2, lastOffsetDelta: 1)
        #expect(failure(buffer, .sequential)?.message.contains("offset delta") == true)
        #expect(failure(buffer, .increasing)?.message.contains("offset delta") == true)
    }

    @Test func compactedGapsPassOnlyAsIncreasing() throws {
        let records = record(offsetDelta: 0, key: [1], value: [2]) + record(offsetDelta: 3, key: [1], value: [2])
        let buffer = batch(records, count: 2, lastOffsetDelta: 3)
        #expect(failure(buffer, .sequential) != nil)
        #expect(try walk(buffer, .increasing).recordCount == 2)
        // An empty batch (all records compacted away) is valid in the log.
        #expect(try walk(batch([], count: 0, lastOffsetDelta: 4), .increasing).recordCount == 0)
        // ... but a delta past lastOffsetDelta is not.
        let beyond = record(offsetDelta: 5, key: [1], value: [2])
        #expect(failure(batch(beyond, count: 1, lastOffsetDelta: 4), .increasing) != nil)
    }

    @Test func negativeHeaderKeySizeAndCountAreRefused() {
        let badKey = record(offsetDelta: 0, key: [1], value: [2], headers: [(-1, [], nil)])
        #expect(failure(batch(badKey, count: 1, lastOffsetDelta: 0))?.message.contains("header key") == true)
        // Header count -1: hand-built body.
        var body: [UInt8] = [0] + varint(0) + varint(0) + varint(-1) + varint(-1) + varint(-1)
        body = varint(Int64(body.count)) + body
        #expect(failure(batch(body, count: 1, lastOffsetDelta: 0))?.message.contains("headers") == true)
    }

    @Test func keyLengthBelowMinusOneIsRefused() {
        let records = record(offsetDelta: 0, key: [], value: [2], keyLengthOverride: -7)
        #expect(failure(batch(records, count: 1, lastOffsetDelta: 0))?.message.contains("key length") == true)
    }

    @Test func overlongVarintIsRefused() {
        let body: [UInt8] = [0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]
        let records = varint(Int64(body.count)) + body
        #expect(failure(batch(records, count: 1, lastOffsetDelta: 0))?.kind == .invalid)
    }

    @Test func offendersAreNamedByIndex() {
        let records = record(offsetDelta: 0, key: [1], value: [2]) + record(offsetDelta: 1, key: nil, value: [2])
            + record(offsetDelta: 2, timestampDelta: 50, key: nil, value: nil)
        let buffer = batch(records, count: 3, lastOffsetDelta: 2)
        let header = RecordBatchHeader(buffer: buffer)!
        #expect(RecordBatch.recordIndices(in: buffer, header: header) { keyIsNull, _ in keyIsNull } == [1, 2])
        #expect(RecordBatch.recordIndices(in: buffer, header: header) { _, timestamp in timestamp > 1_010 } == [2])
    }

    @Test func withMaxTimestampPatchesAndKeepsTheCRCValid() throws {
        let buffer = batch(record(offsetDelta: 0, timestampDelta: 9, key: [1], value: [2]), count: 1, lastOffsetDelta: 0)
        let patched = RecordBatch.withMaxTimestamp(1_009, buffer)
        let header = try RecordBatch.validateFromClient(patched)
        #expect(header.maxTimestamp == 1_009)
    }

    @Test func seededMutationsNeverCrashTheWalk() {
        var builder = RecordBatchBuilder()
        for index in 0..<20 { builder.append(key: index % 3 == 0 ? nil : [UInt8(index)], value: [UInt8](repeating: 7, count: index * 3), timestamp: Int64(index)) }
        let original = Array(builder.build().readableBytesView)
        let seed = TestSeed()
        var generator = SplitMix64(seed: seed.value)
        for _ in 0..<5_000 {
            var bytes = original
            let flips = 1 + Int(generator.next() % 4)
            for _ in 0..<flips {
                let position = RecordBatchHeader.byteCount + Int(generator.next() % UInt64(bytes.count - RecordBatchHeader.byteCount))
                bytes[position] = UInt8(truncatingIfNeeded: generator.next())
            }
            var buffer = ByteBuffer(bytes: bytes)
            RecordBatch.updateCRC(in: &buffer, at: 0)
            _ = failure(buffer)  // any outcome but a crash is fine (seed \(seed.value) replays)
        }
    }
}
