import GroupCoordination
import KafkaWire
import NIOCore
import Testing

private func hex(_ buffer: ByteBuffer?) -> String {
    guard let buffer else { return "nil" }
    return buffer.readableBytesView.map { byte in
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }.joined()
}

@Suite struct RecordEncodingTests {
    @Test func offsetCommitRecordByteLayout() throws {
        let record = CoordinatorRecord.offsetCommit(
            group: "g", topic: "t", partition: 2,
            value: OffsetCommitValue(offset: 42, leaderEpoch: 5, metadata: "m", commitTimestamp: 1000, expireTimestamp: -1))
        // Key v1: int16 1 | string "g" | string "t" | int32 2.
        #expect(hex(record.key) == "0001" + "000167" + "000174" + "00000002")
        // Value v3: int16 3 | int64 offset | int32 leaderEpoch | string metadata | int64 commitTimestamp.
        #expect(hex(record.value) == "0003" + "000000000000002a" + "00000005" + "00016d" + "00000000000003e8")

        // With an explicit expire timestamp Kafka writes v1: offset | metadata | commit | expire.
        let legacy = CoordinatorRecord.offsetCommit(
            group: "g", topic: "t", partition: 2,
            value: OffsetCommitValue(offset: 42, leaderEpoch: 5, metadata: "", commitTimestamp: 1000, expireTimestamp: 2000))
        #expect(hex(legacy.value) == "0001" + "000000000000002a" + "0000" + "00000000000003e8" + "00000000000007d0")

        let tombstone = CoordinatorRecord.offsetCommit(group: "g", topic: "t", partition: 2, value: nil)
        #expect(tombstone.key == record.key && tombstone.value == nil)

        #expect(try CoordinatorRecord.decodeKey(record.key) == .offsetCommit(OffsetCommitKey(group: "g", topic: "t", partition: 2)))
        let decoded = try CoordinatorRecord.decodeOffsetCommitValue(record.value!)
        #expect(decoded.offset == 42 && decoded.leaderEpoch == 5 && decoded.metadata == "m" && decoded.commitTimestamp == 1000)
        // Key version 0 (pre-0.9 Kafka) reads the same way.
        var v0 = ByteBuffer(bytes: [0, 0])
        v0.writeBytes(record.key.readableBytesView.dropFirst(2))
        #expect(try CoordinatorRecord.decodeKey(v0) == .offsetCommit(OffsetCommitKey(group: "g", topic: "t", partition: 2)))
    }

    @Test func groupMetadataRecordByteLayout() throws {
        let value = GroupMetadataValue(
            protocolType: "consumer", generation: 1, protocol: "range", leader: "m1", currentStateTimestamp: 7,
            members: [.init(memberId: "m1", groupInstanceId: nil, clientId: "c", clientHost: "h", rebalanceTimeout: 300, sessionTimeout: 100,
                            subscription: ByteBuffer(bytes: [1, 2]), assignment: ByteBuffer(bytes: [3]))])
        let record = CoordinatorRecord.groupMetadata(group: "g", value: value)
        #expect(hex(record.key) == "0002" + "000167")
        let expected = "0003"
            + "0008" + "636f6e73756d6572" // protocolType "consumer"
            + "00000001" // generation
            + "0005" + "72616e6765" // protocol "range"
            + "0002" + "6d31" // leader "m1"
            + "0000000000000007" // currentStateTimestamp
            + "00000001" // members
            + "0002" + "6d31" + "ffff" + "0001" + "63" + "0001" + "68" // memberId, instance null, client, host
            + "0000012c" + "00000064" // rebalance, session timeouts
            + "00000002" + "0102" + "00000001" + "03" // subscription, assignment
        #expect(hex(record.value) == expected)
        #expect(try CoordinatorRecord.decodeGroupMetadataValue(record.value!) == value)
        #expect(try CoordinatorRecord.decodeKey(record.key) == .groupMetadata(GroupMetadataKey(group: "g")))
    }

    @Test func offsetsPartitionMatchesJavaHashCode() {
        // Java: "test-group".hashCode() == 627841412, "my-group".hashCode() == -1906497762.
        #expect(CoordinatorRecord.offsetsPartition(for: "test-group", partitionCount: 50) == 12)
        #expect(CoordinatorRecord.offsetsPartition(for: "my-group", partitionCount: 50) == 12)
        #expect(CoordinatorRecord.offsetsPartition(for: "", partitionCount: 50) == 0)
    }

    @Test func rebalanceAndCommitsProduceRecords() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake()
        h.sync(memberId: a.memberId, generation: 1, assignments: [a.memberId: assignment("t", [0])])
        h.commit(memberId: a.memberId, generation: 1, offsets: [("t", 0, 5)])
        let keys = try h.store.records.map { try CoordinatorRecord.decodeKey($0.key) }
        #expect(keys == [.groupMetadata(GroupMetadataKey(group: "g")), .offsetCommit(OffsetCommitKey(group: "g", topic: "t", partition: 0))])
        let group = try CoordinatorRecord.decodeGroupMetadataValue(h.store.records[0].value!)
        #expect(group.generation == 1 && group.protocol == "range" && group.leader == a.memberId)
        #expect(group.members.map(\.memberId) == [a.memberId])
        #expect(group.members[0].assignment == assignment("t", [0]))
        #expect(group.members[0].subscription == subscription(["t"]))
        #expect(group.members[0].clientId == "client")
        #expect(h.store.records.allSatisfy { $0.groupId == "g" })
    }
}

@Suite struct AdminTests {
    let node = CoordinatorNode(nodeId: 1, host: "broker", port: 9092)

    func find(_ h: Harness, _ request: FindCoordinatorRequest, version: Int16) throws -> FindCoordinatorResponse {
        let reply = Reply<FindCoordinatorResponse>()
        h.coordinator.handleFindCoordinator(request, version: version, node: node, completion: reply.callback)
        let response = try #require(reply.value)
        _ = try response.encoded(version: version)
        return response
    }

    @Test func findCoordinator() throws {
        let h = Harness()
        let v0 = try find(h, FindCoordinatorRequest(key: "g"), version: 0)
        #expect(v0.errorCode == 0 && v0.nodeId == 1 && v0.host == "broker" && v0.port == 9092)
        let txn = try find(h, FindCoordinatorRequest(key: "tx", keyType: 1), version: 3)
        #expect(txn.errorCode == 0 && txn.nodeId == 1 && txn.port == 9092)  // this node coordinates transactions
        let batched = try find(h, FindCoordinatorRequest(keyType: 0, coordinatorKeys: ["a", "b"]), version: 4)
        #expect(batched.coordinators.map(\.key) == ["a", "b"])
        #expect(batched.coordinators.allSatisfy { $0.nodeId == 1 && $0.port == 9092 && $0.errorCode == 0 })
        let batchedTxn = try find(h, FindCoordinatorRequest(keyType: 1, coordinatorKeys: ["tx"]), version: 6)
        #expect(batchedTxn.coordinators[0].errorCode == 0 && batchedTxn.coordinators[0].nodeId == 1)
    }

    @Test func listAndDescribeGroups() throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        let a = h.joinWithHandshake()
        h.sync(memberId: a.memberId, generation: 1, assignments: [a.memberId: assignment("t", [0])])
        h.commit(group: "idle", offsets: [("t", 0, 1)])

        func list(_ request: ListGroupsRequest, version: Int16) throws -> ListGroupsResponse {
            let reply = Reply<ListGroupsResponse>()
            h.coordinator.handleListGroups(request, version: version, completion: reply.callback)
            let response = try #require(reply.value)
            _ = try response.encoded(version: version)
            return response
        }
        let all = try list(ListGroupsRequest(), version: 5)
        #expect(all.groups.map(\.groupId) == ["g", "idle"])
        #expect(all.groups.map(\.groupState) == ["Stable", "Empty"])
        #expect(all.groups.map(\.protocolType) == ["consumer", ""])
        #expect(all.groups.allSatisfy { $0.groupType == "classic" })
        #expect(try list(ListGroupsRequest(statesFilter: ["stable"]), version: 4).groups.map(\.groupId) == ["g"])
        #expect(try list(ListGroupsRequest(typesFilter: ["consumer"]), version: 5).groups.isEmpty)
        #expect(try list(ListGroupsRequest(typesFilter: ["Classic"]), version: 5).groups.count == 2)
        #expect(try list(ListGroupsRequest(), version: 0).groups.count == 2)

        let reply = Reply<DescribeGroupsResponse>()
        h.coordinator.handleDescribeGroups(DescribeGroupsRequest(groups: ["g", "missing"], includeAuthorizedOperations: true), version: 5, completion: reply.callback)
        let described = try #require(reply.value)
        _ = try described.encoded(version: 5)
        #expect(described.groups[0].groupState == "Stable")
        #expect(described.groups[0].protocolData == "range")
        #expect(described.groups[0].members.map(\.memberId) == [a.memberId])
        #expect(described.groups[0].members[0].memberAssignment == assignment("t", [0]))
        #expect(described.groups[0].members[0].memberMetadata == subscription(["t"]))
        #expect(described.groups[0].members[0].clientHost == "/127.0.0.1")
        #expect(described.groups[1].groupState == "Dead" && described.groups[1].errorCode == 0)

        let snapshots = h.coordinator.describeAllGroups()
        #expect(snapshots.map(\.groupId) == ["g", "idle"])
        #expect(snapshots[0].members[0].assignment == assignment("t", [0]))
        #expect(snapshots[1].protocolType == nil && snapshots[1].state == .empty)
    }

    /// Every response the coordinator builds encodes at every version of its API.
    @Test(arguments: Array(Int16(0)...9))
    func responsesEncodeAtEveryVersion(_ version: Int16) throws {
        let h = Harness { $0.initialRebalanceDelayMs = 0 }
        if JoinGroupRequest.supportedVersions.contains(version) {
            let group = "join\(version)"
            let first = h.join(h.joinRequest(group: group), version: version)
            _ = try first.value!.encoded(version: version)
            var memberId = first.value!.memberId
            if version >= 4 {
                let second = h.join(h.joinRequest(group: group, memberId: memberId), version: version)
                _ = try second.value!.encoded(version: version)
                memberId = second.value!.memberId
            }
            if SyncGroupRequest.supportedVersions.contains(version) {
                let sync = h.sync(group: group, memberId: memberId, generation: 1, assignments: [memberId: assignment("t", [0])], version: version)
                #expect(sync.value?.errorCode == 0)
                _ = try sync.value!.encoded(version: version)
            }
            if HeartbeatRequest.supportedVersions.contains(version) {
                let reply = Reply<HeartbeatResponse>()
                h.coordinator.handleHeartbeat(HeartbeatRequest(groupId: group, generationId: 1, memberId: memberId), version: version, completion: reply.callback)
                #expect(reply.value?.errorCode == 0)
                _ = try reply.value!.encoded(version: version)
            }
            if LeaveGroupRequest.supportedVersions.contains(version) {
                let reply = Reply<LeaveGroupResponse>()
                var request = LeaveGroupRequest(groupId: group, memberId: version < 3 ? memberId : "")
                if version >= 3 { request.members = [.init(memberId: memberId, groupInstanceId: nil, reason: nil)] }
                h.coordinator.handleLeaveGroup(request, version: version, completion: reply.callback)
                #expect(reply.value?.errorCode == 0)
                _ = try reply.value!.encoded(version: version)
            }
        }
        if OffsetCommitRequest.supportedVersions.contains(version) {
            let commit = h.commit(group: "c\(version)", offsets: [("t", 0, 1)], version: version)
            #expect(h.commitErrors(commit) == [.none])
            _ = try commit.value!.encoded(version: version)
        }
        if OffsetFetchRequest.supportedVersions.contains(version) && version < 8 {
            let fetched = h.fetch(group: "c2", topics: [("t", [0])], version: version)
            _ = try fetched.encoded(version: version)
            if version >= 2 { _ = try h.fetch(group: "c2", topics: nil, version: version).encoded(version: version) }
        }
        if DescribeGroupsRequest.supportedVersions.contains(version) {
            let reply = Reply<DescribeGroupsResponse>()
            h.coordinator.handleDescribeGroups(DescribeGroupsRequest(groups: ["c2", "x"], includeAuthorizedOperations: version >= 3), version: version, completion: reply.callback)
            _ = try reply.value!.encoded(version: version)
        }
        if DeleteGroupsRequest.supportedVersions.contains(version) {
            let reply = Reply<DeleteGroupsResponse>()
            h.coordinator.handleDeleteGroups(DeleteGroupsRequest(groupsNames: ["x"]), version: version, completion: reply.callback)
            _ = try reply.value!.encoded(version: version)
        }
        if FindCoordinatorRequest.supportedVersions.contains(version) {
            let request = version >= 4 ? FindCoordinatorRequest(coordinatorKeys: ["g"]) : FindCoordinatorRequest(key: "g")
            _ = try find(h, request, version: version)
        }
    }
}
