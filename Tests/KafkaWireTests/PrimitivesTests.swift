import KafkaWire
import NIOCore
import SeededRandom
import Testing

@Suite("Primitives")
struct PrimitivesTests {
    static let unsignedVarints: [(UInt32, [UInt8])] = [
        (0, [0x00]), (1, [0x01]), (127, [0x7F]), (128, [0x80, 0x01]), (300, [0xAC, 0x02]),
        (16383, [0xFF, 0x7F]), (16384, [0x80, 0x80, 0x01]), (0x0FFF_FFFF, [0xFF, 0xFF, 0xFF, 0x7F]),
        (UInt32.max, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
    ]

    @Test("unsigned varint vectors", arguments: unsignedVarints)
    func unsignedVarint(value: UInt32, encoded: [UInt8]) throws {
        var b = ByteBuffer()
        b.writeUnsignedVarint(value)
        #expect(bytes(b) == encoded)
        #expect(ByteBuffer.unsignedVarintSize(UInt64(value)) == encoded.count)
        #expect(try b.readUnsignedVarint() == value)
        #expect(b.readableBytes == 0)
    }

    static let zigZagVarints: [(Int32, [UInt8])] = [
        (0, [0x00]), (-1, [0x01]), (1, [0x02]), (-2, [0x03]), (2, [0x04]), (63, [0x7E]), (-64, [0x7F]),
        (64, [0x80, 0x01]), (-65, [0x81, 0x01]), (300, [0xD8, 0x04]),
        (Int32.max, [0xFE, 0xFF, 0xFF, 0xFF, 0x0F]), (Int32.min, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
    ]

    @Test("zig-zag varint vectors", arguments: zigZagVarints)
    func zigZagVarint(value: Int32, encoded: [UInt8]) throws {
        var b = ByteBuffer()
        b.writeVarint(value)
        #expect(bytes(b) == encoded)
        #expect(ByteBuffer.varintSize(value) == encoded.count)
        #expect(try b.readVarint() == value)
    }

    static let zigZagVarlongs: [(Int64, [UInt8])] = [
        (0, [0x00]), (-1, [0x01]), (1, [0x02]), (150, [0xAC, 0x02]),
        (Int64(Int32.max) + 1, [0x80, 0x80, 0x80, 0x80, 0x10]),
        (Int64.max, [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
        (Int64.min, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
    ]

    @Test("zig-zag varlong vectors", arguments: zigZagVarlongs)
    func zigZagVarlong(value: Int64, encoded: [UInt8]) throws {
        var b = ByteBuffer()
        b.writeVarlong(value)
        #expect(bytes(b) == encoded)
        #expect(ByteBuffer.varlongSize(value) == encoded.count)
        #expect(try b.readVarlong() == value)
    }

    @Test func varintRejectsOverlongAndTruncated() {
        var tooLong = buffer([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        #expect(throws: WireError.self) { try tooLong.readUnsignedVarint() }
        var overflow = buffer([0xFF, 0xFF, 0xFF, 0xFF, 0x1F])
        #expect(throws: WireError.self) { try overflow.readUnsignedVarint() }
        var truncated = buffer([0x80, 0x80])
        #expect(throws: WireError.truncated) { try truncated.readUnsignedVarint() }
        var longTooLong = buffer([UInt8](repeating: 0xFF, count: 10) + [0x01])
        #expect(throws: WireError.self) { try longTooLong.readUnsignedVarlong() }
    }

    @Test func randomVarintsRoundTrip() throws {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<2000 {
            let v32 = Int32(truncatingIfNeeded: rng.next())
            let v64 = Int64(bitPattern: rng.next()) >> (rng.next() % 64)
            var b = ByteBuffer()
            b.writeVarint(v32)
            b.writeVarlong(v64)
            b.writeUnsignedVarint(UInt32(truncatingIfNeeded: v64))
            #expect(try b.readVarint() == v32)
            #expect(try b.readVarlong() == v64)
            #expect(try b.readUnsignedVarint() == UInt32(truncatingIfNeeded: v64))
        }
    }

    @Test func strings() throws {
        var b = ByteBuffer()
        try b.writeWireString("héllo", compact: false)
        try b.writeWireString("héllo", compact: true)
        try b.writeWireNullableString(nil, compact: false, nullable: true)
        try b.writeWireNullableString(nil, compact: true, nullable: true)
        try b.writeWireString("", compact: true)
        #expect(bytes(b) == [0, 6] + Array("héllo".utf8) + [7] + Array("héllo".utf8) + [0xFF, 0xFF, 0x00, 0x01])
        #expect(try b.readWireString(compact: false) == "héllo")
        #expect(try b.readWireString(compact: true) == "héllo")
        #expect(try b.readWireNullableString(compact: false, nullable: true) == nil)
        #expect(try b.readWireNullableString(compact: true, nullable: true) == nil)
        #expect(try b.readWireString(compact: true) == "")

        var nullInNonNullable = buffer([0xFF, 0xFF])
        #expect(throws: WireError.self) { try nullInNonNullable.readWireString(compact: false) }
        var negative = buffer([0xFF, 0xFE, 0x41])
        #expect(throws: WireError.self) { try negative.readWireNullableString(compact: false, nullable: true) }
        var tooLong = buffer([0x7F, 0xFF, 0x41, 0x42])
        #expect(throws: WireError.truncated) { try tooLong.readWireString(compact: false) }
        var compactTooLong = buffer([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x41])
        #expect(throws: WireError.truncated) { try compactTooLong.readWireString(compact: true) }

        var w = ByteBuffer()
        #expect(throws: WireError.self) { try w.writeWireString(String(repeating: "x", count: 40000), compact: false) }
        #expect(throws: WireError.self) { try w.writeWireNullableString(nil, compact: true, nullable: false) }
    }

    @Test func bytesAndRecords() throws {
        var b = ByteBuffer()
        try b.writeWireBytes(buffer([1, 2, 3]), compact: false)
        try b.writeWireBytes(buffer([4]), compact: true)
        try b.writeWireNullableBytes(nil, compact: false, nullable: true)
        try b.writeWireNullableBytes(nil, compact: true, nullable: true)
        #expect(bytes(b) == [0, 0, 0, 3, 1, 2, 3, 2, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0])
        #expect(try b.readWireBytes(compact: false) == buffer([1, 2, 3]))
        #expect(try b.readWireBytes(compact: true) == buffer([4]))
        #expect(try b.readWireRecords(compact: false, nullable: true) == nil)
        #expect(try b.readWireNullableBytes(compact: true, nullable: true) == nil)

        var negative = buffer([0xFF, 0xFF, 0xFF, 0xFE])
        #expect(throws: WireError.self) { try negative.readWireNullableBytes(compact: false, nullable: true) }
        var huge = buffer([0x7F, 0xFF, 0xFF, 0xFF, 1, 2])
        #expect(throws: WireError.truncated) { try huge.readWireBytes(compact: false) }
    }

    @Test func recordsAreZeroCopySlices() throws {
        var b = ByteBuffer()
        try b.writeWireBytes(buffer([9, 8, 7, 6]), compact: true)
        let records = try b.readWireRecords(compact: true, nullable: true)
        #expect(records?.byteCount == 4)
        #expect(records?.chunks.count == 1)
        #expect(records?.singleBuffer == buffer([9, 8, 7, 6]))
    }

    @Test func arrayCounts() throws {
        var b = buffer([0xFF, 0xFF, 0xFF, 0xFF])
        #expect(try b.readWireArrayCount(compact: false, nullable: true) == nil)
        var nonNull = buffer([0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: WireError.self) { try nonNull.readWireArrayCount(compact: false) }
        var negative = buffer([0xFF, 0xFF, 0xFF, 0xF0])
        #expect(throws: WireError.self) { try negative.readWireArrayCount(compact: false, nullable: true) }
        var huge = buffer([0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0])
        #expect(throws: WireError.self) { try huge.readWireArrayCount(compact: false) }
        var hugeCompact = buffer([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0, 0, 0, 0])
        #expect(throws: WireError.self) { try hugeCompact.readWireArrayCount(compact: true) }
    }

    @Test func uuid() throws {
        #expect(KafkaUUID.zero.description == "AAAAAAAAAAAAAAAAAAAAAA")
        #expect(KafkaUUID.one.description == "AAAAAAAAAAAAAAAAAAAAAQ")
        let id = KafkaUUID(mostSignificantBits: 0xFBFB_FBFB_FBFB_FBFB, leastSignificantBits: 0xFFFF_FFFF_FFFF_FFFF)
        #expect(id.description == "-_v7-_v7-_v__________w")
        #expect(KafkaUUID(id.description) == id)
        #expect(KafkaUUID("not-a-uuid") == nil)
        for _ in 0..<200 {
            let r = KafkaUUID.random()
            #expect(r != .zero && r != .one)
            #expect(!r.description.hasPrefix("-"))
            #expect(r.description.utf8.count == 22)
            #expect(KafkaUUID(r.description) == r)
        }
        var b = ByteBuffer()
        b.writeWireUUID(id)
        #expect(b.readableBytes == 16)
        #expect(try b.readWireUUID() == id)
        var short = buffer([1, 2, 3])
        #expect(throws: WireError.truncated) { try short.readWireUUID() }
    }

    @Test func errorCodes() {
        #expect(KafkaErrorCode.none.rawValue == 0)
        #expect(KafkaErrorCode.unknownServerError.rawValue == -1)
        #expect(KafkaErrorCode.unknownTopicOrPartition.description == "UNKNOWN_TOPIC_OR_PARTITION")
        #expect(KafkaErrorCode.invalidTopicException.rawValue == 17)
        #expect(KafkaErrorCode.unsupportedVersion.rawValue == 35)
        #expect(KafkaErrorCode.invalidRecord.rawValue == 87)
        #expect(KafkaErrorCode.unknownTopicId.rawValue == 100)
        #expect(KafkaErrorCode.transactionAbortable.rawValue == 120)
        #expect(KafkaErrorCode(rawValue: 999).description == "UNKNOWN_ERROR_CODE(999)")
        #expect(KafkaErrorCode.notCoordinator.isRetriable)
        #expect(!KafkaErrorCode.invalidRequest.isRetriable)
    }
}
