import NIOCore
import RecordCompression
import RecordFormat
import Testing

@Suite struct CompressionTests {
    static let codecs: [CompressionCodec] = [.gzip, .snappy, .lz4, .zstd]

    @Test(arguments: codecs) func roundTripsPayloads(codec: CompressionCodec) throws {
        var generator = SystemRandomNumberGenerator()
        for size in [0, 1, 100, 32 * 1024, 32 * 1024 + 1, 300_000] {
            // Half random, half repetitive, so every codec both compresses and copies.
            let input = (0..<size).map { $0 % 2 == 0 ? UInt8.random(in: 0...255, using: &generator) : UInt8($0 % 7) }
            let packed = try input.withUnsafeBytes { try BatchCompression.compress(codec, $0) }
            let unpacked = try packed.withUnsafeBytes { try BatchCompression.decompress(codec, $0) }
            #expect(unpacked == input, "\(codec.name) size \(size)")
        }
    }

    @Test(arguments: codecs) func compressedBatchDecodesToTheSameRecords(codec: CompressionCodec) throws {
        var builder = RecordBatchBuilder()
        for index in 0..<50 {
            builder.append(key: Array("key-\(index)".utf8), value: Array(String(repeating: "v\(index)", count: 20).utf8), headers: [("h", [1, 2])], timestamp: 1000 + Int64(index))
        }
        let plain = builder.build()
        let packed = try RecordBatch.compressed(plain, codec: codec)
        let header = try RecordBatch.validate(packed, requireExactLength: true)
        #expect(header.compression == codec)
        #expect(packed.readableBytes < plain.readableBytes)
        let decoded = try RecordBatch.decodeRecords(in: packed)
        let expected = try RecordBatch.records(in: plain)
        #expect(decoded.records.count == 50)
        #expect(decoded.records.map { $0.key } == expected.map { $0.key })
        #expect(decoded.records.map { $0.value } == expected.map { $0.value })
        #expect(decoded.records.map { $0.offsetDelta } == expected.map { $0.offsetDelta })
    }

    @Test(arguments: codecs) func garbageIsRejectedNotTrapped(codec: CompressionCodec) {
        var generator = SystemRandomNumberGenerator()
        for size in [1, 7, 16, 100, 5000] {
            let garbage = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? garbage.withUnsafeBytes { try BatchCompression.decompress(codec, $0) }
        }
    }

    @Test func rawSnappyWithoutXerialFramingIsAccepted() throws {
        let text = Array(String(repeating: "petrel ", count: 100).utf8)
        let framed = try text.withUnsafeBytes { try BatchCompression.compress(.snappy, $0) }
        // Strip the 16-byte xerial header and the 4-byte block length: a raw snappy block.
        let raw = Array(framed[20...])
        #expect(try raw.withUnsafeBytes { try BatchCompression.decompress(.snappy, $0) } == text)
    }
}
