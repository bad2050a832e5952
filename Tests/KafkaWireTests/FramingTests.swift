import KafkaWire
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Framing")
struct FramingTests {
    @Test func apiKeys() {
        #expect(APIKey.produce.rawValue == 0)
        #expect(APIKey.fetch.rawValue == 1)
        #expect(APIKey.apiVersions.rawValue == 18)
        #expect(APIKey.describeCluster.rawValue == 60)
        #expect(APIKey.metadata.name == "Metadata")
        #expect(APIKey(rawValue: 999).name == "Unknown(999)")
        #expect(APIKey.allKnown.count == 91)
        #expect(APIKey.servedAPIs.count == 51)
        #expect(APIKey.consumerGroupHeartbeat.servedRange?.versions == 0...1)
        #expect(APIKey.shareFetch.servedRange?.versions == 1...1)  // KIP-932 as of Kafka 4.1
        #expect(APIKey.produce.servedRange == ServedAPIRange(apiKey: .produce, minVersion: 0, maxVersion: 12))  // v0-2: legacy message sets, converted
        #expect(APIKey.fetch.servedRange?.versions == 0...17)
        #expect(APIKey.saslHandshake.servedRange?.versions == 0...1)
        #expect(APIKey.createAcls.servedRange?.versions == 1...3)
    }

    @Test func headerVersions() {
        #expect(APIKey.produce.requestHeaderVersion(apiVersion: 8) == 1)
        #expect(APIKey.produce.requestHeaderVersion(apiVersion: 9) == 2)
        #expect(APIKey.produce.responseHeaderVersion(apiVersion: 8) == 0)
        #expect(APIKey.produce.responseHeaderVersion(apiVersion: 9) == 1)
        #expect(APIKey.apiVersions.requestHeaderVersion(apiVersion: 3) == 2)
        #expect(APIKey.apiVersions.responseHeaderVersion(apiVersion: 3) == 0)
        #expect(APIKey.apiVersions.responseHeaderVersion(apiVersion: 4) == 0)
        #expect(APIKey.offsetDelete.requestHeaderVersion(apiVersion: 0) == 1)
        #expect(APIKey.describeCluster.requestHeaderVersion(apiVersion: 0) == 2)
        #expect(APIKey(rawValue: 1234).requestHeaderVersion(apiVersion: 50) == 1)
        #expect(APIKey(rawValue: 1234).responseHeaderVersion(apiVersion: 50) == 0)
    }

    @Test func requestHeaderRoundTrip() throws {
        for (key, version, expectedLength) in [(APIKey.produce, Int16(7), 17), (.produce, 9, 18), (APIKey(rawValue: 777), 3, 17)] {
            let h = RequestHeader(apiKey: key, apiVersion: version, correlationId: 42, clientId: "rdkafka")
            var b = ByteBuffer()
            try h.write(to: &b)
            #expect(b.readableBytes == expectedLength)
            #expect(try RequestHeader.read(from: &b) == h)
            #expect(b.readableBytes == 0)
        }
        // Null client id, header v1.
        var b = buffer([0, 3, 0, 1, 0, 0, 0, 5, 0xFF, 0xFF])
        let h = try RequestHeader.read(from: &b)
        #expect(h.apiKey == .metadata && h.apiVersion == 1 && h.correlationId == 5 && h.clientId == nil)
        // Truncated headers throw.
        let full = buffer([0, 0, 0, 9, 0, 0, 0, 5, 0, 2, 0x41, 0x42, 0])
        for n in 0..<full.readableBytes {
            var p = full.getSlice(at: 0, length: n)!
            #expect(throws: WireError.self) { try RequestHeader.read(from: &p) }
        }
    }

    @Test func responseHeader() throws {
        var b = ByteBuffer()
        ResponseHeader(correlationId: 7).write(to: &b, version: 0)
        ResponseHeader(correlationId: 8).write(to: &b, version: 1)
        #expect(bytes(b) == [0, 0, 0, 7, 0, 0, 0, 8, 0])
        #expect(try ResponseHeader.read(from: &b, version: 0).correlationId == 7)
        #expect(try ResponseHeader.read(from: &b, version: 1).correlationId == 8)
    }

    @Test func responseFrameSingleBuffer() throws {
        let chunks = try WireWriter.encodeResponseFrame(sampleFetchResponse(12), version: 12, correlationId: 3)
        #expect(chunks.count == 1)
        guard case .bytes(var frame) = chunks[0] else { Issue.record("expected bytes"); return }
        let size = try frame.readWireInt32()
        #expect(Int(size) == frame.readableBytes)
        #expect(try ResponseHeader.read(from: &frame, version: 1).correlationId == 3)
        let body = try FetchResponse(from: &frame, version: 12)
        #expect(try body.encoded(version: 12) == sampleFetchResponse(12).encoded(version: 12))

        // ApiVersions v3 response frame uses header v0 (no tagged section after the correlation id).
        let av = try WireWriter.encodeResponseFrame(ApiVersionsResponse(), version: 3, correlationId: 1)
        guard case .bytes(var avFrame) = av[0] else { Issue.record("expected bytes"); return }
        _ = try avFrame.readWireInt32()
        _ = try avFrame.readWireInt32()
        #expect(try ApiVersionsResponse(from: &avFrame, version: 3) == ApiVersionsResponse())
    }

    @Test func requestFrame() throws {
        let chunks = try WireWriter.encodeRequestFrame(sampleProduceRequest(9), version: 9, correlationId: 11, clientId: "c")
        var frame = try #require(Records(chunks: chunks).singleBuffer)
        #expect(Int(try frame.readWireInt32()) == frame.readableBytes)
        let header = try RequestHeader.read(from: &frame)
        #expect(header.apiKey == .produce && header.apiVersion == 9 && header.clientId == "c")
        #expect(try ProduceRequest(from: &frame, version: 9) == sampleProduceRequest(9))
    }

    @Test func fileRegionRecordsAreSeparateChunks() throws {
        let fd = open("/dev/null", O_RDONLY)
        try #require(fd >= 0)
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fd)
        defer { try? handle.close() }
        let region = FileRegion(fileHandle: handle, readerIndex: 100, endIndex: 1100)
        let records = Records(chunks: [.bytes(ByteBuffer(bytes: [1, 2, 3])), .file(region), .bytes(ByteBuffer(bytes: [4]))])
        #expect(records.byteCount == 1004)
        #expect(records.singleBuffer == nil)

        let response = FetchResponse(responses: [.init(topic: "t", partitions: [.init(partitionIndex: 0, records: records)])])
        let chunks = try WireWriter.encodeResponseFrame(response, version: 11, correlationId: 5)
        #expect(chunks.count == 3)
        guard case .bytes(var head) = chunks[0], case .file(let f) = chunks[1], case .bytes(let tail) = chunks[2] else {
            Issue.record("unexpected chunk layout \(chunks)")
            return
        }
        #expect(f.readableBytes == 1000)
        let total = chunks.reduce(0) { $0 + $1.byteCount }
        #expect(Int(try head.readWireInt32()) == total - 4)
        // The bytes chunk just before the file region ends with the length prefix + first bytes chunk.
        #expect(Array(head.readableBytesView.suffix(7)) == [0, 0, 0x03, 0xEC, 1, 2, 3])
        #expect(bytes(tail).first == 4)

        var w = WireWriter()
        try w.writeRecords(records, compact: true, nullable: true)
        #expect(w.byteCount == 2 + 1004)
        #expect(w.finishSingleBuffer() == nil)
    }

    @Test func writerFastPathAndZeroCopyThreshold() throws {
        var w = WireWriter()
        try w.writeRecords(sampleRecords(), compact: false, nullable: true)
        try w.writeRecords(nil, compact: false, nullable: true)
        #expect(w.isSingleBuffer)
        #expect(w.byteCount == 4 + 70 + 4)
        #expect(w.finish().count == 1)

        var z = WireWriter(zeroCopyThreshold: 16)
        z.buffer.writeWireInt8(1)
        try z.writeRecords(sampleRecords(), compact: true, nullable: true)
        z.buffer.writeWireInt8(2)
        let chunks = z.finish()
        #expect(chunks.count == 3)
        #expect(Records(chunks: chunks).byteCount == 1 + 1 + 70 + 1)

        var n = WireWriter()
        #expect(throws: WireError.self) { try n.writeRecords(nil, compact: true, nullable: false) }
    }
}
