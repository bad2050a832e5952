import KafkaWire
import Logging
import NIOCore

/// Online conversion between classic and consumer-protocol groups, as Kafka 4 does with
/// `group.consumer.migration.policy=bidirectional`: the first ConsumerGroupHeartbeat for a stable
/// classic group turns it into a consumer-protocol group whose classic members keep their
/// partitions and keep speaking JoinGroup/SyncGroup/Heartbeat (the coordinator assigns for them and
/// asks them to rejoin with REBALANCE_IN_PROGRESS when their assignment changes); when the last
/// consumer-protocol member leaves, the group turns back into a classic group and rebalances.
extension GroupCoordinator {
    // MARK: Classic -> consumer

    /// Converts a classic `group` (non-empty) into a consumer-protocol group; nil on success, else
    /// the error for the joining member (GROUP_ID_NOT_FOUND, or REBALANCE_IN_PROGRESS while the
    /// classic group is mid-rebalance).
    func convertToConsumerGroup(_ group: ClassicGroup) -> KafkaErrorCode? {
        guard group.protocolType == Self.consumerGroupType else { return .groupIdNotFound }
        guard group.state == .stable, group.pendingMembers.isEmpty else { return .rebalanceInProgress }
        if let maxGroupSize = configuration.maxGroupSize, group.members.count >= maxGroupSize { return .groupMaxSizeReached }
        let state = ConsumerGroupState()
        state.groupEpoch = group.generationId
        state.assignmentEpoch = group.generationId
        for classic in group.orderedMembers {
            let member = ConsumerMember(memberId: classic.memberId, clientId: classic.clientId, clientHost: classic.clientHost)
            member.instanceId = classic.groupInstanceId
            member.rebalanceTimeoutMs = classic.rebalanceTimeoutMs
            member.classic = ClassicMemberInfo(
                protocols: classic.protocols, sessionTimeoutMs: classic.sessionTimeoutMs, rebalanceTimeoutMs: classic.rebalanceTimeoutMs)
            if let metadata = classic.metadata(for: group.protocolName), let subscription = try? Self.decodeSubscription(metadata) {
                member.subscribedTopicNames = Array(Set(subscription.topics)).sorted()
            }
            member.assigned = decodeAssignment(classic.assignment)
            member.memberEpoch = group.generationId
            state.targetAssignment[member.memberId] = member.assigned
            state.members[member.memberId] = member
            if let instanceId = member.instanceId { state.staticMembers[instanceId] = member.memberId }
        }
        for classic in group.orderedMembers { group.remove(classic.memberId) }
        group.rebalanceTimer?.cancel()
        group.rebalanceTimer = nil
        group.pendingSyncTimer?.cancel()
        group.pendingSyncTimer = nil
        group.protocolName = nil
        group.leaderId = nil
        transition(group, to: .empty)
        group.consumer = state
        state.subscriptionMetadata = currentSubscriptionMetadata(state)
        markConsumerGroupChanged(group.groupId)
        for member in state.members.values { scheduleConsumerSessionExpiry(group, state, member) }
        logger.info("classic group converted to the consumer protocol", metadata: ["group": "\(group.groupId)", "members": "\(state.members.count)"])
        return nil
    }

    private func decodeAssignment(_ bytes: ByteBuffer) -> Set<TopicIdPartition> {
        var buffer = bytes
        guard buffer.readableBytes >= 2, let version = try? buffer.readWireInt16(), version >= 0,
              let decoded = try? ConsumerProtocolAssignment(from: &buffer, version: min(version, ConsumerProtocolAssignment.highestSupportedVersion))
        else { return [] }
        return partitions(named: decoded.assignedPartitions.map { ($0.topic, $0.partitions) })
    }

    private func partitions(named list: [(String, [Int32])]) -> Set<TopicIdPartition> {
        var result: Set<TopicIdPartition> = []
        for (topic, partitions) in list {
            guard let info = topicMetadata?.topic(named: topic) else { continue }
            for p in partitions where p >= 0 && p < info.partitionCount { result.insert(TopicIdPartition(topicId: info.id, partition: p)) }
        }
        return result
    }

    private func encodeAssignment(_ set: Set<TopicIdPartition>) -> ByteBuffer {
        var message = ConsumerProtocolAssignment()
        message.assignedPartitions = Dictionary(grouping: set, by: \.topicId).compactMap { id, partitions in
            topicMetadata?.topic(id: id).map { .init(topic: $0.name, partitions: partitions.map(\.partition).sorted()) }
        }.sorted { $0.topic < $1.topic }
        var writer = WireWriter()
        writer.buffer.writeWireInt16(0)
        try? message.write(to: &writer, version: 0)
        return writer.finishSingleBuffer() ?? ByteBuffer()
    }

    // MARK: Classic members in a consumer-protocol group

    /// JoinGroup from a classic member of a consumer-protocol group: answered at once with the
    /// member's epoch as generation; the partitions come with SyncGroup.
    func classicJoinInConsumerGroup(
        _ group: ClassicGroup, _ state: ConsumerGroupState, _ request: JoinGroupRequest, client: GroupClientInfo
    ) -> JoinResult {
        guard request.protocolType == Self.consumerGroupType, !request.protocols.isEmpty else {
            return JoinResult(error: .inconsistentGroupProtocol, memberId: request.memberId)
        }
        let member: ConsumerMember
        if request.memberId.isEmpty {
            if let instanceId = request.groupInstanceId, let existingId = state.staticMembers[instanceId], let existing = state.members[existingId] {
                // A static classic member restarting: takes the old member's place.
                member = existing
            } else {
                if let maxGroupSize = configuration.maxGroupSize, state.members.count >= maxGroupSize {
                    return JoinResult(error: .groupMaxSizeReached, memberId: "")
                }
                member = addConsumerMember(group, state, memberId: makeMemberId(prefix: client.clientId), client: client)
                member.instanceId = request.groupInstanceId
                if let instanceId = request.groupInstanceId { state.staticMembers[instanceId] = member.memberId }
            }
        } else {
            guard let existing = state.members[request.memberId], existing.classic != nil else {
                return JoinResult(error: .unknownMemberId, memberId: request.memberId)
            }
            member = existing
        }
        let protocols = request.protocols.map { MemberProtocol(name: $0.name, metadata: $0.metadata) }
        member.classic = ClassicMemberInfo(
            protocols: protocols, sessionTimeoutMs: request.sessionTimeoutMs,
            rebalanceTimeoutMs: request.rebalanceTimeoutMs > 0 ? request.rebalanceTimeoutMs : request.sessionTimeoutMs)
        member.rebalanceTimeoutMs = member.classic!.rebalanceTimeoutMs
        member.clientId = client.clientId
        member.clientHost = client.clientHost
        let subscription = try? Self.decodeSubscription(protocols[0].metadata)
        var bump = state.targetAssignment[member.memberId] == nil
        if let topics = subscription?.topics, Set(topics) != Set(member.subscribedTopicNames) {
            member.subscribedTopicNames = Array(Set(topics)).sorted()
            bump = true
        }
        let metadata = currentSubscriptionMetadata(state)
        if metadata != state.subscriptionMetadata {
            state.subscriptionMetadata = metadata
            bump = true
        }
        if bump { state.groupEpoch += 1 }
        if state.groupEpoch > state.assignmentEpoch { computeTargetAssignment(group, state) }
        // A rejoining classic member owns what its subscription lists (nothing for eager protocols).
        let owned = partitions(named: (subscription?.ownedPartitions ?? []).map { ($0.topic, $0.partitions) })
        member.assigned.formIntersection(owned)
        let ownedList = Dictionary(grouping: owned, by: \.topicId).map {
            ConsumerGroupHeartbeatRequest.TopicPartitions(topicId: $0.key, partitions: $0.value.map(\.partition))
        }
        if member.state == .stable {
            computeNextAssignment(group, state, member)
        } else {
            reconcile(group, state, member, owned: ownedList)
        }
        scheduleConsumerSessionExpiry(group, state, member)
        return JoinResult(
            memberId: member.memberId, generationId: member.memberEpoch, protocolType: Self.consumerGroupType,
            protocolName: member.classic!.protocolName, leaderId: "")
    }

    /// SyncGroup from a classic member of a consumer-protocol group: its current partitions.
    func classicSyncInConsumerGroup(_ state: ConsumerGroupState, _ request: SyncGroupRequest, version: Int16) -> SyncGroupResponse {
        guard let member = state.members[request.memberId], let classic = member.classic else {
            return SyncGroupResponse(errorCode: KafkaErrorCode.unknownMemberId.rawValue, assignment: ByteBuffer())
        }
        guard request.generationId == member.memberEpoch else {
            return SyncGroupResponse(errorCode: KafkaErrorCode.illegalGeneration.rawValue, assignment: ByteBuffer())
        }
        return SyncGroupResponse(
            errorCode: 0,
            protocolType: version >= 5 ? Self.consumerGroupType : nil,
            protocolName: version >= 5 ? classic.protocolName : nil,
            assignment: encodeAssignment(member.assigned))
    }

    /// Heartbeat from a classic member of a consumer-protocol group: REBALANCE_IN_PROGRESS when
    /// its assignment must change (it then rejoins).
    func classicHeartbeatInConsumerGroup(_ group: ClassicGroup, _ state: ConsumerGroupState, _ request: HeartbeatRequest) -> KafkaErrorCode {
        guard let member = state.members[request.memberId], member.classic != nil else { return .unknownMemberId }
        guard request.generationId == member.memberEpoch else { return .illegalGeneration }
        scheduleConsumerSessionExpiry(group, state, member)
        let metadata = currentSubscriptionMetadata(state)
        if metadata != state.subscriptionMetadata {
            state.subscriptionMetadata = metadata
            state.groupEpoch += 1
        }
        if state.groupEpoch > state.assignmentEpoch { computeTargetAssignment(group, state) }
        let target = state.targetAssignment[member.memberId] ?? []
        // Same partitions at a newer group epoch need no rejoin: the classic generation stays.
        return member.state != .stable || member.assigned != target ? .rebalanceInProgress : .none
    }

    /// LeaveGroup for a classic member of a consumer-protocol group.
    func classicLeaveInConsumerGroup(_ group: ClassicGroup, _ state: ConsumerGroupState, _ identity: LeaveGroupRequest.MemberIdentity) -> KafkaErrorCode {
        var memberId = identity.memberId
        if memberId.isEmpty, let instanceId = identity.groupInstanceId { memberId = state.staticMembers[instanceId] ?? "" }
        guard let member = state.members[memberId] else { return .unknownMemberId }
        removeConsumerMember(group, state, member, reason: "member \(memberId) left")
        return .none
    }

    // MARK: Consumer -> classic

    /// Turns a consumer-protocol group whose members all speak the classic protocol back into a
    /// classic group, at generation = group epoch, and rebalances it.
    func convertToClassicGroup(_ group: ClassicGroup, _ state: ConsumerGroupState) {
        group.consumer = nil
        markConsumerGroupChanged(group.groupId)
        group.protocolType = Self.consumerGroupType
        group.generationId = state.groupEpoch
        let members = state.orderedMembers
        // The protocol every member supports, in the first member's order.
        let common = members.first?.classic?.protocols.map(\.name).first { name in
            members.allSatisfy { $0.classic?.protocols.contains { $0.name == name } == true }
        }
        group.protocolName = common
        for member in members {
            member.cancelTimers()
            guard let classic = member.classic else { continue }
            let converted = GroupMember(
                memberId: member.memberId, groupInstanceId: member.instanceId, clientId: member.clientId, clientHost: member.clientHost,
                rebalanceTimeoutMs: classic.rebalanceTimeoutMs, sessionTimeoutMs: classic.sessionTimeoutMs,
                protocolType: Self.consumerGroupType, protocols: classic.protocols)
            converted.assignment = encodeAssignment(member.assigned)
            group.add(converted)
            scheduleSessionExpiry(group, converted)
        }
        transition(group, to: .stable)
        group.computeSubscribedTopics()
        logger.info("consumer group converted back to the classic protocol", metadata: ["group": "\(group.groupId)", "members": "\(members.count)"])
        prepareRebalance(group, reason: "converted from the consumer protocol")
    }
}
