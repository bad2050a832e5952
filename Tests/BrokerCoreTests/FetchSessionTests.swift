import BrokerCore
import KafkaWire
import NIOCore
import Testing

/// KIP-227 fetch sessions through encoded Fetch requests, as a client sends them.
@Suite(.serialized) struct FetchSessionTests {
    static func fetch(
        _ topic: String, _ offsets: [Int32: Int64], sessionId: Int32, epoch: Int32, forget: [Int32] = [], topicId: KafkaUUID = .zero
    ) -> FetchRequest {
        FetchRequest(
            replicaId: -1, maxWaitMs: 0, minBytes: 1, maxBytes: 50 << 20, isolationLevel: 0, sessionId: sessionId, sessionEpoch: epoch,
            topics: offsets.isEmpty
                ? []
                : [.init(
                    topic: topic, topicId: topicId,
                    partitions: offsets.keys.sorted().map {
                        .init(partition: $0, currentLeaderEpoch: -1, fetchOffset: offsets[$0]!, logStartOffset: -1, partitionMaxBytes: 1 << 20)
                    })],
            forgottenTopicsData: forget.isEmpty ? [] : [.init(topic: topic, topicId: topicId, partitions: forget)])
    }

    static func partitions(_ response: FetchResponse) -> [Int32: FetchResponse.PartitionData] {
        var result: [Int32: FetchResponse.PartitionData] = [:]
        for topic in response.responses { for partition in topic.partitions { result[partition.partitionIndex] = partition } }
        return result
    }

    static func produce(_ harness: BrokerHarness, _ topic: String, partition: Int32, _ values: [String]) throws {
        let response = try harness.call(produceRequest(topic: topic, partition: partition, batch: makeBatch(values)), version: 9)
        #expect(response.responses[0].partitionResponses[0].errorCode == 0)
    }

    @Test func fullFetchOpensASessionAndIncrementalFetchesAnswerOnlyChanges() throws {
        let harness = try BrokerHarness()
        _ = try harness.call(CreateTopicsRequest(topics: [.init(name: "s", numPartitions: 3, replicationFactor: 1)]), version: 7)
        try Self.produce(harness, "s", partition: 0, ["a", "b"])

        // Epoch 0: a full fetch; the response names the new session and every partition.
        let full = try harness.call(Self.fetch("s", [0: 0, 1: 0, 2: 0], sessionId: 0, epoch: 0), version: 12)
        #expect(full.errorCode == 0)
        #expect(full.sessionId != 0)
        let session = full.sessionId
        #expect(Self.partitions(full).count == 3)
        #expect((Self.partitions(full)[0]?.records?.byteCount ?? 0) > 0)
        #expect(Self.partitions(full)[0]?.highWatermark == 2)

        // Epoch 1: p0 moved on; nothing changed anywhere: an empty response.
        let quiet = try harness.call(Self.fetch("s", [0: 2], sessionId: session, epoch: 1), version: 12)
        #expect(quiet.errorCode == 0)
        #expect(quiet.sessionId == session)
        #expect(Self.partitions(quiet).isEmpty)

        // New records on p1 only: epoch 2 names no partition, the session still reads p1 from 0.
        try Self.produce(harness, "s", partition: 1, ["c"])
        let changed = try harness.call(Self.fetch("s", [:], sessionId: session, epoch: 2), version: 12)
        #expect(changed.errorCode == 0)
        #expect(Array(Self.partitions(changed).keys) == [1])
        #expect((Self.partitions(changed)[1]?.records?.byteCount ?? 0) > 0)
        #expect(Self.partitions(changed)[1]?.highWatermark == 1)

        // A repeated epoch and an unknown session are refused with Kafka's codes, no partitions.
        let stale = try harness.call(Self.fetch("s", [:], sessionId: session, epoch: 2), version: 12)
        #expect(stale.errorCode == KafkaErrorCode.invalidFetchSessionEpoch.rawValue)
        #expect(stale.responses.isEmpty)
        let unknown = try harness.call(Self.fetch("s", [:], sessionId: session &+ 1, epoch: 1), version: 12)
        #expect(unknown.errorCode == KafkaErrorCode.fetchSessionIdNotFound.rawValue)

        // Forgotten partitions leave the session: p1's new records no longer show up; p2's do.
        let forget = try harness.call(Self.fetch("s", [1: 1], sessionId: session, epoch: 3, forget: [1]), version: 12)
        #expect(forget.errorCode == 0)
        try Self.produce(harness, "s", partition: 1, ["d"])
        try Self.produce(harness, "s", partition: 2, ["e"])
        let after = try harness.call(Self.fetch("s", [:], sessionId: session, epoch: 4), version: 12)
        #expect(Array(Self.partitions(after).keys) == [2])

        // Epoch -1 closes the session (a sessionless full fetch); the id is gone afterwards.
        let final = try harness.call(Self.fetch("s", [0: 0], sessionId: session, epoch: -1), version: 12)
        #expect(final.errorCode == 0 && final.sessionId == 0)
        #expect(Self.partitions(final).count == 1)
        let closed = try harness.call(Self.fetch("s", [:], sessionId: session, epoch: 5), version: 12)
        #expect(closed.errorCode == KafkaErrorCode.fetchSessionIdNotFound.rawValue)
        #expect(harness.broker.fetchSessions.sessionCount == 0)
    }

    @Test func cacheSlotsEvictTheSmallerSessionOnlyForALargerOne() throws {
        let harness = try BrokerHarness(sets: ["max.incremental.fetch.session.cache.slots": "1"])
        _ = try harness.call(CreateTopicsRequest(topics: [.init(name: "e", numPartitions: 3, replicationFactor: 1)]), version: 7)
        let a = try harness.call(Self.fetch("e", [0: 0, 1: 0], sessionId: 0, epoch: 0), version: 12)
        #expect(a.sessionId != 0)
        // Full cache, a smaller session: answered without a session; A survives.
        let b = try harness.call(Self.fetch("e", [2: 0], sessionId: 0, epoch: 0), version: 12)
        #expect(b.errorCode == 0 && b.sessionId == 0 && Self.partitions(b).count == 1)
        let aStill = try harness.call(Self.fetch("e", [:], sessionId: a.sessionId, epoch: 1), version: 12)
        #expect(aStill.errorCode == 0)
        // A larger session evicts A.
        let c = try harness.call(Self.fetch("e", [0: 0, 1: 0, 2: 0], sessionId: 0, epoch: 0), version: 12)
        #expect(c.sessionId != 0 && c.sessionId != a.sessionId)
        let aGone = try harness.call(Self.fetch("e", [:], sessionId: a.sessionId, epoch: 2), version: 12)
        #expect(aGone.errorCode == KafkaErrorCode.fetchSessionIdNotFound.rawValue)
        #expect(harness.broker.fetchSessions.evictionCount == 1)
    }

    @Test func zeroSlotsMeansSessionlessAndOldVersionsNeverGetSessions() throws {
        let off = try BrokerHarness(sets: ["max.incremental.fetch.session.cache.slots": "0"])
        _ = try off.call(CreateTopicsRequest(topics: [.init(name: "z", numPartitions: 1, replicationFactor: 1)]), version: 7)
        let none = try off.call(Self.fetch("z", [0: 0], sessionId: 0, epoch: 0), version: 12)
        #expect(none.errorCode == 0 && none.sessionId == 0)
        let harness = try BrokerHarness()
        _ = try harness.call(CreateTopicsRequest(topics: [.init(name: "z", numPartitions: 1, replicationFactor: 1)]), version: 7)
        let v6 = try harness.call(Self.fetch("z", [0: 0], sessionId: 0, epoch: 0), version: 6)
        #expect(v6.sessionId == 0 && harness.broker.fetchSessions.sessionCount == 0)
    }

    @Test func topicIdSessions() throws {
        let harness = try BrokerHarness()
        let created = try harness.call(CreateTopicsRequest(topics: [.init(name: "i", numPartitions: 2, replicationFactor: 1)]), version: 7)
        #expect(created.topics[0].errorCode == 0)
        let id = harness.broker.topics.topic(named: "i")!.id
        try Self.produce(harness, "i", partition: 1, ["x"])
        let full = try harness.call(Self.fetch("", [0: 0, 1: 0], sessionId: 0, epoch: 0, topicId: id), version: 13)
        #expect(full.errorCode == 0 && full.sessionId != 0)
        #expect(full.responses.first?.topicId == id)
        try Self.produce(harness, "i", partition: 0, ["y"])
        let next = try harness.call(Self.fetch("", [1: 1], sessionId: full.sessionId, epoch: 1, topicId: id), version: 13)
        #expect(next.errorCode == 0)
        #expect(Array(Self.partitions(next).keys) == [0])
        #expect(next.responses.first?.topicId == id)
        // A session opened with topic ids is not continued by a version without them.
        let mixed = try harness.call(Self.fetch("i", [:], sessionId: full.sessionId, epoch: 2), version: 12)
        #expect(mixed.errorCode == KafkaErrorCode.fetchSessionTopicIdError.rawValue)
    }
}
