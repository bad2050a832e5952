import KafkaWire
import NIOCore
import Testing

@Suite("Data types")
struct DataTypeTests {
    @Test func consumerProtocolSubscriptionLayout() throws {
        let s = ConsumerProtocolSubscription(topics: ["a", "bc"], userData: nil, ownedPartitions: [.init(topic: "a", partitions: [0, 2])])
        // v1: topics (int32 count + int16 strings), userData (null bytes), ownedPartitions.
        let expected: [UInt8] = [0, 0, 0, 2, 0, 1, 0x61, 0, 2, 0x62, 0x63, 0xFF, 0xFF, 0xFF, 0xFF,
                                 0, 0, 0, 1, 0, 1, 0x61, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2]
        #expect(bytes(try s.encoded(version: 1)) == expected)
        // OwnedPartitions (v1+) is ignorable: dropped at v0.
        #expect(bytes(try s.encoded(version: 0)) == Array(expected.prefix(15)))
        var b = buffer(expected)
        #expect(try ConsumerProtocolSubscription(from: &b, version: 1) == s)
    }

    @Test func allDataTypesRoundTrip() throws {
        func check<M: KafkaMessage & Equatable>(_ make: (Int16) -> M) throws {
            for v in M.supportedVersions {
                let (first, decoded, second) = try roundTrip(make(v), version: v)
                #expect(first == second, "\(M.self) v\(v)")
                #expect(decoded == make(v), "\(M.self) v\(v)")
                for n in 0..<first.readableBytes {
                    var prefix = first.getSlice(at: first.readerIndex, length: n)!
                    #expect(throws: WireError.self) { try M(from: &prefix, version: v) }
                }
            }
        }
        try check { v in
            ConsumerProtocolSubscription(
                topics: ["orders", "payments"], userData: ByteBuffer(bytes: [1, 2]),
                ownedPartitions: v >= 1 ? [.init(topic: "orders", partitions: [0, 1])] : [],
                generationId: v >= 2 ? 7 : -1, rackId: v >= 3 ? "rack-1" : nil)
        }
        try check { _ in
            ConsumerProtocolAssignment(assignedPartitions: [.init(topic: "orders", partitions: [3])], userData: nil)
        }
        try check { _ in OffsetCommitKey(group: "g", topic: "t", partition: 4) }
        try check { v in
            OffsetCommitValue(offset: 100, leaderEpoch: v >= 3 ? 5 : -1, metadata: "m", commitTimestamp: 1_700_000_000_000,
                              expireTimestamp: v == 1 ? 1_800_000_000_000 : -1)
        }
        try check { _ in GroupMetadataKey(group: "group-1") }
        try check { v in
            GroupMetadataValue(
                protocolType: "consumer", generation: 3, protocol: "range", leader: "m-1",
                currentStateTimestamp: v >= 2 ? 1_700_000_000_000 : -1,
                members: [.init(memberId: "m-1", groupInstanceId: v >= 3 ? "i-1" : nil, clientId: "c", clientHost: "/127.0.0.1",
                                rebalanceTimeout: v >= 1 ? 300_000 : -1, sessionTimeout: 45000,
                                subscription: ByteBuffer(bytes: [0, 1]), assignment: ByteBuffer())])
        }
    }
}
