import GroupCoordination
import KafkaWire
import NIOCore
import Testing

@Suite struct OffsetTests {
    /// A stable one-member group "g" at generation 1; returns the member id.
    func stableGroup(_ h: Harness, topics: [String] = ["t"]) -> String {
        let a = h.joinWithHandshake(topics: topics)
        h.sync(memberId: a.memberId, generation: 1, assignments: [a.memberId: assignment("t", [0])])
        return a.memberId
    }

    @Test func commitAndFetchRoundTrip() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let member = stableGroup(h)
        let commit = h.commit(memberId: member, generation: 1, offsets: [("t", 0, 42), ("t", 1, 7), ("u", 0, 3)], metadata: "m")
        #expect(h.commitErrors(commit) == [.none, .none, .none])

        let fetched = h.fetch(topics: [("t", [0, 1, 9]), ("nope", [0])])
        #expect(fetched.errorCode == 0)
        #expect(fetched.topics.map(\.name) == ["t", "nope"])
        #expect(fetched.topics[0].partitions.map(\.committedOffset) == [42, 7, -1])
        #expect(fetched.topics[0].partitions.map(\.metadata) == ["m", "m", ""])
        #expect(fetched.topics[0].partitions[0].committedLeaderEpoch == 3)
        #expect(fetched.topics[1].partitions.map(\.committedOffset) == [-1])
        #expect(fetched.topics.flatMap(\.partitions).allSatisfy { $0.errorCode == 0 })

        // Topics == nil: everything committed, sorted.
        let all = h.fetch(topics: nil)
        #expect(all.topics.map(\.name) == ["t", "u"])
        #expect(all.topics[0].partitions.map(\.partitionIndex) == [0, 1])

        // Unknown group: offsets -1, no error.
        let unknown = h.fetch(group: "other", topics: [("t", [0])])
        #expect(unknown.errorCode == 0 && unknown.topics[0].partitions[0].committedOffset == -1)

        // v8+: several groups at once.
        var request = OffsetFetchRequest()
        request.groups = [
            .init(groupId: "g", memberId: nil, memberEpoch: -1, topics: [.init(name: "t", partitionIndexes: [0])]),
            .init(groupId: "other", memberId: nil, memberEpoch: -1, topics: nil),
        ]
        let reply = Reply<OffsetFetchResponse>()
        h.coordinator.handleOffsetFetch(request, version: 8, completion: reply.callback)
        let multi = try #require(reply.value)
        #expect(multi.groups.map(\.groupId) == ["g", "other"])
        #expect(multi.groups[0].topics[0].partitions[0].committedOffset == 42)
        #expect(multi.groups[1].topics.isEmpty)
        _ = try multi.encoded(version: 8)

        #expect(h.coordinator.committedOffsets(group: "g")[GroupTopicPartition(topic: "u", partition: 0)]?.offset == 3)
    }

    @Test func commitCompletesOnlyAfterPersistence() throws {
        let h = Harness()
        h.store.hold = true
        let commit = h.commit(offsets: [("t", 0, 10)])
        #expect(!commit.isDone)
        #expect(h.fetch(topics: [("t", [0])]).topics[0].partitions[0].committedOffset == -1)
        h.store.releaseHeld()
        #expect(h.commitErrors(commit) == [.none])
        #expect(h.fetch(topics: [("t", [0])]).topics[0].partitions[0].committedOffset == 10)
    }

    @Test func failedPersistenceIsReportedAndNotApplied() throws {
        let h = Harness()
        h.store.failing = true
        let commit = h.commit(offsets: [("t", 0, 10)])
        #expect(h.commitErrors(commit) == [.coordinatorNotAvailable])
        #expect(h.coordinator.committedOffsets(group: "g").isEmpty)
    }

    @Test func simpleCommitsOnlyWithoutMembers() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        // No group yet: generation -1 + empty member id creates an Empty group with offsets.
        #expect(h.commitErrors(h.commit(group: "simple", offsets: [("t", 0, 1)])) == [.none])
        #expect(h.state("simple") == .empty)
        // A group-managed commit to an unknown group is from an old generation.
        #expect(h.commitErrors(h.commit(group: "none", memberId: "m", generation: 3, offsets: [("t", 0, 1)])) == [.illegalGeneration])
        _ = stableGroup(h)
        #expect(h.commitErrors(h.commit(offsets: [("t", 0, 1)])) == [.unknownMemberId])
    }

    @Test func generationFencing() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = stableGroup(h)
        let b = h.joinWithHandshake()
        // During PreparingRebalance the current generation may still commit.
        #expect(h.commitErrors(h.commit(memberId: a, generation: 1, offsets: [("t", 0, 5)])) == [.none])
        h.join(h.joinRequest(memberId: a))
        #expect(b.reply.value?.generationId == 2)
        // CompletingRebalance: REBALANCE_IN_PROGRESS; old generation: ILLEGAL_GENERATION.
        #expect(h.commitErrors(h.commit(memberId: a, generation: 2, offsets: [("t", 0, 6)])) == [.rebalanceInProgress])
        h.sync(memberId: a, generation: 2, assignments: [:])
        #expect(h.commitErrors(h.commit(memberId: a, generation: 1, offsets: [("t", 0, 6)])) == [.illegalGeneration])
        #expect(h.commitErrors(h.commit(memberId: "ghost", generation: 2, offsets: [("t", 0, 6)])) == [.unknownMemberId])
        #expect(h.commitErrors(h.commit(memberId: a, generation: 2, offsets: [("t", 0, 6)])) == [.none])
        #expect(h.fetch(topics: [("t", [0])]).topics[0].partitions[0].committedOffset == 6)
    }

    @Test func metadataTooLarge() throws {
        let h = Harness()
        let big = String(repeating: "x", count: 4097)
        let commit = h.commit(offsets: [("t", 0, 1)], metadata: big)
        #expect(h.commitErrors(commit) == [.offsetMetadataTooLarge])
        let ok = h.commit(offsets: [("t", 0, 1)], metadata: String(repeating: "x", count: 4096))
        #expect(h.commitErrors(ok) == [.none])
    }

    @Test func deleteGroups() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        _ = stableGroup(h)
        h.commit(group: "idle", offsets: [("t", 0, 1), ("t", 1, 2)])
        let reply = Reply<DeleteGroupsResponse>()
        h.coordinator.handleDeleteGroups(DeleteGroupsRequest(groupsNames: ["g", "idle", "missing", "idle"]), version: 2, completion: reply.callback)
        let results = try #require(reply.value).results.map { ($0.groupId, KafkaErrorCode($0.errorCode)) }
        #expect(results.map(\.0) == ["g", "idle", "missing", "idle"])
        #expect(results.map(\.1) == [.nonEmptyGroup, .none, .groupIdNotFound, .groupIdNotFound])
        #expect(h.state("idle") == nil)
        #expect(h.fetch(group: "idle", topics: [("t", [0])]).topics[0].partitions[0].committedOffset == -1)
        // Tombstones make the deletion survive a restart.
        let restarted = h.restarted()
        #expect(restarted.coordinator.describeGroup("idle") == nil)
        #expect(restarted.coordinator.committedOffsets(group: "idle").isEmpty)
    }

    @Test func offsetDelete() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let member = stableGroup(h, topics: ["t"])
        h.commit(memberId: member, generation: 1, offsets: [("t", 0, 1), ("u", 0, 2)])
        let reply = Reply<OffsetDeleteResponse>()
        let request = OffsetDeleteRequest(groupId: "g", topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 0)]),
            .init(name: "u", partitions: [.init(partitionIndex: 0)]),
        ])
        h.coordinator.handleOffsetDelete(request, version: 0, completion: reply.callback)
        let response = try #require(reply.value)
        #expect(response.errorCode == 0)
        #expect(response.topics.map { KafkaErrorCode($0.partitions[0].errorCode) } == [.groupSubscribedToTopic, .none])
        #expect(Set(h.coordinator.committedOffsets(group: "g").keys) == [GroupTopicPartition(topic: "t", partition: 0)])

        let missing = Reply<OffsetDeleteResponse>()
        h.coordinator.handleOffsetDelete(OffsetDeleteRequest(groupId: "nope", topics: []), version: 0, completion: missing.callback)
        #expect(KafkaErrorCode(missing.value!.errorCode) == .groupIdNotFound)

        // Once the group is empty every offset can go.
        _ = h.leave(memberId: member)
        let again = Reply<OffsetDeleteResponse>()
        h.coordinator.handleOffsetDelete(OffsetDeleteRequest(groupId: "g", topics: [.init(name: "t", partitions: [.init(partitionIndex: 0)])]), version: 0, completion: again.callback)
        #expect(again.value?.topics[0].partitions[0].errorCode == 0)
        #expect(h.coordinator.committedOffsets(group: "g").isEmpty)
        #expect(h.restarted().coordinator.committedOffsets(group: "g").isEmpty)
    }

    @Test func offsetsAndGroupSurviveRestart() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let member = stableGroup(h)
        h.commit(memberId: member, generation: 1, offsets: [("t", 0, 100), ("t", 1, 200)], metadata: "meta")
        h.commit(memberId: member, generation: 1, offsets: [("t", 0, 150)])
        // Stable with a member: the restarted coordinator knows the member and its assignment.
        let live = h.restarted()
        let snapshot = try #require(live.coordinator.describeGroup("g"))
        #expect(snapshot.state == .stable)
        #expect(snapshot.generationId == 1)
        #expect(snapshot.members.map(\.memberId) == [member])
        #expect(snapshot.members[0].assignment == assignment("t", [0]))
        #expect(live.coordinator.committedOffsets(group: "g") == h.coordinator.committedOffsets(group: "g"))
        #expect(live.heartbeat(memberId: member, generation: 1) == .none)

        // The member leaves; the group is stored Empty and comes back Empty with its offsets.
        _ = h.leave(memberId: member)
        #expect(h.state() == .empty)
        let restarted = h.restarted()
        let empty = try #require(restarted.coordinator.describeGroup("g"))
        #expect(empty.state == .empty)
        #expect(empty.generationId == 2)
        #expect(empty.protocolType == "consumer")
        #expect(empty.members.isEmpty)
        let offsets = restarted.coordinator.committedOffsets(group: "g")
        #expect(offsets == h.coordinator.committedOffsets(group: "g"))
        #expect(offsets[GroupTopicPartition(topic: "t", partition: 0)]?.offset == 150)
        #expect(offsets[GroupTopicPartition(topic: "t", partition: 1)]?.metadata == "meta")
        #expect(restarted.fetch(topics: nil).topics.first?.partitions.map(\.committedOffset) == [150, 200])
        // A new consumer joins the restored group at the next generation.
        let next = restarted.joinWithHandshake()
        restarted.time.advance(by: 3000)
        #expect(next.reply.value?.generationId == 3)
    }

    @Test func restoredMembersExpireWithoutHeartbeats() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        _ = stableGroup(h)
        let restarted = h.restarted()
        restarted.time.advance(by: 10_000)
        #expect(restarted.state() == .empty)
    }

    @Test func loadIsLastWriteWinsAndSkipsGarbage() throws {
        let h = Harness()
        var records = [
            CoordinatorRecord.offsetCommit(group: "g", topic: "t", partition: 0, value: OffsetCommitValue(offset: 1, leaderEpoch: -1, metadata: "", commitTimestamp: 5, expireTimestamp: -1)),
            CoordinatorRecord.offsetCommit(group: "g", topic: "t", partition: 0, value: OffsetCommitValue(offset: 2, leaderEpoch: -1, metadata: "", commitTimestamp: 6, expireTimestamp: -1)),
            CoordinatorRecord.offsetCommit(group: "g", topic: "t", partition: 1, value: OffsetCommitValue(offset: 9, leaderEpoch: -1, metadata: "", commitTimestamp: 6, expireTimestamp: -1)),
            CoordinatorRecord.offsetCommit(group: "g", topic: "t", partition: 1, value: nil),
            CoordinatorRecord.offsetCommit(group: "gone", topic: "t", partition: 0, value: OffsetCommitValue(offset: 1, leaderEpoch: -1, metadata: "", commitTimestamp: 5, expireTimestamp: -1)),
            CoordinatorRecord.offsetCommit(group: "gone", topic: "t", partition: 0, value: nil),
        ].map { (key: $0.key, value: $0.value) }
        records.append((key: ByteBuffer(bytes: [0, 9, 1, 2]), value: ByteBuffer(bytes: [1]))) // unknown key version
        records.append((key: ByteBuffer(bytes: [0, 1, 0]), value: nil)) // truncated
        h.coordinator.load(records)
        #expect(h.coordinator.describeAllGroups().map(\.groupId) == ["g"])
        #expect(h.coordinator.committedOffsets(group: "g") == [GroupTopicPartition(topic: "t", partition: 0): CommittedOffset(offset: 2, commitTimestampMs: 6)])
    }

    @Test func loadingStateAnswersLoadInProgress() throws {
        let h = Harness()
        h.coordinator.beginLoading()
        #expect(KafkaErrorCode(h.join(h.joinRequest()).value!.errorCode) == .coordinatorLoadInProgress)
        #expect(h.commitErrors(h.commit(offsets: [("t", 0, 1)])) == [.coordinatorLoadInProgress])
        #expect(h.fetch(topics: [("t", [0])]).errorCode == KafkaErrorCode.coordinatorLoadInProgress.rawValue)
        h.coordinator.load([])
        #expect(h.commitErrors(h.commit(offsets: [("t", 0, 1)])) == [.none])
    }

    @Test func emptyGroupOffsetsExpire() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0; $0.offsetsRetentionMs = 60_000 }
        let member = stableGroup(h)
        h.commit(memberId: member, generation: 1, offsets: [("t", 0, 1)])
        h.time.advance(by: 5000)
        #expect(h.heartbeat(memberId: member, generation: 1) == .none)
        h.coordinator.purgeExpiredOffsets()
        #expect(h.coordinator.committedOffsets(group: "g").count == 1) // subscribed + young
        _ = h.leave(memberId: member)
        h.time.advance(by: 59_999)
        h.coordinator.purgeExpiredOffsets()
        #expect(h.state() == .empty)
        h.time.advance(by: 1)
        h.coordinator.purgeExpiredOffsets()
        #expect(h.state() == nil)
        #expect(h.restarted().coordinator.describeAllGroups().isEmpty)
    }
}
