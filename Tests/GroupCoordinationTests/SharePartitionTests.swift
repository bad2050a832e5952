import GroupCoordination
import KafkaWire
import Logging
import NIOCore
import Testing

/// The KIP-932 share-partition state machine, driven with explicit times.
@Suite struct SharePartitionTests {
    let limits = SharePartition.Limits(recordLockDurationMs: 1000, deliveryCountLimit: 3, maxRecordLocks: 10)

    /// Batches of `size` records from `from` up to `to` (exclusive), as the log would return them.
    func batches(_ from: Int64, _ to: Int64, size: Int64 = 1) -> [(baseOffset: Int64, lastOffset: Int64)] {
        stride(from: from, to: to, by: Int(size)).map { ($0, min($0 + size, to) - 1) }
    }

    @Test func twoMembersAcquireDisjointRecords() {
        var p = SharePartition(startOffset: 0)
        let a = p.acquire(memberId: "a", batches: batches(0, 5), maxRecords: 3, nowMs: 0, limits: limits)
        #expect(a.ranges == [.init(firstOffset: 0, lastOffset: 2, deliveryCount: 1)])
        #expect(a.batchIndexes == [0, 1, 2])
        #expect(p.nextFetchOffset() == 3)
        let b = p.acquire(memberId: "b", batches: batches(0, 5), maxRecords: 10, nowMs: 0, limits: limits)
        #expect(b.ranges == [.init(firstOffset: 3, lastOffset: 4, deliveryCount: 1)])
        #expect(b.batchIndexes == [3, 4])
        #expect(p.acquiredCount == 5)
    }

    @Test func aBatchMayBeAcquiredInPart() {
        var p = SharePartition(startOffset: 0)
        let a = p.acquire(memberId: "a", batches: batches(0, 8, size: 4), maxRecords: 2, nowMs: 0, limits: limits)
        #expect(a.ranges == [.init(firstOffset: 0, lastOffset: 1, deliveryCount: 1)])
        #expect(a.batchIndexes == [0])
        let b = p.acquire(memberId: "b", batches: batches(0, 8, size: 4), maxRecords: 3, nowMs: 0, limits: limits)
        #expect(b.ranges == [.init(firstOffset: 2, lastOffset: 4, deliveryCount: 1)])
        #expect(b.batchIndexes == [0, 1])
    }

    @Test func acceptAdvancesTheStartOffset() {
        var p = SharePartition(startOffset: 10)
        _ = p.acquire(memberId: "a", batches: batches(10, 14), maxRecords: 10, nowMs: 0, limits: limits)
        #expect(p.acknowledge(memberId: "a", firstOffset: 11, lastOffset: 12, types: [1], limits: limits) == .ok)
        #expect(p.startOffset == 10)  // 10 is still acquired
        #expect(p.acknowledge(memberId: "a", firstOffset: 10, lastOffset: 10, types: [1], limits: limits) == .ok)
        #expect(p.startOffset == 13)
        #expect(p.isDirty)
    }

    @Test func anotherMembersRecordsCannotBeAcknowledged() {
        var p = SharePartition(startOffset: 0)
        _ = p.acquire(memberId: "a", batches: batches(0, 2), maxRecords: 10, nowMs: 0, limits: limits)
        #expect(p.acknowledge(memberId: "b", firstOffset: 0, lastOffset: 1, types: [1], limits: limits) == .invalidRecordState)
        #expect(p.acknowledge(memberId: "a", firstOffset: 0, lastOffset: 5, types: [1], limits: limits) == .invalidRecordState)
        #expect(p.acknowledge(memberId: "a", firstOffset: 0, lastOffset: 1, types: [1, 1, 1], limits: limits) == .invalidRequest)
        #expect(p.acknowledge(memberId: "a", firstOffset: 0, lastOffset: 1, types: [9], limits: limits) == .invalidRequest)
        #expect(p.acquiredCount == 2)
    }

    @Test func releaseRedeliversWithAHigherDeliveryCount() {
        var p = SharePartition(startOffset: 0)
        _ = p.acquire(memberId: "a", batches: batches(0, 3), maxRecords: 10, nowMs: 0, limits: limits)
        // Per-offset types: accept 0, release 1, accept 2.
        #expect(p.acknowledge(memberId: "a", firstOffset: 0, lastOffset: 2, types: [1, 2, 1], limits: limits) == .ok)
        #expect(p.startOffset == 1)
        #expect(p.nextFetchOffset() == 1)
        let again = p.acquire(memberId: "b", batches: batches(0, 3), maxRecords: 10, nowMs: 5, limits: limits)
        #expect(again.ranges == [.init(firstOffset: 1, lastOffset: 1, deliveryCount: 2)])
        #expect(again.batchIndexes == [1])
    }

    @Test func rejectArchivesAtOnce() {
        var p = SharePartition(startOffset: 0)
        _ = p.acquire(memberId: "a", batches: batches(0, 2), maxRecords: 10, nowMs: 0, limits: limits)
        #expect(p.acknowledge(memberId: "a", firstOffset: 0, lastOffset: 0, types: [3], limits: limits) == .ok)
        #expect(p.state(of: 0) == nil)  // archived and behind the start offset
        #expect(p.startOffset == 1)
        #expect(p.acquire(memberId: "a", batches: batches(0, 2), maxRecords: 10, nowMs: 0, limits: limits).ranges.isEmpty)
    }

    @Test func expiredLocksMakeRecordsAvailableAgain() {
        var p = SharePartition(startOffset: 0)
        _ = p.acquire(memberId: "a", batches: batches(0, 2), maxRecords: 10, nowMs: 0, limits: limits)
        p.expireLocks(nowMs: 999, limits: limits)
        #expect(p.acquiredCount == 2)
        #expect(p.earliestLockExpiry() == 1000)
        p.expireLocks(nowMs: 1000, limits: limits)
        #expect(p.acquiredCount == 0)
        #expect(p.nextFetchOffset() == 0)
        let b = p.acquire(memberId: "b", batches: batches(0, 2), maxRecords: 10, nowMs: 1000, limits: limits)
        #expect(b.ranges == [.init(firstOffset: 0, lastOffset: 1, deliveryCount: 2)])
        // "a"'s late acknowledgement is refused: the records are "b"'s now.
        #expect(p.acknowledge(memberId: "a", firstOffset: 0, lastOffset: 1, types: [1], limits: limits) == .invalidRecordState)
    }

    @Test func deliveryCountLimitArchivesAPoisonRecord() {
        var p = SharePartition(startOffset: 0)
        for delivery in 1...3 {
            let got = p.acquire(memberId: "a", batches: batches(0, 1), maxRecords: 10, nowMs: Int64(delivery) * 10, limits: limits)
            #expect(got.ranges == [.init(firstOffset: 0, lastOffset: 0, deliveryCount: Int16(delivery))])
            #expect(p.acknowledge(memberId: "a", firstOffset: 0, lastOffset: 0, types: [2], limits: limits) == .ok)
        }
        // The third release hit group.share.delivery.count.limit=3: archived, never delivered again.
        #expect(p.startOffset == 1)
        #expect(p.acquire(memberId: "a", batches: batches(0, 1), maxRecords: 10, nowMs: 100, limits: limits).ranges.isEmpty)
    }

    @Test func lockExpiryAtTheLimitArchives() {
        var p = SharePartition(startOffset: 0)
        for round in 0..<3 {
            let now = Int64(round) * 2000
            #expect(!p.acquire(memberId: "a", batches: batches(0, 1), maxRecords: 10, nowMs: now, limits: limits).ranges.isEmpty)
            p.expireLocks(nowMs: now + 1000, limits: limits)
        }
        #expect(p.startOffset == 1)
        #expect(p.nextFetchOffset() == 1)
    }

    @Test func inFlightRecordsAreBoundedByMaxRecordLocks() {
        var p = SharePartition(startOffset: 0)
        let got = p.acquire(memberId: "a", batches: batches(0, 50), maxRecords: 100, nowMs: 0, limits: limits)
        #expect(got.ranges == [.init(firstOffset: 0, lastOffset: 9, deliveryCount: 1)])
        #expect(p.endOffset == 10)
        #expect(p.acquire(memberId: "b", batches: batches(10, 50), maxRecords: 100, nowMs: 0, limits: limits).ranges.isEmpty)
        #expect(p.acknowledge(memberId: "a", firstOffset: 0, lastOffset: 4, types: [1], limits: limits) == .ok)
        let more = p.acquire(memberId: "b", batches: batches(10, 50), maxRecords: 100, nowMs: 0, limits: limits)
        #expect(more.ranges == [.init(firstOffset: 10, lastOffset: 14, deliveryCount: 1)])
    }

    @Test func releaseAllOnLeave() {
        var p = SharePartition(startOffset: 0)
        _ = p.acquire(memberId: "a", batches: batches(0, 2), maxRecords: 1, nowMs: 0, limits: limits)
        _ = p.acquire(memberId: "b", batches: batches(0, 2), maxRecords: 1, nowMs: 0, limits: limits)
        p.releaseAll(memberId: "a", limits: limits)
        #expect(p.state(of: 0)?.state == .available)
        #expect(p.state(of: 1)?.state == .acquired)
        #expect(p.state(of: 1)?.memberId == "b")
    }

    @Test func snapshotRoundTripForgetsLocks() {
        var p = SharePartition(startOffset: 0)
        _ = p.acquire(memberId: "a", batches: batches(0, 6), maxRecords: 10, nowMs: 0, limits: limits)
        #expect(p.acknowledge(memberId: "a", firstOffset: 1, lastOffset: 2, types: [1], limits: limits) == .ok)
        #expect(p.acknowledge(memberId: "a", firstOffset: 3, lastOffset: 3, types: [3], limits: limits) == .ok)
        let batches = p.snapshot()
        #expect(batches == [
            .init(firstOffset: 0, lastOffset: 0, state: .available, deliveryCount: 1),
            .init(firstOffset: 1, lastOffset: 2, state: .acknowledged, deliveryCount: 1),
            .init(firstOffset: 3, lastOffset: 3, state: .archived, deliveryCount: 1),
            .init(firstOffset: 4, lastOffset: 5, state: .available, deliveryCount: 1),
        ])
        var restored = SharePartition(startOffset: p.startOffset, batches: batches)
        #expect(restored.startOffset == 0)
        #expect(restored.endOffset == 6)
        let again = restored.acquire(memberId: "b", batches: self.batches(0, 8), maxRecords: 100, nowMs: 0, limits: limits)
        #expect(again.ranges == [
            .init(firstOffset: 0, lastOffset: 0, deliveryCount: 2),
            .init(firstOffset: 4, lastOffset: 5, deliveryCount: 2),
            .init(firstOffset: 6, lastOffset: 7, deliveryCount: 1),
        ])
    }

    @Test func logStartMovingArchivesWhatIsGone() {
        var p = SharePartition(startOffset: 0)
        _ = p.acquire(memberId: "a", batches: batches(0, 4), maxRecords: 10, nowMs: 0, limits: limits)
        p.logStartMoved(to: 2)
        #expect(p.startOffset == 2)
        #expect(p.state(of: 2)?.state == .acquired)
    }

    @Test func gapsInTheLogAreArchived() {
        var p = SharePartition(startOffset: 0)
        let got = p.acquire(memberId: "a", batches: [(0, 1), (5, 6)], maxRecords: 10, nowMs: 0, limits: limits)
        #expect(got.ranges == [.init(firstOffset: 0, lastOffset: 1, deliveryCount: 1), .init(firstOffset: 5, lastOffset: 6, deliveryCount: 1)])
        #expect(p.state(of: 3)?.state == .archived)
        #expect(p.acknowledge(memberId: "a", firstOffset: 0, lastOffset: 6, types: [1, 1, 0, 0, 0, 1, 1], limits: limits) == .ok)
        #expect(p.startOffset == 7)
    }
}

@Suite struct ShareGroupCoordinatorTests {
    func coordinator(_ time: FakeTime, lockMs: Int64 = 1000) -> ShareGroupCoordinator {
        var configuration = ShareGroupConfiguration()
        configuration.limits.recordLockDurationMs = lockMs
        configuration.sessionTimeoutMs = 5000
        let c = ShareGroupCoordinator(configuration: configuration, clock: time, logger: Logger(label: "test"))
        c.setTopicMetadata(FakeTopics(["t": 1]))
        return c
    }

    func join(_ c: ShareGroupCoordinator, _ member: String) -> ShareGroupHeartbeatResponse {
        c.heartbeat(ShareGroupHeartbeatRequest(groupId: "g", memberId: member, memberEpoch: 0, subscribedTopicNames: ["t"]), client: GroupClientInfo())
    }

    @Test func everyMemberGetsThePartition() {
        let time = FakeTime()
        let c = coordinator(time)
        let a = join(c, "a")
        let b = join(c, "b")
        #expect(a.errorCode == 0 && b.errorCode == 0)
        #expect(a.assignment?.topicPartitions.first?.partitions == [0])
        #expect(b.assignment?.topicPartitions.first?.partitions == [0])
        #expect(c.describe(["g"]).groups.first?.members.count == 2)
        #expect(c.listGroups().map(\.state) == ["Stable"])
    }

    @Test func heartbeatValidation() {
        let c = coordinator(FakeTime())
        let noMember = c.heartbeat(ShareGroupHeartbeatRequest(groupId: "g", memberId: "", memberEpoch: 0, subscribedTopicNames: ["t"]), client: GroupClientInfo())
        #expect(noMember.errorCode == KafkaErrorCode.invalidRequest.rawValue)
        let unknown = c.heartbeat(ShareGroupHeartbeatRequest(groupId: "g", memberId: "x", memberEpoch: 3, subscribedTopicNames: nil), client: GroupClientInfo())
        #expect(unknown.errorCode == KafkaErrorCode.unknownMemberId.rawValue)
    }

    @Test func leavingReleasesTheMembersRecords() {
        let time = FakeTime()
        let c = coordinator(time)
        let a = join(c, "a")
        _ = join(c, "b")
        let key = SharePartitionKey(groupId: "g", topicId: a.assignment!.topicPartitions[0].topicId, partition: 0)
        c.setAutoOffsetReset(groupId: "g", earliest: true)
        #expect(c.nextFetchOffset(key, logStartOffset: 0, highWatermark: 3) == 0)
        #expect(c.acquire(key, memberId: "a", batches: [(0, 2)], maxRecords: 10).ranges.count == 1)
        #expect(c.nextFetchOffset(key, logStartOffset: 0, highWatermark: 3) == nil)
        #expect(c.updateSession(groupId: "g", memberId: "a", epoch: 0, add: [key], forget: []) == .open([key]))
        _ = c.heartbeat(ShareGroupHeartbeatRequest(groupId: "g", memberId: "a", memberEpoch: -1), client: GroupClientInfo())
        // The leave keeps the records until the member closes its share session.
        #expect(c.nextFetchOffset(key, logStartOffset: 0, highWatermark: 3) == nil)
        #expect(c.acquire(key, memberId: "a", batches: [(0, 2)], maxRecords: 10).ranges.isEmpty)  // not a member any more
        #expect(c.checkAcknowledgeSession(groupId: "g", memberId: "a", epoch: -1) == .none)
        c.closeSession(groupId: "g", memberId: "a")
        #expect(c.nextFetchOffset(key, logStartOffset: 0, highWatermark: 3) == 0)
        let taken = c.acquire(key, memberId: "b", batches: [(0, 2)], maxRecords: 10)
        #expect(taken.ranges == [.init(firstOffset: 0, lastOffset: 2, deliveryCount: 2)])
        #expect(c.acknowledge(key, memberId: "b", batches: [(0, 2, [1])]) == .none)
        let snapshots = c.takeDirtySnapshots()
        #expect(snapshots.count == 1)
        #expect(snapshots.first?.startOffset == 3)
        #expect(c.takeDirtySnapshots().isEmpty)
    }

    @Test func alterAndDeleteOffsetsOnlyWhenEmpty() {
        let time = FakeTime()
        let c = coordinator(time)
        let a = join(c, "a")
        let topicId = a.assignment!.topicPartitions[0].topicId
        let key = SharePartitionKey(groupId: "g", topicId: topicId, partition: 0)
        c.setAutoOffsetReset(groupId: "g", earliest: true)
        #expect(c.nextFetchOffset(key, logStartOffset: 0, highWatermark: 10) == 0)
        #expect(c.acquire(key, memberId: "a", batches: [(0, 4)], maxRecords: 10).ranges.count == 1)
        _ = c.takeDirtySnapshots()
        #expect(c.alterStartOffsets(groupId: "nope", [key: 7]) == .groupNotFound)
        #expect(c.alterStartOffsets(groupId: "g", [key: 7]) == .nonEmptyGroup)
        #expect(c.deleteStartOffsets(groupId: "g", topicIds: [topicId]) == .nonEmptyGroup)
        #expect(c.startOffsets(groupId: "g")?[key] == 0)
        _ = c.heartbeat(ShareGroupHeartbeatRequest(groupId: "g", memberId: "a", memberEpoch: -1), client: GroupClientInfo())
        c.closeSession(groupId: "g", memberId: "a")
        _ = c.takeDirtySnapshots()
        // Empty: the new start offset drops what was in flight below and after it.
        #expect(c.alterStartOffsets(groupId: "g", [key: 7]) == .done)
        #expect(c.startOffsets(groupId: "g")?[key] == 7)
        let snapshots = c.takeDirtySnapshots()
        #expect(snapshots.count == 1)
        #expect(snapshots.first?.startOffset == 7)
        #expect(snapshots.first?.batches.isEmpty == true)
        #expect(snapshots.first?.stateEpoch == 1)
        #expect(c.nextFetchOffset(key, logStartOffset: 0, highWatermark: 10) == 7)
        // Delete: the state is gone (a tombstone to write) and the next fetch starts per the reset policy.
        #expect(c.deleteStartOffsets(groupId: "g", topicIds: [topicId]) == .done)
        #expect(c.startOffsets(groupId: "g")?[key] == nil)
        #expect(c.takeDeletedKeys() == [key])
        #expect(c.takeDeletedKeys().isEmpty)
        #expect(c.takeDirtySnapshots().isEmpty)
        #expect(c.nextFetchOffset(key, logStartOffset: 0, highWatermark: 10) == 0)
    }

    @Test func groupCountAndSizeAreBounded() {
        var configuration = ShareGroupConfiguration()
        configuration.maxGroups = 1
        configuration.maxGroupSize = 1
        let c = ShareGroupCoordinator(configuration: configuration, clock: FakeTime(), logger: Logger(label: "test"))
        c.setTopicMetadata(FakeTopics(["t": 1]))
        #expect(join(c, "a").errorCode == 0)
        #expect(join(c, "b").errorCode == KafkaErrorCode.groupMaxSizeReached.rawValue)
        let other = c.heartbeat(ShareGroupHeartbeatRequest(groupId: "h", memberId: "x", memberEpoch: 0, subscribedTopicNames: ["t"]), client: GroupClientInfo())
        #expect(other.errorCode == KafkaErrorCode.groupMaxSizeReached.rawValue)
        #expect(!c.setAutoOffsetReset(groupId: "h", earliest: true))
    }

    @Test func silentMembersExpire() {
        let time = FakeTime()
        let c = coordinator(time)
        _ = join(c, "a")
        time.advance(by: 6000)
        c.expireMembers()
        #expect(c.listGroups().map(\.state) == ["Empty"])
    }

    @Test func sessionEpochs() {
        let c = coordinator(FakeTime())
        if case .error(let code, _) = c.updateSession(groupId: "g", memberId: "a", epoch: 0, add: [], forget: []) {
            #expect(code == .unknownMemberId)  // only members open share sessions
        } else {
            Issue.record("a stranger opened a share session")
        }
        _ = join(c, "a")
        let key = SharePartitionKey(groupId: "g", topicId: KafkaUUID(mostSignificantBits: 1, leastSignificantBits: 1), partition: 0)
        #expect(c.updateSession(groupId: "g", memberId: "a", epoch: 1, add: [], forget: []) == .error(.shareSessionNotFound, "no share session for a"))
        #expect(c.updateSession(groupId: "g", memberId: "a", epoch: 0, add: [key], forget: []) == .open([key]))
        #expect(c.updateSession(groupId: "g", memberId: "a", epoch: 1, add: [], forget: []) == .open([key]))
        if case .error(let code, _) = c.updateSession(groupId: "g", memberId: "a", epoch: 1, add: [], forget: []) {
            #expect(code == .invalidShareSessionEpoch)
        } else {
            Issue.record("a repeated epoch must be refused")
        }
        #expect(c.checkAcknowledgeSession(groupId: "g", memberId: "a", epoch: 2) == .none)
        #expect(c.updateSession(groupId: "g", memberId: "a", epoch: 3, add: [], forget: [key]) == .open([]))
        #expect(c.updateSession(groupId: "g", memberId: "a", epoch: -1, add: [], forget: []) == .closed)
    }
}

@Suite struct ShareStateRecordTests {
    let key = SharePartitionKey(groupId: "g", topicId: KafkaUUID(mostSignificantBits: 7, leastSignificantBits: 9), partition: 3)

    @Test func snapshotRoundTripsInKafkasFormat() throws {
        let snapshot = SharePartitionSnapshot(key: key, stateEpoch: 2, startOffset: 10, batches: [
            .init(firstOffset: 10, lastOffset: 11, state: .acknowledged, deliveryCount: 1),
            .init(firstOffset: 12, lastOffset: 12, state: .available, deliveryCount: 3),
        ])
        let (k, v) = ShareStateRecord.encode(snapshot)
        // Key: int16 record type 0 (ShareSnapshotKey), then group id, topic id, partition.
        #expect(k.getInteger(at: k.readerIndex, as: Int16.self) == 0)
        #expect(k.readableBytes == 2 + 2 + 1 + 16 + 4)
        #expect(try ShareStateRecord.decode(key: k, value: v) == .snapshot(snapshot))
        #expect(try ShareStateRecord.decode(key: k, value: nil) == .deleted(key))
    }

    @Test func replayKeepsTheLastStateAndAppliesUpdates() {
        let first = SharePartitionSnapshot(key: key, stateEpoch: 0, startOffset: 0, batches: [.init(firstOffset: 0, lastOffset: 3, state: .available, deliveryCount: 1)])
        let second = SharePartitionSnapshot(key: key, stateEpoch: 0, startOffset: 2, batches: [.init(firstOffset: 2, lastOffset: 3, state: .available, deliveryCount: 1)])
        let update = SharePartitionSnapshot(key: key, stateEpoch: 0, startOffset: -1, batches: [.init(firstOffset: 3, lastOffset: 3, state: .archived, deliveryCount: 2)])
        let replayed = ShareStateRecord.replay([.snapshot(first), .snapshot(second), .update(update)])
        #expect(replayed.count == 1)
        #expect(replayed.first?.startOffset == 2)
        #expect(replayed.first?.batches.last == .init(firstOffset: 3, lastOffset: 3, state: .archived, deliveryCount: 2))
        #expect(ShareStateRecord.replay([.snapshot(first), .deleted(key)]).isEmpty)
    }

    @Test func aHugeDamagedBatchDoesNotAllocateItsRange() {
        let restored = SharePartition(startOffset: 0, batches: [.init(firstOffset: 0, lastOffset: Int64.max - 1, state: .available, deliveryCount: 1)])
        #expect(restored.endOffset == 0)
    }
}
