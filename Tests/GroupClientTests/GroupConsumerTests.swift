@testable import GroupClient
import KafkaWire
import NIOCore
import Testing
import WireClient

/// The pure parts of the group member: Kafka's RangeAssignor and the consumer-protocol codecs.
@Suite struct GroupConsumerTests {
    @Test func rangeAssignGivesContiguousRangesExtraToTheFirstMembers() {
        // Kafka's RangeAssignor example: 3 partitions over 2 members → [0, 1] and [2].
        let plan = GroupConsumer.rangeAssign(
            subscriptions: ["m-b": ["t"], "m-a": ["t"]], partitions: ["t": [2, 0, 1]])
        #expect(plan["m-a"]?["t"] == [0, 1])
        #expect(plan["m-b"]?["t"] == [2])
    }

    @Test func rangeAssignIsPerTopicAndOnlyToSubscribers() {
        let plan = GroupConsumer.rangeAssign(
            subscriptions: ["a": ["x", "y"], "b": ["x"], "c": ["y"]],
            partitions: ["x": [0, 1, 2, 3, 4], "y": [0, 1], "z": [0]])
        #expect(plan["a"]?["x"] == [0, 1, 2])
        #expect(plan["b"]?["x"] == [3, 4])
        #expect(plan["a"]?["y"] == [0])
        #expect(plan["c"]?["y"] == [1])
        #expect(plan["b"]?["y"] == nil)
        #expect(plan.values.allSatisfy { $0["z"] == nil }, "nobody subscribed to z")
    }

    @Test func moreMembersThanPartitionsLeavesSomeEmpty() {
        let plan = GroupConsumer.rangeAssign(subscriptions: ["a": ["t"], "b": ["t"], "c": ["t"]], partitions: ["t": [0]])
        #expect(plan["a"]?["t"] == [0])
        #expect(plan["b"] == [:])
        #expect(plan["c"] == [:])
        let assigned = plan.values.flatMap { $0.values.joined() }
        #expect(assigned == [0])
    }

    @Test func assignmentRoundTripsThroughTheConsumerProtocol() throws {
        let assignment = ConsumerProtocolAssignment(
            assignedPartitions: [.init(topic: "other", partitions: [9]), .init(topic: "t", partitions: [3, 1])], userData: nil)
        let bytes = GroupConsumer.encode(assignment, version: 0)
        #expect(try GroupConsumer.decodeAssignment(bytes, topic: "t") == [1, 3])
        #expect(try GroupConsumer.decodeAssignment(bytes, topic: "missing") == [])
        #expect(try GroupConsumer.decodeAssignment(ByteBuffer(), topic: "t") == [], "no bytes: no partitions")
    }

    @Test func garbageAssignmentIsAProtocolViolation() {
        #expect(throws: ClientError.self) {
            try GroupConsumer.decodeAssignment(ByteBuffer(bytes: [0x00, 0x00, 0xFF]), topic: "t")
        }
        #expect(throws: ClientError.self) {
            try GroupConsumer.decodeAssignment(ByteBuffer(bytes: [0xFF, 0xFF]), topic: "t")
        }
    }
}
