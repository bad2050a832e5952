import GroupCoordination
import KafkaWire
import NIOCore
import Testing

/// KIP-848 membership in `__consumer_offsets`: the records written, and a restart (replay of the
/// store) reproducing the group.
@Suite struct ConsumerPersistenceTests {
    let topics = FakeTopics(["t": 6, "u": 3])

    func harness() -> Harness {
        let h = Harness()
        h.coordinator.setTopicMetadata(topics)
        return h
    }

    /// The old coordinator stops (its timers must not write to the shared store) and a new one loads.
    func restart(_ h: Harness) -> Harness {
        h.coordinator.shutdown()
        let next = h.restarted()
        next.coordinator.setTopicMetadata(topics)
        return next
    }

    /// What describe shows of a group, in a comparable form.
    struct Snapshot: Equatable {
        var state: String
        var groupEpoch: Int32
        var assignmentEpoch: Int32
        var assignor: String
        var members: [String]

        init(_ described: ConsumerGroupDescribeResponse.DescribedGroup) {
            func text(_ assignment: ConsumerGroupDescribeResponse.Assignment) -> String {
                assignment.topicPartitions.map { "\($0.topicName):\($0.partitions)" }.joined(separator: ",")
            }
            state = described.groupState
            groupEpoch = described.groupEpoch
            assignmentEpoch = described.assignmentEpoch
            assignor = described.assignorName
            members = described.members.map { m in
                "\(m.memberId) epoch=\(m.memberEpoch) instance=\(m.instanceId ?? "-") topics=\(m.subscribedTopicNames) "
                    + "regex=\(m.subscribedTopicRegex ?? "-") assigned=[\(text(m.assignment))] target=[\(text(m.targetAssignment))]"
            }
        }
    }

    @Test func replayReproducesAReconcilingGroup() throws {
        let h = harness()
        let t = topics.id("t")
        let a = h.consumerHeartbeat(memberId: "a", epoch: 0, topics: ["t"], assignor: "range")
        #expect(partitions(a, t) == [0, 1, 2, 3, 4, 5])
        _ = h.consumerHeartbeat(memberId: "b", epoch: 0, instanceId: "inst-b", topics: ["t", "u"], assignor: "range")
        // A must revoke half of its partitions and has not yet: the group is reconciling.
        let a2 = h.consumerHeartbeat(memberId: "a", epoch: 1)
        #expect(a2.memberEpoch == 1)
        let before = Snapshot(h.describeConsumer())
        #expect(before.state == "Reconciling")
        #expect(before.members.count == 2)
        let written = h.store.records.count
        #expect(written > 0)

        let r = restart(h)
        let after = Snapshot(r.describeConsumer())
        #expect(after == before)
        // Loading writes nothing.
        #expect(h.store.records.count == written)

        // A continues at its epoch: acknowledges the revocation and moves on; no fencing, no new epoch.
        let kept = try #require(partitions(a2, t))
        let a3 = r.consumerHeartbeat(memberId: "a", epoch: 1, owned: owned(t, kept))
        #expect(a3.errorCode == 0)
        #expect(a3.memberEpoch == 2)
        let b2 = r.consumerHeartbeat(memberId: "b", epoch: 2, owned: [])
        #expect(b2.errorCode == 0)
        #expect(b2.memberEpoch == 2)
        #expect(partitions(b2, t) == Set<Int32>(0...5).subtracting(kept).sorted())
        #expect(r.describeConsumer().groupState == "Stable")
        #expect(r.describeConsumer().groupEpoch == before.groupEpoch)

        // A second restart reproduces the stable group, and a heartbeat that changes nothing writes nothing.
        let stable = Snapshot(r.describeConsumer())
        let r2 = restart(r)
        #expect(Snapshot(r2.describeConsumer()) == stable)
        let count = h.store.records.count
        #expect(r2.consumerHeartbeat(memberId: "a", epoch: 2).errorCode == 0)
        #expect(h.store.records.count == count)
    }

    @Test func sessionTimeoutsStartOverAtLoad() throws {
        let h = harness()
        _ = h.consumerHeartbeat(memberId: "a", epoch: 0, topics: ["t"])
        _ = h.consumerHeartbeat(memberId: "b", epoch: 0, topics: ["t"])
        // Most of the session passes before the restart.
        h.time.advance(by: 40_000)
        let r = restart(h)
        #expect(r.describeConsumer().members.count == 2)
        // 40 s after load: a full session (45 s) has not yet passed since the load.
        r.time.advance(by: 40_000)
        #expect(r.describeConsumer().members.count == 2)
        #expect(r.consumerHeartbeat(memberId: "a", epoch: 1).errorCode == 0)
        // B never heartbeats again: its session expires, which is persisted too.
        r.time.advance(by: 10_000)
        #expect(r.describeConsumer().members.map(\.memberId) == ["a"])
        let r2 = restart(r)
        #expect(r2.describeConsumer().members.map(\.memberId) == ["a"])
        #expect(r2.describeConsumer().groupEpoch == 3)
    }

    @Test func leavingAndDeletionWriteTombstones() throws {
        let h = harness()
        _ = h.consumerHeartbeat(memberId: "a", epoch: 0, topics: ["t"])
        _ = h.consumerHeartbeat(memberId: "b", epoch: 0, topics: ["t"])
        #expect(h.consumerHeartbeat(memberId: "b", epoch: -1).memberEpoch == -1)
        let tombstones = h.store.records.filter { $0.value == nil }
        // B's current assignment, target assignment and subscription.
        let kinds = try tombstones.map { record -> ConsumerGroupRecordKey in
            guard case .consumerGroup(let key) = try CoordinatorRecord.decodeKey(record.key) else { throw WireError.malformed("key") }
            return key
        }
        #expect(kinds.map(\.kind) == [.currentMemberAssignment, .targetAssignmentMember, .memberMetadata])
        #expect(kinds.allSatisfy { $0.memberId == "b" && $0.groupId == "g" })
        let r = restart(h)
        #expect(r.describeConsumer().members.map(\.memberId) == ["a"])

        // The last member leaves and the group is deleted: nothing is left after a restart.
        _ = r.consumerHeartbeat(memberId: "a", epoch: -1)
        let reply = Reply<DeleteGroupsResponse>()
        r.coordinator.handleDeleteGroups(DeleteGroupsRequest(groupsNames: ["g"]), version: 2, completion: reply.callback)
        #expect(reply.value?.results.first?.errorCode == 0)
        let r2 = restart(r)
        #expect(r2.describeConsumer().errorCode == KafkaErrorCode.groupIdNotFound.rawValue)
        #expect(r2.consumerHeartbeat(memberId: "a", epoch: 1).errorCode == KafkaErrorCode.unknownMemberId.rawValue)
    }

    @Test func staticMemberThatLeftTemporarilyReturnsAfterARestart() throws {
        let h = harness()
        let t = topics.id("t")
        _ = h.consumerHeartbeat(memberId: "a1", epoch: 0, instanceId: "inst-a", topics: ["t"])
        #expect(h.consumerHeartbeat(memberId: "a1", epoch: -2, instanceId: "inst-a").memberEpoch == -2)
        let r = restart(h)
        let back = r.consumerHeartbeat(memberId: "a2", epoch: 0, instanceId: "inst-a", topics: ["t"])
        #expect(back.errorCode == 0)
        #expect(back.memberEpoch == 1)
        #expect(partitions(back, t) == [0, 1, 2, 3, 4, 5])
        let r2 = restart(r)
        #expect(r2.describeConsumer().members.map(\.memberId) == ["a2"])
        #expect(r2.consumerHeartbeat(memberId: "a2", epoch: 1).errorCode == 0)
    }

    @Test func aFailedWriteIsRewrittenInFullAtTheNextChange() throws {
        let h = harness()
        _ = h.consumerHeartbeat(memberId: "a", epoch: 0, topics: ["t"])
        h.store.failing = true
        let b = h.consumerHeartbeat(memberId: "b", epoch: 0, topics: ["t"])
        #expect(b.errorCode == 0)
        h.store.failing = false
        // Nothing of B reached the store; A's next heartbeat (a change: it must revoke) rewrites the group.
        #expect(restart(Harness(time: h.time, store: h.store)).describeConsumer().members.map(\.memberId) == ["a"])
        _ = h.consumerHeartbeat(memberId: "a", epoch: 1)
        let r = restart(h)
        #expect(Snapshot(r.describeConsumer()) == Snapshot(h.describeConsumer()))
        #expect(r.describeConsumer().members.map(\.memberId) == ["a", "b"])
    }

    @Test func classicTakeoverOfAnEmptyConsumerGroupTombstonesItsRecords() throws {
        let h = harness()
        _ = h.consumerHeartbeat(memberId: "a", epoch: 0, topics: ["t"])
        _ = h.consumerHeartbeat(memberId: "a", epoch: -1)
        // A classic member takes the empty group over; after a restart it is a classic group.
        h.join(h.joinRequest(memberId: "", topics: ["t"]), version: 3)
        #expect(h.describeConsumer().errorCode == KafkaErrorCode.groupIdNotFound.rawValue)
        let kinds = try h.store.records.suffix(3).map { record -> Int16 in
            guard case .consumerGroup(let key) = try CoordinatorRecord.decodeKey(record.key) else { return -1 }
            #expect(record.value == nil)
            return key.kind.rawValue
        }
        #expect(kinds == [6, 4, 3])
        let r = restart(h)
        #expect(r.describeConsumer().errorCode == KafkaErrorCode.groupIdNotFound.rawValue)
    }

    /// Kafka's layout: key = int16 type + string group id; value = int16 version 0 + flexible fields.
    @Test func recordsUseKafkasLayout() throws {
        let h = harness()
        _ = h.consumerHeartbeat(memberId: "a", epoch: 0, topics: ["t"])
        let metadata = try #require(h.store.records.last { $0.key.getInteger(at: $0.key.readerIndex, as: Int16.self) == 3 })
        #expect(Array(metadata.key.readableBytesView) == [0, 3, 0, 1, UInt8(ascii: "g")])
        // version 0, epoch 1, no tagged fields.
        #expect(metadata.value.map { Array($0.readableBytesView) } == [0, 0, 0, 0, 0, 1, 0])
        let kinds = Set(h.store.records.compactMap { $0.key.getInteger(at: $0.key.readerIndex, as: Int16.self) })
        #expect(kinds == [3, 4, 5, 6, 7, 8])
    }
}
