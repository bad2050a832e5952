import NIOCore
import RecordCompression
import RecordFormat
import Testing

@Suite struct LegacyMessageSetTests {
    static func sampleBatch(baseOffset: Int64 = 10) -> ByteBuffer {
        var builder = RecordBatchBuilder(baseOffset: baseOffset)
        builder.append(key: Array("k0".utf8), value: Array("v0".utf8), timestamp: 1_000)
        builder.append(key: nil, value: Array("v1".utf8), timestamp: 1_005)
        builder.append(key: Array("k2".utf8), value: nil, timestamp: 1_010)
        return builder.build()
    }

    static func records(_ batch: ByteBuffer) throws -> [(key: String?, value: String?, timestamp: Int64)] {
        let (header, records) = try RecordBatch.decodeRecords(in: batch)
        return records.map { ($0.key.map { String(buffer: $0) }, $0.value.map { String(buffer: $0) }, header.baseTimestamp + $0.timestampDelta) }
    }

    @Test(arguments: [Int8(0), 1])
    func downThenUpConversionKeepsKeysValuesAndOffsets(magic: Int8) throws {
        let set = LegacyMessageSet.downConvert(Self.sampleBatch(), magic: magic, fromOffset: 11, allocator: ByteBufferAllocator())
        // Offsets are absolute in the set; the record below the fetch offset is left out.
        #expect(set.getInteger(at: 0, as: Int64.self) == 11)
        let batch = try LegacyMessageSet.upConvert(set, now: 99_000, decompressedBytesMax: 1 << 20)
        let header = try RecordBatch.validateFromClient(batch)
        #expect(header.recordsCount == 2)
        let got = try Self.records(batch)
        #expect(got.map(\.key) == [nil, "k2"])
        #expect(got.map(\.value) == ["v1", nil])
        // v1 carries timestamps; v0 has none, so the receive time is used.
        #expect(got.map(\.timestamp) == (magic == 1 ? [1_005, 1_010] : [99_000, 99_000]))
    }

    @Test func corruptCRCAndTruncationAreRefused() throws {
        var set = LegacyMessageSet.downConvert(Self.sampleBatch(), magic: 1, fromOffset: 0, allocator: ByteBufferAllocator())
        var truncated = set
        truncated.moveWriterIndex(to: set.writerIndex - 3)
        #expect(throws: RecordBatchError.self) { try LegacyMessageSet.upConvert(truncated, now: 0, decompressedBytesMax: 1 << 20) }
        set.setInteger(UInt8(0x7A), at: set.readerIndex + 30)  // inside the first message, covered by its CRC
        do {
            _ = try LegacyMessageSet.upConvert(set, now: 0, decompressedBytesMax: 1 << 20)
            Issue.record("a corrupted message was accepted")
        } catch {
            #expect(error.kind == .corrupt)
        }
    }

    @Test func gzipWrapperIsUnpacked() throws {
        let inner = LegacyMessageSet.downConvert(Self.sampleBatch(baseOffset: 0), magic: 1, fromOffset: 0, allocator: ByteBufferAllocator())
        let packed = try inner.withUnsafeReadableBytes { try BatchCompression.compress(.gzip, $0) }
        // A wrapper message (magic 1, gzip) whose value is the compressed inner set.
        var wrapper = ByteBuffer()
        wrapper.writeInteger(Int64(2))
        wrapper.writeInteger(Int32(4 + 1 + 1 + 8 + 4 + 4 + packed.count))
        let crcAt = wrapper.writerIndex
        wrapper.writeInteger(UInt32(0))
        wrapper.writeInteger(Int8(1))
        wrapper.writeInteger(Int8(1))
        wrapper.writeInteger(Int64(5_000))
        wrapper.writeInteger(Int32(-1))
        wrapper.writeInteger(Int32(packed.count))
        wrapper.writeBytes(packed)
        let crc = wrapper.withUnsafeReadableBytes { bytes in crc32IEEE(UnsafeRawBufferPointer(rebasing: bytes[(crcAt + 4)...])) }
        wrapper.setInteger(crc, at: crcAt)
        let batch = try LegacyMessageSet.upConvert(wrapper, now: 0, decompressedBytesMax: 1 << 20)
        let got = try Self.records(batch)
        #expect(got.map(\.value) == ["v0", "v1", nil])
        #expect(got.map(\.timestamp) == [1_000, 1_005, 1_010])
        // The same wrapper with a tiny decompression limit is refused, not expanded.
        #expect(throws: RecordBatchError.self) { try LegacyMessageSet.upConvert(wrapper, now: 0, decompressedBytesMax: 8) }
    }
}

/// Bitwise CRC-32 (IEEE), independent of zlib.
func crc32IEEE(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}
