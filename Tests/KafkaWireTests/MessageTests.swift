import KafkaWire
import NIOCore
import SeededRandom
import Testing

@Suite("Generated messages")
struct MessageTests {
    @Test("encode -> decode -> re-encode is byte-identical", arguments: allSamples)
    func roundTripBytes(sample: Sample) throws {
        let first = try sample.encode()
        var input = first
        try sample.decode(&input)
        #expect(input.readableBytes == 0, "\(sample): bytes left over")
    }

    @Test func roundTripTypedProduce() throws {
        for v in ProduceRequest.supportedVersions {
            let (first, decoded, second) = try roundTrip(sampleProduceRequest(v), version: v)
            #expect(first == second, "ProduceRequest v\(v)")
            #expect(decoded == sampleProduceRequest(v), "ProduceRequest v\(v)")
            #expect(decoded.topicData[0].partitionData[0].records == sampleRecords(1))
            #expect(decoded.topicData[0].partitionData[1].records == nil)
        }
        for v in ProduceResponse.supportedVersions {
            let (first, _, second) = try roundTrip(sampleProduceResponse(v), version: v)
            #expect(first == second, "ProduceResponse v\(v)")
        }
    }

    @Test func roundTripTypedOthers() throws {
        func check<M: KafkaMessage & Equatable>(_ make: (Int16) -> M, fullyRepresentedAtMax: Bool = true) throws {
            for v in M.supportedVersions {
                let (first, decoded, second) = try roundTrip(make(v), version: v)
                #expect(first == second, "\(M.self) v\(v)")
                if v == M.highestSupportedVersion && fullyRepresentedAtMax {
                    #expect(decoded == make(v), "\(M.self) v\(v) decoded differs")
                }
            }
        }
        try check(sampleFetchRequest, fullyRepresentedAtMax: false) // Topic name is gone in v13+
        try check(sampleFetchResponse, fullyRepresentedAtMax: false)
        try check(sampleMetadataRequest)
        try check(sampleMetadataResponse, fullyRepresentedAtMax: false) // ClusterAuthorizedOperations only 8-10
        try check(sampleApiVersionsRequest)
        try check(sampleApiVersionsResponse)
        try check(sampleJoinGroupRequest)
        try check(sampleJoinGroupResponse)
        try check(sampleListOffsetsRequest)
        try check(sampleListOffsetsResponse)
    }

    @Test func everyServedTypeRoundTripsDefaults() throws {
        for range in APIKey.servedAPIs {
            let req = try #require(range.apiKey.requestType)
            let resp = try #require(range.apiKey.responseType)
            #expect(req.supportedVersions == range.versions)
            #expect(resp.supportedVersions == range.versions)
            for v in range.versions {
                for type in [req as any KafkaMessage.Type, resp as any KafkaMessage.Type] {
                    let m = type.init()
                    var w = WireWriter()
                    try m.write(to: &w, version: v)
                    let single = w.finishSingleBuffer()
                    var encoded = try #require(single)
                    let copy = encoded
                    let decoded = try type.init(from: &encoded, version: v)
                    #expect(encoded.readableBytes == 0)
                    var w2 = WireWriter()
                    try decoded.write(to: &w2, version: v)
                    #expect(w2.finishSingleBuffer() == copy, "\(type) v\(v)")
                }
            }
        }
    }

    @Test func versionOutsideRangeThrows() {
        var b = ByteBuffer()
        #expect(throws: WireError.unsupportedVersion(apiKey: 3, version: 13)) { try MetadataRequest(from: &b, version: 13) }
        #expect(throws: WireError.unsupportedVersion(apiKey: 0, version: 13)) { try ProduceRequest().encoded(version: 13) }
        #expect(throws: WireError.self) { try ApiVersionsRequest(from: &b, version: 5) }
    }

    @Test func nonIgnorableFieldAbsentInVersionThrows() {
        // GroupInstanceId exists from v5 and is not ignorable.
        let join = JoinGroupRequest(groupId: "g", groupInstanceId: "static-1")
        #expect(throws: WireError.fieldNotInVersion("GroupInstanceId", version: 4)) { try join.encoded(version: 4) }
        #expect(throws: Never.self) { try join.encoded(version: 5) }
        // ThrottleTimeMs (v1+) is ignorable: silently dropped at v0.
        #expect(throws: Never.self) { try ApiVersionsResponse(throttleTimeMs: 5).encoded(version: 0) }
    }

    @Test func taggedFieldsAtDefaultAreOmitted() throws {
        let r = ApiVersionsResponse(errorCode: 0, apiKeys: [.init(apiKey: 18, minVersion: 0, maxVersion: 4)], throttleTimeMs: 0)
        let encoded = try r.encoded(version: 3)
        // errorCode | compact array (1 element) | key/min/max + empty tags | throttle | empty tags
        #expect(bytes(encoded) == [0, 0, 2, 0, 18, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0])

        var withTag = r
        withTag.zkMigrationReady = true
        let tagged = try withTag.encoded(version: 3)
        #expect(bytes(tagged) == [0, 0, 2, 0, 18, 0, 0, 0, 4, 0, 0, 0, 0, 0, 1, 3, 1, 1])
        var input = tagged
        #expect(try ApiVersionsResponse(from: &input, version: 3) == withTag)

        // Nested tagged struct at its default (FetchResponse CurrentLeader) is not written.
        let plain = FetchResponse(responses: [.init(topic: "t", partitions: [.init(partitionIndex: 0, records: nil)])])
        var leader = plain
        leader.responses[0].partitions[0].currentLeader = .init(leaderId: 1, leaderEpoch: 2)
        let a = try plain.encoded(version: 12)
        let b = try leader.encoded(version: 12)
        // tag 1, size 9 (int32 + int32 + empty tags) => 11 extra bytes
        #expect(b.readableBytes == a.readableBytes + 11)
    }

    @Test func taggedFieldsAreAscending() throws {
        var r = sampleApiVersionsResponse(3)
        r.apiKeys = []
        let encoded = try r.encoded(version: 3)
        var b = encoded
        _ = try b.readWireInt16()
        _ = try b.readWireArrayCount(compact: true)
        _ = try b.readWireInt32()
        let count = try b.readUnsignedVarint()
        #expect(count == 4)
        var tags: [UInt32] = []
        for _ in 0..<count { tags.append(try b.readTaggedField().tag) }
        #expect(tags == [0, 1, 2, 3])
    }

    @Test func unknownTaggedFieldsAreSkipped() throws {
        let r = ApiVersionsResponse(errorCode: 0, apiKeys: [.init(apiKey: 18, minVersion: 0, maxVersion: 4)], throttleTimeMs: 7, zkMigrationReady: true)
        // Hand-built: unknown tags inside the element (tag 9) and at top level (tags 2-known-but-empty? no: 5 and 40).
        var b = ByteBuffer()
        b.writeWireInt16(0)
        b.writeUnsignedVarint(2)
        b.writeWireInt16(18); b.writeWireInt16(0); b.writeWireInt16(4)
        b.writeUnsignedVarint(1); b.writeUnsignedVarint(9); b.writeUnsignedVarint(3); b.writeBytes([1, 2, 3])
        b.writeWireInt32(7)
        b.writeUnsignedVarint(3)
        b.writeUnsignedVarint(3); b.writeUnsignedVarint(1); b.writeBytes([1])
        b.writeUnsignedVarint(5); b.writeUnsignedVarint(2); b.writeBytes([0xAB, 0xCD])
        b.writeUnsignedVarint(40); b.writeUnsignedVarint(0)
        let decoded = try ApiVersionsResponse(from: &b, version: 3)
        #expect(b.readableBytes == 0)
        #expect(decoded == r)

        // A header v2 with unknown tags is skipped too.
        var h = ByteBuffer()
        h.writeWireInt16(APIKey.metadata.rawValue); h.writeWireInt16(12); h.writeWireInt32(99)
        try h.writeWireNullableString("cli", compact: false, nullable: true)
        h.writeUnsignedVarint(1); h.writeUnsignedVarint(0); h.writeUnsignedVarint(2); h.writeBytes([1, 1])
        h.writeBytes([0xEE])
        let header = try RequestHeader.read(from: &h)
        #expect(header.clientId == "cli" && header.correlationId == 99)
        #expect(bytes(h) == [0xEE])
    }

    @Test("every proper prefix of a valid encoding throws", arguments: allSamples)
    func prefixesThrow(sample: Sample) throws {
        let full = try sample.encode()
        for length in 0..<full.readableBytes {
            var prefix = full.getSlice(at: full.readerIndex, length: length)!
            #expect(throws: WireError.self, "\(sample) prefix \(length)") { try sample.decode(&prefix) }
        }
    }

    @Test func randomInputsNeverCrash() throws {
        var rng = SplitMix64(seed: 0xC0FFEE)
        var decodedCount = 0
        for range in APIKey.servedAPIs {
            let types: [any KafkaMessage.Type] = [range.apiKey.requestType!, range.apiKey.responseType!]
            for type in types {
                for v in range.versions {
                    for _ in 0..<40 {
                        let n = Int(rng.next() % 64)
                        var b = ByteBuffer(bytes: (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
                        if let m = try? type.init(from: &b, version: v) {
                            decodedCount += 1
                            // Whatever decoded must be encodable again (no invalid state).
                            var w = WireWriter()
                            _ = try? m.write(to: &w, version: v)
                        }
                    }
                }
            }
        }
        // Also mutate valid encodings (much more likely to reach deep fields).
        for sample in allSamples {
            let valid = bytes(try sample.encode())
            for _ in 0..<30 {
                var mutated = valid
                for _ in 0..<(1 + Int(rng.next() % 4)) where !mutated.isEmpty {
                    mutated[Int(rng.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                var b = ByteBuffer(bytes: mutated)
                _ = try? sample.decode(&b)
            }
        }
        #expect(decodedCount >= 0)
    }

    @Test func hugeArrayCountOnTinyInputThrows() {
        // MetadataRequest v1: topics count 0x7FFFFFFF followed by 6 bytes.
        var b = buffer([0x7F, 0xFF, 0xFF, 0xFF, 0, 1, 0x41, 0, 0, 0])
        #expect(throws: WireError.self) { try MetadataRequest(from: &b, version: 1) }
        // Compact: uvarint count 2^32-2 in a flexible version.
        var c = buffer([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0, 0, 0, 0])
        #expect(throws: WireError.self) { try MetadataRequest(from: &c, version: 12) }
        // Nested: ProduceRequest v3 with a partition count of 2^31-1.
        var p = ByteBuffer()
        p.writeWireInt16(-1); p.writeWireInt16(1); p.writeWireInt32(1000); p.writeWireInt32(1)
        try! p.writeWireString("t", compact: false)
        p.writeWireInt32(Int32.max)
        #expect(throws: WireError.self) { try ProduceRequest(from: &p, version: 3) }
    }
}

