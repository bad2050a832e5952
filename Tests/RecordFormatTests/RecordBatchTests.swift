import NIOCore
import RecordFormat
import SeededRandom
import Testing
import TestSupport

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private func hexBytes(_ hex: String) -> [UInt8] {
    var result: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        result.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return result
}

private func kind(of body: () throws(RecordBatchError) -> Void) -> RecordBatchError.Kind? {
    do {
        try body()
        return nil
    } catch {
        return error.kind
    }
}

@Suite struct RecordBatchTests {
    /// One record, key "key", value "value", timestamp 1_700_000_000_000, base offset 0, no producer.
    /// Computed independently (Python struct + bitwise CRC-32C) from the layout in `RecordBatchHeader`'s doc comment.
    static let golden = hexBytes(
        "0000000000000000" + "00000040" + "ffffffff" + "02" + "db5e9cdd" + "0000" + "00000000"
            + "0000018bcfe56800" + "0000018bcfe56800" + "ffffffffffffffff" + "ffff" + "ffffffff" + "00000001"
            + "1c" + "00" + "00" + "00" + "06" + "6b6579" + "0a" + "76616c7565" + "00"
    )

    @Test func builderMatchesGoldenBatch() throws {
        var builder = RecordBatchBuilder()
        builder.append(key: bytes("key"), value: bytes("value"), timestamp: 1_700_000_000_000)
        let batch = builder.build()
        #expect(Array(batch.readableBytesView) == Self.golden)
        let header = try RecordBatch.validate(ByteBuffer(bytes: Self.golden), requireExactLength: true)
        #expect(header.crc == 0xDB5E_9CDD)
        #expect(header.batchLength == 64)
        #expect(header.recordsCount == 1)
        #expect(header.lastOffsetDelta == 0)
        #expect(header.baseTimestamp == 1_700_000_000_000)
        #expect(header.maxTimestamp == 1_700_000_000_000)
        #expect(header.compression == CompressionCodec.none)
    }

    @Test func roundTripsRecords() throws {
        var builder = RecordBatchBuilder(baseOffset: 42, producerId: 7, producerEpoch: 3, baseSequence: 100, partitionLeaderEpoch: 5)
        builder.append(key: nil, value: bytes("v0"), timestamp: 1000)
        builder.append(key: bytes("k1"), value: nil, headers: [("h", bytes("x")), ("n", nil)], timestamp: 990)
        builder.append(key: [], value: [UInt8](repeating: 0xAB, count: 300), timestamp: 2000)
        let batch = builder.build()
        let header = try RecordBatch.validateFromClient(batch)
        #expect(header.baseOffset == 42)
        #expect(header.partitionLeaderEpoch == 5)
        #expect(header.producerId == 7)
        #expect(header.producerEpoch == 3)
        #expect(header.baseSequence == 100)
        #expect(header.lastSequence == 102)
        #expect(header.recordsCount == 3)
        #expect(header.lastOffsetDelta == 2)
        #expect(header.nextOffset == 45)
        #expect(header.baseTimestamp == 1000)
        #expect(header.maxTimestamp == 2000)
        #expect(header.totalByteCount == batch.readableBytes)

        let records = try RecordBatch.records(in: batch)
        #expect(records.count == 3)
        #expect(records.map(\.offsetDelta) == [0, 1, 2])
        #expect(records.map(\.timestampDelta) == [0, -10, 1000])
        #expect(records[0].key == nil)
        #expect(records[0].value.map { Array($0.readableBytesView) } == bytes("v0"))
        #expect(records[1].key.map { Array($0.readableBytesView) } == bytes("k1"))
        #expect(records[1].value == nil)
        #expect(records[1].headers.count == 2)
        #expect(records[1].headers[0].key == "h")
        #expect(records[1].headers[0].value.map { Array($0.readableBytesView) } == bytes("x"))
        #expect(records[1].headers[1].key == "n")
        #expect(records[1].headers[1].value == nil)
        #expect(records[2].key?.readableBytes == 0)
        #expect(records[2].value?.readableBytes == 300)
    }

    @Test func randomBatchesRoundTrip() throws {
        let seed = TestSeed()
        var rng = SplitMix64(seed: seed.value)
        for _ in 0..<200 {
            let count = Int.random(in: 1...20, using: &rng)
            let batch = RandomBatches.batch(recordCount: count, valueBytesMax: 200, using: &rng)
            let header = try RecordBatch.validate(batch, requireExactLength: true)
            #expect(Int(header.recordsCount) == count, "seed \(seed.value)")
            #expect(try RecordBatch.records(in: batch).count == count, "seed \(seed.value)")
        }
    }

    @Test func patchingBaseOffsetAndEpochKeepsCRCValid() throws {
        var buffer = ByteBuffer(bytes: [0xEE, 0xEE, 0xEE])  // batch not at index 0
        buffer.moveReaderIndex(forwardBy: 3)
        var builder = RecordBatchBuilder()
        builder.append(key: nil, value: bytes("a"), timestamp: 5)
        var batch = builder.build()
        buffer.writeBuffer(&batch)
        RecordBatch.setBaseOffset(123_456, in: &buffer, at: 3)
        RecordBatch.setPartitionLeaderEpoch(9, in: &buffer, at: 3)
        let header = try RecordBatch.validate(buffer, requireExactLength: true)
        #expect(header.baseOffset == 123_456)
        #expect(header.partitionLeaderEpoch == 9)
    }

    @Test func stampingLogAppendTimeRecomputesCRC() throws {
        var builder = RecordBatchBuilder()
        builder.append(key: nil, value: bytes("a"), timestamp: 5)
        builder.append(key: nil, value: bytes("b"), timestamp: 6)
        var batch = builder.build()
        let before = try RecordBatch.validate(batch, requireExactLength: true)
        RecordBatch.stampLogAppendTime(99_999, in: &batch, at: batch.readerIndex)
        let after = try RecordBatch.validate(batch, requireExactLength: true)
        #expect(!before.isLogAppendTime)
        #expect(after.isLogAppendTime)
        #expect(after.maxTimestamp == 99_999)
        #expect(after.baseTimestamp == 5)
        #expect(after.crc != before.crc)
    }

    @Test func rawPointerPatching() throws {
        var builder = RecordBatchBuilder()
        builder.append(key: nil, value: bytes("a"), timestamp: 5)
        var raw = Array(builder.build().readableBytesView)
        raw.withUnsafeMutableBytes { batch in
            RecordBatch.setBaseOffset(77, in: batch)
            RecordBatch.setPartitionLeaderEpoch(3, in: batch)
            RecordBatch.stampLogAppendTime(1234, in: batch)
        }
        let header = try raw.withUnsafeBytes { (batch) throws(RecordBatchError) in
            try RecordBatch.validate(bytes: batch, requireExactLength: true)
        }
        #expect(header.baseOffset == 77)
        #expect(header.partitionLeaderEpoch == 3)
        #expect(header.maxTimestamp == 1234)
        #expect(header.isLogAppendTime)
    }

    @Test func everyByteFromAttributesOnIsCRCCovered() {
        let golden = Self.golden
        for index in 0..<golden.count {
            var flipped = golden
            flipped[index] ^= 0x01
            let result = kind { () throws(RecordBatchError) in
                _ = try RecordBatch.validate(ByteBuffer(bytes: flipped), requireExactLength: true)
            }
            switch index {
            case 0..<8, 12..<16:
                #expect(result == nil, "byte \(index) is outside the CRC")
            case 8..<12:
                #expect(result != nil, "byte \(index) changes batchLength")
            case 16:
                #expect(result == .unsupportedMagic(3))
            default:
                #expect(result == .corrupt, "byte \(index)")
            }
        }
    }

    @Test(arguments: [Int8(0), 1, 3, -1]) func otherMagicIsUnsupported(magic: Int8) {
        var batch = Self.golden
        batch[16] = UInt8(bitPattern: magic)
        let result = kind { () throws(RecordBatchError) in _ = try RecordBatch.validate(ByteBuffer(bytes: batch), requireExactLength: true) }
        #expect(result == .unsupportedMagic(magic))
        // A legacy message is shorter than 61 bytes: the magic still decides.
        let short = Array(batch[0..<26])
        let shortResult = kind { () throws(RecordBatchError) in _ = try RecordBatch.validate(ByteBuffer(bytes: short), requireExactLength: false) }
        #expect(shortResult == .unsupportedMagic(magic))
    }

    @Test func truncationAtEveryLengthThrowsAndNeverTraps() {
        var rng = SplitMix64(seed: 1)
        let batch = Array(RandomBatches.batch(recordCount: 5, using: &rng).readableBytesView)
        for length in 0..<batch.count {
            let prefix = ByteBuffer(bytes: batch[0..<length])
            for exact in [true, false] {
                let result = kind { () throws(RecordBatchError) in _ = try RecordBatch.validate(prefix, requireExactLength: exact) }
                #expect(result == .truncated, "length \(length)")
            }
            let recordsResult = kind { () throws(RecordBatchError) in _ = try RecordBatch.records(in: prefix) }
            #expect(recordsResult == .truncated, "length \(length)")
        }
    }

    @Test func lengthFieldRules() {
        var tooSmall = Self.golden
        tooSmall[11] = 48  // batchLength 48 < 49
        let small = kind { () throws(RecordBatchError) in _ = try RecordBatch.validate(ByteBuffer(bytes: tooSmall), requireExactLength: false) }
        #expect(small == .corrupt)

        var negative = Self.golden
        negative[8] = 0x80
        let neg = kind { () throws(RecordBatchError) in _ = try RecordBatch.validate(ByteBuffer(bytes: negative), requireExactLength: false) }
        #expect(neg == .corrupt)

        let trailing = Self.golden + [0]
        let exact = kind { () throws(RecordBatchError) in _ = try RecordBatch.validate(ByteBuffer(bytes: trailing), requireExactLength: true) }
        #expect(exact == .invalid)
        let loose = kind { () throws(RecordBatchError) in _ = try RecordBatch.validate(ByteBuffer(bytes: trailing), requireExactLength: false) }
        #expect(loose == nil)
    }

    @Test func countMismatchAndEmptyBatchesAreInvalid() throws {
        // recordsCount 2 with lastOffsetDelta 0, CRC fixed up so only the count rule can fail.
        var mismatch = ByteBuffer(bytes: Self.golden)
        mismatch.setInteger(Int32(2), at: 57)
        RecordBatch.updateCRC(in: &mismatch, at: 0)
        let result = kind { () throws(RecordBatchError) in _ = try RecordBatch.validate(mismatch, requireExactLength: true) }
        #expect(result == .invalid)
        // The records themselves no longer match the header.
        let recordsResult = kind { () throws(RecordBatchError) in _ = try RecordBatch.records(in: mismatch) }
        #expect(recordsResult == .corrupt)

        let empty = RecordBatchBuilder().build()
        #expect(empty.readableBytes == 61)
        let emptyResult = kind { () throws(RecordBatchError) in _ = try RecordBatch.validate(empty, requireExactLength: true) }
        #expect(emptyResult == .invalid)
        let framing = try RecordBatch.validateFraming(empty, requireExactLength: true)
        #expect(framing.recordsCount == 0)
        #expect(try RecordBatch.records(in: empty).isEmpty)
    }

    @Test func compactedBatchWithGapsPassesFramingOnly() throws {
        var builder = RecordBatchBuilder(baseOffset: 10)
        builder.append(key: bytes("a"), value: bytes("1"), timestamp: 1, offsetDelta: 0)
        builder.append(key: bytes("b"), value: bytes("2"), timestamp: 2, offsetDelta: 5)
        let batch = builder.build()
        let header = try RecordBatch.validateFraming(batch, requireExactLength: true)
        #expect(header.lastOffsetDelta == 5)
        #expect(header.recordsCount == 2)
        #expect(header.nextOffset == 16)
        let result = kind { () throws(RecordBatchError) in _ = try RecordBatch.validate(batch, requireExactLength: true) }
        #expect(result == .invalid)
        #expect(try RecordBatch.records(in: batch).map(\.offsetDelta) == [0, 5])
    }

    @Test func clientRules() throws {
        var control = RecordBatchBuilder(isControl: true)
        control.append(key: [0, 0, 0, 1], value: [0, 0, 0, 0, 0, 0], timestamp: 1)
        let controlBatch = control.build()
        #expect(try RecordBatch.validate(controlBatch, requireExactLength: true).isControl)
        let controlResult = kind { () throws(RecordBatchError) in _ = try RecordBatch.validateFromClient(controlBatch) }
        #expect(controlResult == .invalid)

        var noSequence = RecordBatchBuilder(producerId: 5, producerEpoch: 0, baseSequence: -1)
        noSequence.append(key: nil, value: bytes("x"), timestamp: 1)
        let noSequenceResult = kind { () throws(RecordBatchError) in _ = try RecordBatch.validateFromClient(noSequence.build()) }
        #expect(noSequenceResult == .invalid)

        var transactional = RecordBatchBuilder(producerId: 5, producerEpoch: 0, baseSequence: 0, isTransactional: true)
        transactional.append(key: nil, value: bytes("x"), timestamp: 1)
        #expect(try RecordBatch.validateFromClient(transactional.build()).isTransactional)
    }

    @Test func logAppendTimeBuilderSetsAttribute() throws {
        var builder = RecordBatchBuilder(timestampType: .logAppendTime)
        builder.append(key: nil, value: nil, timestamp: 77)
        let header = try RecordBatch.validate(builder.build(), requireExactLength: true)
        #expect(header.isLogAppendTime)
        #expect(header.maxTimestamp == 77)
    }

    @Test func compressedBatchRecordsThrowClearly() {
        var batch = ByteBuffer(bytes: Self.golden)
        batch.setInteger(Int16(CompressionCodec.zstd.rawValue), at: 21)
        RecordBatch.updateCRC(in: &batch, at: 0)
        do {
            _ = try RecordBatch.records(in: batch)
            Issue.record("expected an error")
        } catch {
            #expect(error.kind == .invalid)
            #expect(error.message.contains("zstd"))
        }
    }

    @Test func malformedRecordLengthsAreBounded() {
        // Corrupt each record byte to a huge or negative varint, fix the CRC, and decode: must throw
        // or succeed, never trap or over-read.
        var rng = SplitMix64(seed: 2)
        let original = Array(RandomBatches.batch(recordCount: 4, using: &rng).readableBytesView)
        for index in 61..<original.count {
            for value: UInt8 in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                var bytes = ByteBuffer(bytes: original)
                bytes.setInteger(value, at: index)
                RecordBatch.updateCRC(in: &bytes, at: 0)
                _ = try? RecordBatch.records(in: bytes)
            }
        }
    }
}

@Suite struct RecordBatchIteratorTests {
    @Test func iteratesConcatenatedBatchesAndStopsAtTruncatedTail() {
        var rng = SplitMix64(seed: 3)
        let (log, expected) = RandomBatches.log(batchCount: 10, using: &rng)
        for validating in [false, true] {
            var iterator = RecordBatchIterator(log, validatingCRC: validating)
            var seen: [(Int, Int64)] = []
            while let (position, header) = iterator.next() { seen.append((position, header.baseOffset)) }
            #expect(seen.map(\.0) == expected.map(\.position))
            #expect(seen.map(\.1) == expected.map(\.baseOffset))
            #expect(iterator.endedCleanly)
            #expect(iterator.truncatedTailPosition == nil)
        }

        let lastStart = expected[9].position
        for cut in [lastStart + 1, lastStart + 20, lastStart + 61, log.readableBytes - 1] {
            let prefix = log.getSlice(at: 0, length: cut)!
            var iterator = RecordBatchIterator(prefix)
            var count = 0
            while iterator.next() != nil { count += 1 }
            #expect(count == 9)
            #expect(iterator.truncatedTailPosition == lastStart)
            #expect(iterator.position == lastStart)
            #expect(!iterator.endedCleanly)
        }
    }

    @Test func stopsAtCorruptBatchWhenValidating() {
        var rng = SplitMix64(seed: 4)
        var (log, expected) = RandomBatches.log(batchCount: 5, using: &rng)
        let corruptAt = expected[3].position + 61 + 1
        log.setInteger(log.getInteger(at: corruptAt, as: UInt8.self)! ^ 0xFF, at: corruptAt)

        var headerOnly = RecordBatchIterator(log)
        var headerOnlyCount = 0
        while headerOnly.next() != nil { headerOnlyCount += 1 }
        #expect(headerOnlyCount == 5)

        var validating = RecordBatchIterator(log, validatingCRC: true)
        var count = 0
        while validating.next() != nil { count += 1 }
        #expect(count == 3)
        #expect(validating.invalidBatch?.position == expected[3].position)
        #expect(validating.invalidBatch?.error.kind == .corrupt)
        #expect(validating.truncatedTailPosition == nil)
    }

    @Test func stopsAtZeroFilledTail() {
        var rng = SplitMix64(seed: 5)
        var (log, expected) = RandomBatches.log(batchCount: 2, using: &rng)
        log.writeRepeatingByte(0, count: 4096)
        var iterator = RecordBatchIterator(log)
        var count = 0
        while iterator.next() != nil { count += 1 }
        #expect(count == 2)
        #expect(iterator.position == expected[1].position + log.getInteger(at: expected[1].position + 8, as: Int32.self).map { Int($0) + 12 }!)
        #expect(iterator.invalidBatch?.error.kind == .unsupportedMagic(0))
    }

    @Test func positionsAreRelativeToReaderIndex() {
        var rng = SplitMix64(seed: 6)
        let (log, expected) = RandomBatches.log(batchCount: 3, using: &rng)
        var shifted = ByteBuffer(bytes: [1, 2, 3, 4])
        var copy = log
        shifted.writeBuffer(&copy)
        shifted.moveReaderIndex(forwardBy: 4)
        let positions = Array(RecordBatchIterator(shifted).map(\.position))
        #expect(positions == expected.map(\.position))
    }
}

@Suite struct RecordBatchGarbageTests {
    /// Random bytes, and valid logs with random bytes flipped: validation, iteration and decoding
    /// must throw or stop, never trap or loop.
    @Test func garbageNeverTraps() {
        let seed = TestSeed()
        var rng = SplitMix64(seed: seed.value)
        for round in 0..<500 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = RandomBatches.bytes(count: Int.random(in: 0...300, using: &rng), using: &rng)
                if bytes.count > 16, Bool.random(using: &rng) { bytes[16] = 2 }  // get past the magic check
            } else {
                bytes = Array(RandomBatches.log(batchCount: 3, using: &rng).bytes.readableBytesView)
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            let buffer = ByteBuffer(bytes: bytes)
            _ = try? RecordBatch.validate(buffer, requireExactLength: false)
            _ = try? RecordBatch.validateFromClient(buffer)
            _ = try? RecordBatch.records(in: buffer)
            for validating in [false, true] {
                var iterator = RecordBatchIterator(buffer, validatingCRC: validating)
                var steps = 0
                while iterator.next() != nil { steps += 1 }
                #expect(steps <= bytes.count / 61, "seed \(seed.value)")
                #expect(iterator.position <= bytes.count, "seed \(seed.value)")
            }
        }
    }
}
