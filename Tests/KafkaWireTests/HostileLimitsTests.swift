import KafkaWire
import NIOCore
import Testing

/// Kafka 4.4's caps against hostile frames: arrays over 1,000,000 elements and tagged-field
/// sections over 10,000 fields are refused before anything is allocated, even when the frame holds
/// enough bytes for them.
@Suite("Hostile limits")
struct HostileLimitsTests {
    /// MetadataRequest v0: `[topics] string`, each empty topic name is two bytes.
    func metadataV0(topicCount: Int) -> ByteBuffer {
        var b = ByteBuffer()
        b.reserveCapacity(4 + 2 * topicCount)
        b.writeWireInt32(Int32(topicCount))
        for _ in 0..<topicCount { b.writeWireInt16(0) }
        return b
    }

    @Test func arrayOverOneMillionElementsIsRefused() throws {
        var over = metadataV0(topicCount: WireLimits.maxArrayElements + 1)
        #expect(over.readableBytes > 2 * WireLimits.maxArrayElements)
        do {
            _ = try MetadataRequest(from: &over, version: 0)
            Issue.record("a 1,000,001-element array was accepted")
        } catch {
            #expect(error.description.contains("exceeds the limit of 1000000 elements"))
        }
        // The cap is checked on the count alone, before the elements are read.
        #expect(over.readerIndex == 4)

        var atLimit = metadataV0(topicCount: WireLimits.maxArrayElements)
        let request = try MetadataRequest(from: &atLimit, version: 0)
        #expect(request.topics?.count == WireLimits.maxArrayElements)
    }

    @Test func compactArrayCountIsCappedToo() throws {
        var b = ByteBuffer()
        b.writeUnsignedVarint(UInt32(WireLimits.maxArrayElements + 2))  // compact: count + 1
        b.writeRepeatingByte(0, count: WireLimits.maxArrayElements + 10)
        #expect(throws: WireError.self) { try b.readWireArrayCount(compact: true) }
        var ok = ByteBuffer()
        ok.writeUnsignedVarint(UInt32(WireLimits.maxArrayElements + 1))
        ok.writeRepeatingByte(0, count: WireLimits.maxArrayElements)
        #expect(try ok.readWireArrayCount(compact: true) == WireLimits.maxArrayElements)
    }

    /// ApiVersionsResponse v3 ends with a tagged-field section the generated decoder walks.
    func apiVersionsV3(taggedFields: Int) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeWireInt16(0)
        b.writeUnsignedVarint(1)  // no api keys
        b.writeWireInt32(0)
        b.writeUnsignedVarint(UInt32(taggedFields))
        for _ in 0..<taggedFields {
            b.writeUnsignedVarint(40)  // unknown tag
            b.writeUnsignedVarint(0)
        }
        return b
    }

    @Test func moreThanTenThousandTaggedFieldsAreRefused() throws {
        var over = apiVersionsV3(taggedFields: WireLimits.maxTaggedFields + 1)
        do {
            _ = try ApiVersionsResponse(from: &over, version: 3)
            Issue.record("10,001 tagged fields were accepted")
        } catch {
            #expect(error.description.contains("exceed the limit of 10000"))
        }
        var atLimit = apiVersionsV3(taggedFields: WireLimits.maxTaggedFields)
        _ = try ApiVersionsResponse(from: &atLimit, version: 3)
        #expect(atLimit.readableBytes == 0)
    }

    @Test func requestHeaderTaggedFieldsAreCapped() throws {
        func header(taggedFields: Int) -> ByteBuffer {
            var h = ByteBuffer()
            h.writeWireInt16(APIKey.metadata.rawValue); h.writeWireInt16(12); h.writeWireInt32(1)
            h.writeWireInt16(-1)
            h.writeUnsignedVarint(UInt32(taggedFields))
            for _ in 0..<taggedFields { h.writeUnsignedVarint(7); h.writeUnsignedVarint(0) }
            return h
        }
        var over = header(taggedFields: WireLimits.maxTaggedFields + 1)
        #expect(throws: WireError.self) { try RequestHeader.read(from: &over) }
        var ok = header(taggedFields: WireLimits.maxTaggedFields)
        #expect(try RequestHeader.read(from: &ok).correlationId == 1)
    }

    @Test func taggedFieldCountBeyondTheRemainingBytesIsRefused() {
        var b = ByteBuffer()
        b.writeUnsignedVarint(100)
        b.writeRepeatingByte(0, count: 150)  // 100 fields need at least 200 bytes
        #expect(throws: WireError.self) { try b.readTaggedFieldCount() }
    }
}
