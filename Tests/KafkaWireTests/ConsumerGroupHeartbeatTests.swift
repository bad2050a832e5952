import KafkaWire
import NIOCore
import Testing

/// ConsumerGroupHeartbeat carries Kafka's nullable struct (`Assignment`): an int8 marker, -1 for
/// null, 1 followed by the struct when present.
@Suite struct ConsumerGroupHeartbeatTests {
    func encode(_ response: ConsumerGroupHeartbeatResponse, version: Int16) throws -> [UInt8] {
        var writer = WireWriter()
        try response.write(to: &writer, version: version)
        return bytes(writer.finishSingleBuffer()!)
    }

    @Test func nullAssignmentIsMinusOneMarker() throws {
        let response = ConsumerGroupHeartbeatResponse(memberId: "m", memberEpoch: 3, heartbeatIntervalMs: 5000)
        let encoded = try encode(response, version: 0)
        // throttle(4) error(2) errorMessage(null: 0) memberId("m": 2 "m") epoch(4) interval(4) marker(-1) tags(0)
        #expect(encoded == [0, 0, 0, 0, 0, 0, 0, 2, 0x6D, 0, 0, 0, 3, 0, 0, 0x13, 0x88, 0xFF, 0])
        var input = buffer(encoded)
        #expect(try ConsumerGroupHeartbeatResponse(from: &input, version: 0) == response)
    }

    @Test func presentAssignmentRoundTrips() throws {
        let id = KafkaUUID(mostSignificantBits: 7, leastSignificantBits: 9)
        let response = ConsumerGroupHeartbeatResponse(
            memberId: "m", memberEpoch: 3, heartbeatIntervalMs: 5000,
            assignment: .init(topicPartitions: [.init(topicId: id, partitions: [0, 2])]))
        for version: Int16 in [0, 1] {
            let encoded = try encode(response, version: version)
            #expect(encoded[17] == 1)
            var input = buffer(encoded)
            #expect(try ConsumerGroupHeartbeatResponse(from: &input, version: version) == response)
            #expect(input.readableBytes == 0)
        }
    }

    @Test func regexOnlyInVersionOne() throws {
        var request = ConsumerGroupHeartbeatRequest(groupId: "g", memberId: "m", memberEpoch: 0, rebalanceTimeoutMs: 1000)
        request.subscribedTopicRegex = "t.*"
        var writer = WireWriter()
        try request.write(to: &writer, version: 1)
        var input = writer.finishSingleBuffer()!
        #expect(try ConsumerGroupHeartbeatRequest(from: &input, version: 1).subscribedTopicRegex == "t.*")
        var v0 = WireWriter()
        #expect(throws: WireError.self) { try request.write(to: &v0, version: 0) }
    }
}
