import KafkaWire
import NIOCore
import SeededRandom
import RecordCompression
import RecordFormat
import Testing
@testable import WireClient

@Suite struct ResponseFrameDecoderTests {
    private func frames(_ payloads: [[UInt8]]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for payload in payloads {
            buffer.writeInteger(Int32(payload.count))
            buffer.writeBytes(payload)
        }
        return buffer
    }

    @Test func dripFedBytesYieldWholeFramesOnly() throws {
        let payloads: [[UInt8]] = [[0, 0, 0, 1, 9, 9], [], [0, 0, 0, 2] + Array(repeating: 7, count: 300)]
        let wire = frames(payloads)
        var pending = ByteBuffer()
        var out: [[UInt8]] = []
        for byte in wire.readableBytesView {
            pending.writeInteger(byte)
            while let frame = try ResponseFrameDecoder.nextFrame(from: &pending) {
                out.append(Array(frame.readableBytesView))
            }
        }
        #expect(out == payloads)
        #expect(pending.readableBytes == 0)
    }

    @Test(arguments: [1, 2, 3, 5, 7, 64, 1000])
    func arbitrarySplitsGiveTheSameFrames(chunk: Int) throws {
        let payloads: [[UInt8]] = (0..<20).map { i in Array(repeating: UInt8(i), count: i * 13) }
        let wire = frames(payloads)
        var pending = ByteBuffer()
        var out: [[UInt8]] = []
        var view = wire
        while view.readableBytes > 0 {
            var piece = view.readSlice(length: min(chunk, view.readableBytes))!
            pending.writeBuffer(&piece)
            while let frame = try ResponseFrameDecoder.nextFrame(from: &pending) { out.append(Array(frame.readableBytesView)) }
        }
        #expect(out == payloads)
    }

    @Test func negativeAndOversizedLengthsAreRejected() throws {
        var negative = ByteBuffer()
        negative.writeInteger(Int32(-5))
        #expect(throws: ClientError.self) { try ResponseFrameDecoder.nextFrame(from: &negative) }
        var huge = ByteBuffer()
        huge.writeInteger(Int32(2_000))
        #expect(throws: ClientError.self) { try ResponseFrameDecoder.nextFrame(from: &huge, frameBytesMax: 1_000) }
        var short = ByteBuffer(bytes: [0, 0])
        #expect(try ResponseFrameDecoder.nextFrame(from: &short) == nil)
    }
}

@Suite struct RecordBatchEncoderTests {
    struct Sample {
        var key: [UInt8]?
        var value: [UInt8]?
        var headers: [(key: String, value: [UInt8]?)]
        var timestamp: Int64
    }

    static func samples(count: Int, seed: UInt64) -> [Sample] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { i in
            let key: [UInt8]? = i % 3 == 0 ? nil : (0..<Int(rng.next() % 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let value: [UInt8]? = i % 7 == 6 ? nil : (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let headers: [(key: String, value: [UInt8]?)] = i % 4 == 0 ? [("h\(i)", [1, 2, 3]), ("null", nil)] : []
            return Sample(key: key, value: value, headers: headers, timestamp: 1_700_000_000_000 + Int64(rng.next() % 10_000) - 5_000)
        }
    }

    @Test(arguments: [1, 2, 50, 500])
    func matchesRecordBatchBuilderByteForByte(count: Int) throws {
        let samples = Self.samples(count: count, seed: UInt64(count))
        var builder = RecordBatchBuilder()
        var encoder = RecordBatchEncoder(reusing: ByteBuffer())
        for s in samples {
            builder.append(key: s.key, value: s.value, headers: s.headers.map { ($0.key, $0.value) }, timestamp: s.timestamp)
            encoder.append(key: s.key, value: s.value, headers: s.headers, timestamp: s.timestamp)
        }
        let expected = builder.build()
        let actual = encoder.finish()
        #expect(Array(actual.readableBytesView) == Array(expected.readableBytesView))

        let decoded = try RecordBatch.records(in: actual)
        #expect(decoded.count == samples.count)
        for (record, sample) in zip(decoded, samples) {
            #expect(record.key.map { Array($0.readableBytesView) } == sample.key)
            #expect(record.value.map { Array($0.readableBytesView) } == sample.value)
            #expect(record.headers.count == sample.headers.count)
        }
    }

    /// `bench produce --compression`: the encoder's plain batch, compressed per batch as the producer
    /// driver does, decodes back to the same records for every codec.
    @Test(arguments: CompressionCodec.allCases)
    func compressedEncoderBatchDecodesToTheSameRecords(codec: CompressionCodec) throws {
        let samples = Self.samples(count: 300, seed: 42)
        var encoder = RecordBatchEncoder(reusing: ByteBuffer())
        for s in samples {
            encoder.append(key: s.key, value: s.value, headers: s.headers, timestamp: s.timestamp)
        }
        let plain = encoder.finish()
        let packed = try RecordBatch.compressed(plain, codec: codec)
        let (header, decoded) = try RecordBatch.decodeRecords(in: packed)
        #expect(header.compression == codec)
        #expect(header.recordsCount == Int32(samples.count))
        #expect(try RecordBatch.validateFraming(packed, requireExactLength: true).totalByteCount == packed.readableBytes)
        let expected = try RecordBatch.records(in: plain)
        #expect(decoded.count == samples.count)
        for (record, (want, sample)) in zip(decoded, zip(expected, samples)) {
            #expect(record.offsetDelta == want.offsetDelta)
            #expect(record.timestampDelta == want.timestampDelta)
            #expect(record.key.map { Array($0.readableBytesView) } == sample.key)
            #expect(record.value.map { Array($0.readableBytesView) } == sample.value)
            #expect(record.headers.map(\.key) == sample.headers.map(\.key))
            #expect(record.headers.map { $0.value.map { Array($0.readableBytesView) } } == sample.headers.map(\.value))
        }
    }

    @Test func recordByteCountPredictsAppend() {
        var encoder = RecordBatchEncoder(reusing: ByteBuffer())
        for i in 0..<100 {
            let value = [UInt8](repeating: 1, count: i * 5)
            let before = encoder.byteCount
            let predicted = encoder.recordByteCount(keyCount: i % 2 == 0 ? nil : 8, valueCount: value.count, timestamp: 1000 + Int64(i))
            encoder.append(key: i % 2 == 0 ? nil : [UInt8](repeating: 2, count: 8), value: value, timestamp: 1000 + Int64(i))
            #expect(encoder.byteCount - before == predicted)
        }
    }

    @Test func reusedBufferKeepsItsStorage() {
        var encoder = RecordBatchEncoder(reusing: ByteBufferAllocator().buffer(capacity: 64 << 10))
        encoder.append(key: nil, value: [UInt8](repeating: 3, count: 1000), timestamp: 1)
        let first = (consume encoder).finish()
        let address = first.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        var again = RecordBatchEncoder(reusing: consume first)
        again.append(key: nil, value: [UInt8](repeating: 4, count: 1000), timestamp: 2)
        let second = (consume again).finish()
        #expect(second.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == address)
        #expect(second.capacity >= 64 << 10)
        #expect(throws: Never.self) { try RecordBatch.records(in: second) }
    }
}
