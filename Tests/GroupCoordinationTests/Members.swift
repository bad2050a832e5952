import GroupCoordination
import KafkaWire
import NIOCore

/// Request helpers in the shape real consumers send them.
extension Harness {
    func joinRequest(
        group: String = "g", memberId: String = "", instanceId: String? = nil,
        topics: [String] = ["t"], protocols: [String] = ["range"],
        sessionTimeoutMs: Int32 = 10_000, rebalanceTimeoutMs: Int32 = 30_000
    ) -> JoinGroupRequest {
        JoinGroupRequest(
            groupId: group, sessionTimeoutMs: sessionTimeoutMs, rebalanceTimeoutMs: rebalanceTimeoutMs,
            memberId: memberId, groupInstanceId: instanceId, protocolType: "consumer",
            protocols: protocols.map { .init(name: $0, metadata: subscription(topics)) })
    }

    @discardableResult
    func join(_ request: JoinGroupRequest, version: Int16 = 5, clientId: String = "client") -> Reply<JoinGroupResponse> {
        let reply = Reply<JoinGroupResponse>()
        coordinator.handleJoinGroup(request, version: version, client: GroupClientInfo(clientId: clientId, clientHost: "/127.0.0.1"), completion: reply.callback)
        return reply
    }

    /// JoinGroup v5 with the MEMBER_ID_REQUIRED round trip; returns the parked rejoin.
    func joinWithHandshake(
        group: String = "g", topics: [String] = ["t"], protocols: [String] = ["range"],
        sessionTimeoutMs: Int32 = 10_000, rebalanceTimeoutMs: Int32 = 30_000, clientId: String = "client"
    ) -> (memberId: String, reply: Reply<JoinGroupResponse>) {
        let first = join(joinRequest(group: group, topics: topics, protocols: protocols, sessionTimeoutMs: sessionTimeoutMs, rebalanceTimeoutMs: rebalanceTimeoutMs), clientId: clientId)
        let response = first.value!
        precondition(response.errorCode == KafkaErrorCode.memberIdRequired.rawValue, "expected MEMBER_ID_REQUIRED, got \(response.errorCode)")
        let memberId = response.memberId
        let second = join(joinRequest(group: group, memberId: memberId, topics: topics, protocols: protocols, sessionTimeoutMs: sessionTimeoutMs, rebalanceTimeoutMs: rebalanceTimeoutMs), clientId: clientId)
        return (memberId, second)
    }

    @discardableResult
    func sync(
        group: String = "g", memberId: String, generation: Int32, instanceId: String? = nil,
        assignments: [String: ByteBuffer] = [:], version: Int16 = 5
    ) -> Reply<SyncGroupResponse> {
        let reply = Reply<SyncGroupResponse>()
        let request = SyncGroupRequest(
            groupId: group, generationId: generation, memberId: memberId, groupInstanceId: instanceId,
            protocolType: version >= 5 ? "consumer" : nil, protocolName: nil,
            assignments: assignments.sorted { $0.key < $1.key }.map { .init(memberId: $0.key, assignment: $0.value) })
        coordinator.handleSyncGroup(request, version: version, completion: reply.callback)
        return reply
    }

    func heartbeat(group: String = "g", memberId: String, generation: Int32, instanceId: String? = nil, version: Int16 = 4) -> KafkaErrorCode {
        let reply = Reply<HeartbeatResponse>()
        coordinator.handleHeartbeat(
            HeartbeatRequest(groupId: group, generationId: generation, memberId: memberId, groupInstanceId: instanceId),
            version: version, completion: reply.callback)
        return KafkaErrorCode(reply.value!.errorCode)
    }

    func leave(group: String = "g", memberId: String, version: Int16 = 1) -> KafkaErrorCode {
        let reply = Reply<LeaveGroupResponse>()
        coordinator.handleLeaveGroup(LeaveGroupRequest(groupId: group, memberId: memberId), version: version, completion: reply.callback)
        return KafkaErrorCode(reply.value!.errorCode)
    }

    @discardableResult
    func commit(
        group: String = "g", memberId: String = "", generation: Int32 = -1, instanceId: String? = nil,
        offsets: [(String, Int32, Int64)], metadata: String? = nil, version: Int16 = 8
    ) -> Reply<OffsetCommitResponse> {
        let reply = Reply<OffsetCommitResponse>()
        var byTopic: [String: [OffsetCommitRequest.OffsetCommitRequestPartition]] = [:]
        var order: [String] = []
        for (topic, partition, offset) in offsets {
            if byTopic[topic] == nil { order.append(topic) }
            byTopic[topic, default: []].append(.init(partitionIndex: partition, committedOffset: offset, committedLeaderEpoch: version >= 6 ? 3 : -1, committedMetadata: metadata))
        }
        let request = OffsetCommitRequest(
            groupId: group, generationIdOrMemberEpoch: generation, memberId: memberId, groupInstanceId: instanceId,
            topics: order.map { .init(name: $0, partitions: byTopic[$0]!) })
        coordinator.handleOffsetCommit(request, version: version, completion: reply.callback)
        return reply
    }

    /// Error codes of a commit response, flattened in request order.
    func commitErrors(_ reply: Reply<OffsetCommitResponse>) -> [KafkaErrorCode] {
        reply.value!.topics.flatMap { $0.partitions.map { KafkaErrorCode($0.errorCode) } }
    }

    /// OffsetFetch v7 for one group; nil topics = all.
    func fetch(group: String = "g", topics: [(String, [Int32])]?, version: Int16 = 7) -> OffsetFetchResponse {
        let reply = Reply<OffsetFetchResponse>()
        var request = OffsetFetchRequest()
        request.groupId = group
        request.topics = topics.map { $0.map { .init(name: $0.0, partitionIndexes: $0.1) } }
        coordinator.handleOffsetFetch(request, version: version, completion: reply.callback)
        return reply.value!
    }

    func state(_ group: String = "g") -> GroupState? { coordinator.describeGroup(group)?.state }
}
