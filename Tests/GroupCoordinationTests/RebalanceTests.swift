import GroupCoordination
import KafkaWire
import NIOCore
import Testing

@Suite struct RebalanceTests {
    @Test func oneThenTwoMembers() throws {
        let h = Harness()
        // First member: JoinGroup v5 handshake, then the initial rebalance delay (3 s).
        let a = h.joinWithHandshake(topics: ["t"])
        #expect(!a.reply.isDone)
        #expect(h.state() == .preparingRebalance)
        h.time.advance(by: 3000)
        let joinA = try #require(a.reply.value)
        #expect(joinA.errorCode == 0)
        #expect(joinA.generationId == 1)
        #expect(joinA.leader == a.memberId)
        #expect(joinA.protocolName == "range")
        #expect(joinA.members.map(\.memberId) == [a.memberId])
        let syncA = h.sync(memberId: a.memberId, generation: 1, assignments: [a.memberId: assignment("t", [0, 1])])
        #expect(syncA.value?.errorCode == 0)
        #expect(syncA.value?.assignment == assignment("t", [0, 1]))
        #expect(syncA.value?.protocolName == "range")
        #expect(h.state() == .stable)

        // Second member joins: the group rebalances, A learns it from its heartbeat and rejoins.
        let b = h.joinWithHandshake(topics: ["t", "u"], clientId: "other")
        #expect(h.state() == .preparingRebalance)
        #expect(h.heartbeat(memberId: a.memberId, generation: 1) == .rebalanceInProgress)
        #expect(!b.reply.isDone)
        let rejoinA = h.join(h.joinRequest(memberId: a.memberId, topics: ["t"]))
        let joinA2 = try #require(rejoinA.value)
        let joinB = try #require(b.reply.value)
        #expect(joinA2.generationId == 2 && joinB.generationId == 2)
        #expect(joinA2.leader == a.memberId && joinB.leader == a.memberId)
        #expect(joinA2.members.map(\.memberId) == [a.memberId, b.memberId])
        #expect(joinA2.members[1].metadata == subscription(["t", "u"]))
        #expect(joinB.members.isEmpty)
        #expect(h.state() == .completingRebalance)

        // The follower's SyncGroup parks until the leader's assignment is stored.
        let syncB = h.sync(memberId: b.memberId, generation: 2)
        #expect(!syncB.isDone)
        let syncA2 = h.sync(memberId: a.memberId, generation: 2, assignments: [a.memberId: assignment("t", [0]), b.memberId: assignment("t", [1])])
        #expect(syncA2.value?.assignment == assignment("t", [0]))
        #expect(syncB.value?.errorCode == 0)
        #expect(syncB.value?.assignment == assignment("t", [1]))
        #expect(h.state() == .stable)
        #expect(h.heartbeat(memberId: b.memberId, generation: 2) == .none)
        // Old generation heartbeats are fenced.
        #expect(h.heartbeat(memberId: a.memberId, generation: 1) == .illegalGeneration)
    }

    @Test func initialRebalanceDelayIsHonouredAndExtended() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 3000 }
        let a = h.joinWithHandshake(rebalanceTimeoutMs: 10_000)
        h.time.advance(by: 2000)
        let b = h.joinWithHandshake(rebalanceTimeoutMs: 10_000)
        h.time.advance(by: 999)
        #expect(!a.reply.isDone && !b.reply.isDone)
        // At 3 s a new member had joined: wait another 3 s.
        h.time.advance(by: 1)
        #expect(!a.reply.isDone)
        h.time.advance(by: 2999)
        #expect(!a.reply.isDone)
        h.time.advance(by: 1)
        #expect(a.reply.value?.generationId == 1 && b.reply.value?.generationId == 1)
        #expect(a.reply.value?.members.count == 2)
    }

    @Test func initialDelayIsCappedByRebalanceTimeout() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 3000 }
        let first = h.joinWithHandshake(rebalanceTimeoutMs: 7000)
        var elapsed: Int64 = 0
        // A new member every 2 s keeps extending the delay, but never past the rebalance timeout.
        while !first.reply.isDone && elapsed < 20_000 {
            _ = h.joinWithHandshake(rebalanceTimeoutMs: 7000)
            h.time.advance(by: 2000)
            elapsed += 2000
        }
        #expect(first.reply.isDone)
        #expect(elapsed <= 8000)
    }

    @Test func singleConsumerWaitsOnlyTheInitialDelay() throws {
        let h = Harness()
        let a = h.joinWithHandshake(sessionTimeoutMs: 45_000, rebalanceTimeoutMs: 300_000)
        h.time.advance(by: 2999)
        #expect(!a.reply.isDone)
        h.time.advance(by: 1)
        #expect(a.reply.value?.errorCode == 0)
    }

    @Test func noInitialDelayWhenDisabled() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake()
        #expect(a.reply.value?.generationId == 1)
    }

    @Test func memberIdRequiredOnlyFromVersion4() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        for version: Int16 in [4, 5, 9] {
            let reply = h.join(h.joinRequest(group: "v\(version)"), version: version)
            #expect(KafkaErrorCode(reply.value!.errorCode) == .memberIdRequired, "v\(version)")
            #expect(reply.value!.memberId.hasPrefix("client-"))
        }
        // Old sarama sends JoinGroup v1 and joins directly.
        for version: Int16 in [0, 1, 3] {
            let reply = h.join(h.joinRequest(group: "old\(version)"), version: version)
            let response = try #require(reply.value)
            #expect(response.errorCode == 0, "v\(version)")
            #expect(response.generationId == 1)
            #expect(!response.memberId.isEmpty && response.leader == response.memberId)
            // The response encodes at that version (protocolName non-null before v7).
            _ = try response.encoded(version: version)
        }
    }

    @Test func sessionExpiryRemovesMemberAndRebalances() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake(sessionTimeoutMs: 10_000)
        let b = h.joinWithHandshake(sessionTimeoutMs: 10_000)
        // A completed alone (gen 1); B's join started gen 2 which needs A to rejoin.
        #expect(a.reply.value?.generationId == 1)
        let rejoin = h.join(h.joinRequest(memberId: a.memberId))
        #expect(rejoin.value?.generationId == 2 && b.reply.value?.generationId == 2)
        h.sync(memberId: a.memberId, generation: 2, assignments: [a.memberId: assignment("t", [0]), b.memberId: assignment("t", [1])])
        h.sync(memberId: b.memberId, generation: 2)
        #expect(h.state() == .stable)

        // Only A heartbeats; B's session (10 s) runs out.
        for _ in 0..<3 {
            h.time.advance(by: 3000)
            #expect(h.heartbeat(memberId: a.memberId, generation: 2) == .none)
        }
        h.time.advance(by: 1000)
        #expect(h.state() == .preparingRebalance)
        #expect(h.coordinator.describeGroup("g")?.members.map(\.memberId) == [a.memberId])
        #expect(h.heartbeat(memberId: a.memberId, generation: 2) == .rebalanceInProgress)
        #expect(h.heartbeat(memberId: b.memberId, generation: 2) == .unknownMemberId)
        let rejoinA = h.join(h.joinRequest(memberId: a.memberId))
        #expect(rejoinA.value?.generationId == 3)
        #expect(rejoinA.value?.members.map(\.memberId) == [a.memberId])
    }

    @Test func membersMissingTheRebalanceAreDropped() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake(rebalanceTimeoutMs: 20_000)
        h.sync(memberId: a.memberId, generation: 1, assignments: [:])
        let b = h.joinWithHandshake(rebalanceTimeoutMs: 20_000)
        // A keeps heartbeating but never rejoins: after the rebalance timeout it is dropped.
        for _ in 0..<6 {
            h.time.advance(by: 3000)
            _ = h.heartbeat(memberId: a.memberId, generation: 1)
        }
        h.time.advance(by: 2000)
        let joinB = try #require(b.reply.value)
        #expect(joinB.generationId == 2)
        #expect(joinB.leader == b.memberId)
        #expect(joinB.members.map(\.memberId) == [b.memberId])
    }

    @Test func leaveTriggersRebalanceAndRemainingMemberCompletes() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake()
        let b = h.joinWithHandshake()
        h.join(h.joinRequest(memberId: a.memberId))
        #expect(b.reply.value?.generationId == 2)
        h.sync(memberId: a.memberId, generation: 2, assignments: [a.memberId: assignment("t", [0]), b.memberId: assignment("t", [1])])
        h.sync(memberId: b.memberId, generation: 2)

        #expect(h.leave(memberId: a.memberId) == .none) // the leader leaves
        #expect(h.state() == .preparingRebalance)
        #expect(h.heartbeat(memberId: b.memberId, generation: 2) == .rebalanceInProgress)
        // Cooperative-sticky: B rejoins with its owned partitions in the metadata.
        let rejoinB = h.join(h.joinRequest(memberId: b.memberId, protocols: ["cooperative-sticky", "range"]))
        #expect(rejoinB.value?.errorCode == 0)
        #expect(rejoinB.value?.generationId == 3)
        #expect(rejoinB.value?.leader == b.memberId)
        #expect(rejoinB.value?.protocolName == "cooperative-sticky")
        let sync = h.sync(memberId: b.memberId, generation: 3, assignments: [b.memberId: assignment("t", [0, 1])])
        #expect(sync.value?.assignment == assignment("t", [0, 1]))
        #expect(h.leave(memberId: a.memberId) == .unknownMemberId)

        // Last member leaves: the group becomes Empty immediately.
        #expect(h.leave(memberId: b.memberId) == .none)
        #expect(h.state() == .empty)
        #expect(h.coordinator.describeGroup("g")?.generationId == 4)
    }

    @Test func leaveGroupBatchV3() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake()
        h.sync(memberId: a.memberId, generation: 1)
        let reply = Reply<LeaveGroupResponse>()
        var request = LeaveGroupRequest(groupId: "g")
        request.members = [.init(memberId: a.memberId, groupInstanceId: nil, reason: "bye"), .init(memberId: "nobody", groupInstanceId: nil, reason: nil)]
        h.coordinator.handleLeaveGroup(request, version: 5, completion: reply.callback)
        let response = try #require(reply.value)
        #expect(response.errorCode == 0)
        #expect(response.members.map(\.errorCode) == [0, KafkaErrorCode.unknownMemberId.rawValue])
        #expect(h.state() == .empty)
        _ = try response.encoded(version: 5)
    }

    @Test func heartbeatDuringRebalance() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake()
        #expect(h.heartbeat(memberId: a.memberId, generation: 1) == .none) // CompletingRebalance
        h.sync(memberId: a.memberId, generation: 1)
        _ = h.joinWithHandshake()
        #expect(h.heartbeat(memberId: a.memberId, generation: 1) == .rebalanceInProgress)
        #expect(h.heartbeat(memberId: "stranger", generation: 1) == .unknownMemberId)
        #expect(h.heartbeat(group: "nope", memberId: a.memberId, generation: 1) == .unknownMemberId)
    }

    @Test func staticMemberRejoinsWithoutRebalanceAndOldIdIsFenced() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        // Static members skip the member-id round trip.
        let first = h.join(h.joinRequest(instanceId: "pod-1"))
        let joined = try #require(first.value)
        #expect(joined.errorCode == 0 && joined.generationId == 1)
        let oldId = joined.memberId
        #expect(oldId.hasPrefix("pod-1-"))
        h.sync(memberId: oldId, generation: 1, instanceId: "pod-1", assignments: [oldId: assignment("t", [0, 1, 2])])
        #expect(h.state() == .stable)
        let recordsBefore = h.store.records.count

        // The process restarts and rejoins with the same instance id and metadata.
        let rejoin = h.join(h.joinRequest(instanceId: "pod-1"))
        let rejoined = try #require(rejoin.value)
        #expect(rejoined.errorCode == 0)
        #expect(rejoined.memberId != oldId)
        #expect(rejoined.generationId == 1)
        #expect(rejoined.leader == oldId) // old leader id: the member must not reassign
        #expect(h.state() == .stable)
        #expect(h.store.records.count == recordsBefore + 1) // the replacement is persisted

        let sync = h.sync(memberId: rejoined.memberId, generation: 1, instanceId: "pod-1")
        #expect(sync.value?.assignment == assignment("t", [0, 1, 2]))
        #expect(h.heartbeat(memberId: rejoined.memberId, generation: 1, instanceId: "pod-1") == .none)
        #expect(h.heartbeat(memberId: oldId, generation: 1, instanceId: "pod-1") == .fencedInstanceId)
        let fencedCommit = h.commit(memberId: oldId, generation: 1, instanceId: "pod-1", offsets: [("t", 0, 5)])
        #expect(h.commitErrors(fencedCommit) == [.fencedInstanceId])
        let fencedJoin = h.join(h.joinRequest(memberId: oldId, instanceId: "pod-1"))
        #expect(KafkaErrorCode(fencedJoin.value!.errorCode) == .fencedInstanceId)
    }

    @Test func staticMemberWithNewProtocolTriggersRebalance() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = try #require(h.join(h.joinRequest(instanceId: "pod-1")).value)
        h.sync(memberId: a.memberId, generation: 1, instanceId: "pod-1")
        let b = h.join(h.joinRequest(instanceId: "pod-1", protocols: ["roundrobin", "range"]))
        // The selected protocol would change: rebalance (the only member already rejoined).
        #expect(b.value?.generationId == 2)
        #expect(b.value?.protocolName == "roundrobin")
    }

    @Test func protocolSelectionAndInconsistency() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake(protocols: ["range", "roundrobin"])
        let b = h.joinWithHandshake(protocols: ["roundrobin", "range"])
        let c = h.joinWithHandshake(protocols: ["roundrobin"])
        h.join(h.joinRequest(memberId: a.memberId, protocols: ["range", "roundrobin"]))
        #expect(b.reply.value?.protocolName == "roundrobin")
        #expect(c.reply.value?.protocolName == "roundrobin")
        // A protocol no member supports is rejected.
        let bad = h.join(h.joinRequest(protocols: ["sticky"]))
        #expect(KafkaErrorCode(bad.value!.errorCode) == .inconsistentGroupProtocol)
        var otherType = h.joinRequest()
        otherType.protocolType = "connect"
        #expect(KafkaErrorCode(h.join(otherType).value!.errorCode) == .inconsistentGroupProtocol)
    }

    @Test func joinValidation() throws {
        let h = Harness()
        #expect(KafkaErrorCode(h.join(h.joinRequest(group: "")).value!.errorCode) == .invalidGroupId)
        #expect(KafkaErrorCode(h.join(h.joinRequest(sessionTimeoutMs: 5999)).value!.errorCode) == .invalidSessionTimeout)
        #expect(KafkaErrorCode(h.join(h.joinRequest(sessionTimeoutMs: 1_800_001)).value!.errorCode) == .invalidSessionTimeout)
        #expect(KafkaErrorCode(h.join(h.joinRequest(memberId: "ghost")).value!.errorCode) == .unknownMemberId)
        #expect(h.coordinator.describeAllGroups().isEmpty) // failed joins leave nothing behind
    }

    @Test func pendingMemberExpires() throws {
        let h = Harness()
        let first = h.join(h.joinRequest(sessionTimeoutMs: 10_000))
        #expect(KafkaErrorCode(first.value!.errorCode) == .memberIdRequired)
        h.time.advance(by: 10_000)
        let late = h.join(h.joinRequest(memberId: first.value!.memberId))
        #expect(KafkaErrorCode(late.value!.errorCode) == .unknownMemberId)
    }

    @Test func syncGroupErrors() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake()
        #expect(KafkaErrorCode(h.sync(memberId: a.memberId, generation: 7).value!.errorCode) == .illegalGeneration)
        #expect(KafkaErrorCode(h.sync(memberId: "x", generation: 1).value!.errorCode) == .unknownMemberId)
        #expect(KafkaErrorCode(h.sync(group: "nope", memberId: "x", generation: 1).value!.errorCode) == .unknownMemberId)
        h.sync(memberId: a.memberId, generation: 1)
        _ = h.joinWithHandshake()
        #expect(KafkaErrorCode(h.sync(memberId: a.memberId, generation: 1).value!.errorCode) == .rebalanceInProgress)
    }

    @Test func parkedSyncsFailWhenTheRebalanceRestarts() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake()
        let b = h.joinWithHandshake()
        h.join(h.joinRequest(memberId: a.memberId))
        let parked = h.sync(memberId: b.memberId, generation: 2)
        #expect(!parked.isDone)
        _ = h.leave(memberId: a.memberId) // the leader leaves before assigning
        #expect(KafkaErrorCode(parked.value!.errorCode) == .rebalanceInProgress)
    }

    @Test func membersThatNeverSyncAreRemoved() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake(sessionTimeoutMs: 30_000, rebalanceTimeoutMs: 20_000)
        let b = h.joinWithHandshake(sessionTimeoutMs: 30_000, rebalanceTimeoutMs: 20_000)
        h.join(h.joinRequest(memberId: a.memberId, sessionTimeoutMs: 30_000, rebalanceTimeoutMs: 20_000))
        #expect(b.reply.value?.generationId == 2)
        h.sync(memberId: a.memberId, generation: 2, assignments: [:])
        // B never sends SyncGroup (nor heartbeats, but its session is longer than the rebalance timeout).
        h.time.advance(by: 20_000)
        #expect(h.coordinator.describeGroup("g")?.members.map(\.memberId) == [a.memberId])
        #expect(h.state() == .preparingRebalance)
    }
}
