import GroupCoordination
import KafkaWire
import NIOCore
import Testing

/// Topics for the KIP-848 coordinator, held in a dictionary.
struct FakeTopics: GroupTopicMetadata {
    var topics: [GroupTopicInfo]

    init(_ counts: [String: Int32]) {
        topics = counts.keys.sorted().enumerated().map { index, name in
            GroupTopicInfo(name: name, id: KafkaUUID(mostSignificantBits: 1, leastSignificantBits: UInt64(index + 1)), partitionCount: counts[name]!)
        }
    }

    func topic(named name: String) -> GroupTopicInfo? { topics.first { $0.name == name } }
    func topic(id: KafkaUUID) -> GroupTopicInfo? { topics.first { $0.id == id } }
    func allTopicNames() -> [String] { topics.map(\.name) }
    func id(_ name: String) -> KafkaUUID { topic(named: name)!.id }
}

typealias Owned = [ConsumerGroupHeartbeatRequest.TopicPartitions]

extension Harness {
    @discardableResult
    func consumerHeartbeat(
        group: String = "g", memberId: String = "", epoch: Int32, instanceId: String? = nil,
        topics: [String]? = nil, regex: String? = nil, assignor: String? = nil, owned: Owned? = nil,
        rebalanceTimeoutMs: Int32 = -1
    ) -> ConsumerGroupHeartbeatResponse {
        let reply = Reply<ConsumerGroupHeartbeatResponse>()
        let request = ConsumerGroupHeartbeatRequest(
            groupId: group, memberId: memberId, memberEpoch: epoch, instanceId: instanceId,
            rebalanceTimeoutMs: epoch == 0 ? (rebalanceTimeoutMs == -1 ? 30_000 : rebalanceTimeoutMs) : rebalanceTimeoutMs,
            subscribedTopicNames: topics, subscribedTopicRegex: regex, serverAssignor: assignor,
            topicPartitions: owned ?? (epoch == 0 ? [] : nil))
        coordinator.handleConsumerGroupHeartbeat(request, client: GroupClientInfo(clientId: "c", clientHost: "/127.0.0.1"), completion: reply.callback)
        return reply.value!
    }

    func describeConsumer(_ group: String = "g") -> ConsumerGroupDescribeResponse.DescribedGroup {
        let reply = Reply<ConsumerGroupDescribeResponse>()
        coordinator.handleConsumerGroupDescribe(ConsumerGroupDescribeRequest(groupIds: [group]), completion: reply.callback)
        return reply.value!.groups[0]
    }
}

/// Partitions of one topic in a heartbeat response's assignment (nil: no assignment sent).
func partitions(_ response: ConsumerGroupHeartbeatResponse, _ topicId: KafkaUUID) -> [Int32]? {
    response.assignment.map { $0.topicPartitions.filter { $0.topicId == topicId }.flatMap(\.partitions).sorted() }
}

func owned(_ topicId: KafkaUUID, _ partitions: [Int32]) -> Owned {
    [.init(topicId: topicId, partitions: partitions)]
}

@Suite struct ConsumerProtocolTests {
    let topics = FakeTopics(["t": 6, "t2": 2, "u": 3])

    func harness(_ configure: (inout GroupCoordinatorConfiguration) -> Void = { _ in }) -> Harness {
        let h = Harness(configure: configure)
        h.coordinator.setTopicMetadata(topics)
        return h
    }

    @Test func joinAssignsEverythingAndGeneratesAMemberId() throws {
        let h = harness()
        let a = h.consumerHeartbeat(epoch: 0, topics: ["t"])
        #expect(a.errorCode == 0)
        let memberId = try #require(a.memberId)
        #expect(!memberId.isEmpty)
        #expect(a.memberEpoch == 1)
        #expect(a.heartbeatIntervalMs == 5000)
        #expect(partitions(a, topics.id("t")) == [0, 1, 2, 3, 4, 5])
        // A client-generated id (KIP-1082) is kept.
        let b = h.consumerHeartbeat(memberId: "client-made-id", epoch: 0, topics: ["u"])
        #expect(b.memberId == "client-made-id")
        #expect(b.memberEpoch == 2)
        #expect(partitions(b, topics.id("u")) == [0, 1, 2])
        let described = h.describeConsumer()
        #expect(described.errorCode == 0)
        #expect(described.groupEpoch == 2)
        #expect(described.assignorName == "uniform")
        #expect(described.members.map(\.memberId).sorted() == ["client-made-id", memberId].sorted())
        // ListGroups v5 reports the type.
        let list = Reply<ListGroupsResponse>()
        h.coordinator.handleListGroups(ListGroupsRequest(typesFilter: ["consumer"]), version: 5, completion: list.callback)
        #expect(list.value?.groups.map(\.groupType) == ["consumer"])
    }

    @Test func revocationBeforeAssignment() throws {
        let h = harness()
        let t = topics.id("t")
        let a = h.consumerHeartbeat(epoch: 0, topics: ["t"])
        let aId = try #require(a.memberId)
        #expect(partitions(a, t) == [0, 1, 2, 3, 4, 5])

        // B joins: epoch 2, but everything is still owned by A, so B gets nothing yet.
        let b = h.consumerHeartbeat(epoch: 0, topics: ["t"])
        let bId = try #require(b.memberId)
        #expect(b.memberEpoch == 2)
        #expect(partitions(b, t) == [])

        // A learns it must give up half; it stays at epoch 1 until it has revoked them.
        let a2 = h.consumerHeartbeat(memberId: aId, epoch: 1)
        #expect(a2.memberEpoch == 1)
        let kept = try #require(partitions(a2, t))
        #expect(kept.count == 3)
        let lost = Set<Int32>(0...5).subtracting(kept).sorted()

        // B still waits: A has not acknowledged the revocation.
        let b2 = h.consumerHeartbeat(memberId: bId, epoch: 2)
        #expect(b2.assignment == nil || partitions(b2, t) == [])
        #expect(h.describeConsumer().groupState == "Reconciling")

        // A acknowledges (owns only what it kept) and moves to epoch 2.
        let a3 = h.consumerHeartbeat(memberId: aId, epoch: 1, owned: owned(t, kept))
        #expect(a3.errorCode == 0)
        #expect(a3.memberEpoch == 2)
        #expect(partitions(a3, t) == kept)

        // Now B receives the released partitions.
        let b3 = h.consumerHeartbeat(memberId: bId, epoch: 2, owned: owned(t, []))
        #expect(partitions(b3, t) == lost)
        #expect(h.describeConsumer().groupState == "Stable")
    }

    @Test func rangeAssignor() throws {
        let h = harness()
        let t = topics.id("t")
        let a = h.consumerHeartbeat(memberId: "a", epoch: 0, topics: ["t", "t2"], assignor: "range")
        #expect(partitions(a, t) == [0, 1, 2, 3, 4, 5])
        let b = h.consumerHeartbeat(memberId: "b", epoch: 0, topics: ["t", "t2"], assignor: "range")
        #expect(b.errorCode == 0)
        _ = h.consumerHeartbeat(memberId: "a", epoch: 1)
        let a2 = h.consumerHeartbeat(memberId: "a", epoch: 1, owned: owned(t, [0, 1, 2]) + owned(topics.id("t2"), [0]))
        #expect(partitions(a2, t) == [0, 1, 2])
        #expect(partitions(a2, topics.id("t2")) == [0])
        let b2 = h.consumerHeartbeat(memberId: "b", epoch: 2, owned: [])
        #expect(partitions(b2, t) == [3, 4, 5])
        #expect(partitions(b2, topics.id("t2")) == [1])
        #expect(h.describeConsumer().assignorName == "range")
        // An assignor the broker does not run is refused.
        let c = h.consumerHeartbeat(memberId: "c", epoch: 0, topics: ["t"], assignor: "sticky")
        #expect(c.errorCode == KafkaErrorCode.unsupportedAssignor.rawValue)
    }

    @Test func sessionExpiryFreesPartitions() throws {
        let h = harness()
        let t = topics.id("t")
        _ = h.consumerHeartbeat(memberId: "a", epoch: 0, topics: ["t"])
        _ = h.consumerHeartbeat(memberId: "b", epoch: 0, topics: ["t"])
        let a = h.consumerHeartbeat(memberId: "a", epoch: 1)
        let kept = try #require(partitions(a, t))
        let a2 = h.consumerHeartbeat(memberId: "a", epoch: 1, owned: owned(t, kept))
        #expect(a2.memberEpoch == 2)
        // A keeps heartbeating, B goes silent past group.consumer.session.timeout.ms (45 s).
        for _ in 0..<10 {
            h.time.advance(by: 5000)
            _ = h.consumerHeartbeat(memberId: "a", epoch: h.describeConsumer().members.first { $0.memberId == "a" }!.memberEpoch)
        }
        let described = h.describeConsumer()
        #expect(described.members.map(\.memberId) == ["a"])
        let a3 = h.consumerHeartbeat(memberId: "a", epoch: described.members[0].memberEpoch, owned: owned(t, [0, 1, 2, 3, 4, 5]))
        #expect(partitions(a3, t) == [0, 1, 2, 3, 4, 5])
        // B is gone: its next heartbeat is refused and it must rejoin.
        #expect(h.consumerHeartbeat(memberId: "b", epoch: 2).errorCode == KafkaErrorCode.unknownMemberId.rawValue)
    }

    @Test func leaveAndFencing() throws {
        let h = harness()
        let t = topics.id("t")
        _ = h.consumerHeartbeat(memberId: "a", epoch: 0, topics: ["t"])
        #expect(h.consumerHeartbeat(memberId: "a", epoch: 7).errorCode == KafkaErrorCode.fencedMemberEpoch.rawValue)
        #expect(h.consumerHeartbeat(memberId: "nobody", epoch: 1).errorCode == KafkaErrorCode.unknownMemberId.rawValue)
        #expect(h.consumerHeartbeat(epoch: 3).errorCode == KafkaErrorCode.invalidRequest.rawValue)
        _ = h.consumerHeartbeat(memberId: "b", epoch: 0, topics: ["t"])
        let left = h.consumerHeartbeat(memberId: "b", epoch: -1)
        #expect(left.errorCode == 0 && left.memberEpoch == -1)
        // A no longer has to give anything up and lands on the newest epoch with everything.
        let a = h.consumerHeartbeat(memberId: "a", epoch: 1)
        #expect(a.memberEpoch == 3)
        #expect(partitions(a, t) ?? [0, 1, 2, 3, 4, 5] == [0, 1, 2, 3, 4, 5])
        // A member of another protocol type cannot join.
        var other = h.joinRequest(topics: ["t"])
        other.protocolType = "connect"
        #expect(h.join(other).value?.errorCode == KafkaErrorCode.inconsistentGroupProtocol.rawValue)
    }

    @Test func staticMemberRejoinsWithItsAssignment() throws {
        let h = harness()
        let t = topics.id("t")
        let a = h.consumerHeartbeat(memberId: "a1", epoch: 0, instanceId: "inst-a", topics: ["t"])
        #expect(a.memberEpoch == 1)
        // Another process with the same instance id while A is active.
        let clash = h.consumerHeartbeat(memberId: "a2", epoch: 0, instanceId: "inst-a", topics: ["t"])
        #expect(clash.errorCode == KafkaErrorCode.unreleasedInstanceId.rawValue)
        // Temporary leave (-2), then the instance returns under a new member id: same epoch and
        // partitions, no rebalance.
        #expect(h.consumerHeartbeat(memberId: "a1", epoch: -2, instanceId: "inst-a").memberEpoch == -2)
        let back = h.consumerHeartbeat(memberId: "a2", epoch: 0, instanceId: "inst-a", topics: ["t"])
        #expect(back.errorCode == 0)
        #expect(back.memberId == "a2")
        #expect(back.memberEpoch == 1)
        #expect(partitions(back, t) == [0, 1, 2, 3, 4, 5])
        #expect(h.describeConsumer().groupEpoch == 1)
        #expect(h.consumerHeartbeat(memberId: "a1", epoch: 1).errorCode == KafkaErrorCode.unknownMemberId.rawValue)
    }

    @Test func regexSubscription() throws {
        let h = harness()
        let a = h.consumerHeartbeat(memberId: "a", epoch: 0, regex: "t.*")
        #expect(partitions(a, topics.id("t")) == [0, 1, 2, 3, 4, 5])
        #expect(partitions(a, topics.id("t2")) == [0, 1])
        #expect(partitions(a, topics.id("u")) == [])
        let bad = h.consumerHeartbeat(memberId: "b", epoch: 0, regex: "t(")
        #expect(bad.errorCode == KafkaErrorCode.invalidRegularExpression.rawValue)
    }

    @Test func offsetCommitChecksTheMemberEpoch() throws {
        let h = harness()
        _ = h.consumerHeartbeat(memberId: "a", epoch: 0, topics: ["t"])
        #expect(h.commitErrors(h.commit(memberId: "a", generation: 1, offsets: [("t", 0, 5)], version: 9)) == [.none])
        #expect(h.commitErrors(h.commit(memberId: "a", generation: 0, offsets: [("t", 0, 6)], version: 9)) == [.staleMemberEpoch])
        #expect(h.commitErrors(h.commit(memberId: "zz", generation: 1, offsets: [("t", 0, 6)], version: 9)) == [.unknownMemberId])
        #expect(h.fetch(topics: [("t", [0])]).topics[0].partitions[0].committedOffset == 5)
        // After a restart both the offsets and the membership are back: the member commits at its epoch.
        let restarted = h.restarted()
        restarted.coordinator.setTopicMetadata(topics)
        #expect(restarted.fetch(topics: [("t", [0])]).topics[0].partitions[0].committedOffset == 5)
        let continued = restarted.consumerHeartbeat(memberId: "a", epoch: 1)
        #expect(continued.errorCode == 0 && continued.memberEpoch == 1)
        #expect(restarted.commitErrors(restarted.commit(memberId: "a", generation: 1, offsets: [("t", 0, 7)], version: 9)) == [.none])
    }

    @Test func classicGroupConvertsOnlineAndBack() throws {
        let h = harness { $0.initialRebalanceDelayMs = 0 }
        let t = topics.id("t")
        // A stable classic group: one member owns all six partitions at generation 1.
        let a = h.joinWithHandshake(topics: ["t"])
        let joinA = try #require(a.reply.value)
        #expect(joinA.generationId == 1)
        let all = assignment("t", [0, 1, 2, 3, 4, 5])
        #expect(h.sync(memberId: a.memberId, generation: 1, assignments: [a.memberId: all]).value?.errorCode == 0)

        // A consumer-protocol member arrives: the group converts; A keeps its partitions for now.
        let b = h.consumerHeartbeat(memberId: "b", epoch: 0, topics: ["t"])
        #expect(b.errorCode == 0)
        #expect(b.memberEpoch == 2)
        #expect(partitions(b, t) == [])
        #expect(h.describeConsumer().members.count == 2)
        // A's commits at its generation still count.
        #expect(h.commitErrors(h.commit(memberId: a.memberId, generation: 1, offsets: [("t", 0, 3)])) == [.none])

        // A's heartbeat asks it to rejoin; it rejoins (eager: owning nothing) and syncs its share.
        #expect(h.heartbeat(memberId: a.memberId, generation: 1) == .rebalanceInProgress)
        let rejoin = try #require(h.join(h.joinRequest(memberId: a.memberId, topics: ["t"])).value)
        #expect(rejoin.errorCode == 0)
        #expect(rejoin.generationId == 2)
        let synced = try #require(h.sync(memberId: a.memberId, generation: 2).value)
        var bytes = synced.assignment
        _ = try bytes.readWireInt16()
        let decoded = try ConsumerProtocolAssignment(from: &bytes, version: 0)
        #expect(decoded.assignedPartitions.flatMap(\.partitions).count == 3)
        #expect(h.heartbeat(memberId: a.memberId, generation: 2) == .none)

        // B gets the other three.
        let b2 = h.consumerHeartbeat(memberId: "b", epoch: 2, owned: owned(t, []))
        let mine = try #require(partitions(b2, t))
        #expect(Set(mine).union(decoded.assignedPartitions[0].partitions) == Set(0...5))

        // B leaves: only classic members remain, the group turns classic again and rebalances.
        #expect(h.consumerHeartbeat(memberId: "b", epoch: b2.memberEpoch).errorCode == 0)
        _ = h.consumerHeartbeat(memberId: "b", epoch: -1)
        #expect(h.describeConsumer().errorCode == KafkaErrorCode.groupIdNotFound.rawValue)
        #expect(h.state() == .preparingRebalance)
        #expect(h.heartbeat(memberId: a.memberId, generation: 3) == .rebalanceInProgress)
        let classicAgain = try #require(h.join(h.joinRequest(memberId: a.memberId, topics: ["t"])).value)
        #expect(classicAgain.errorCode == 0)
        #expect(classicAgain.leader == a.memberId)
        #expect(classicAgain.generationId == 4)
    }
}
