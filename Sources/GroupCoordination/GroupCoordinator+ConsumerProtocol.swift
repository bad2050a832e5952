public import KafkaWire
import Logging

/// KIP-848 consumer groups: ConsumerGroupHeartbeat and ConsumerGroupDescribe, with server-side
/// assignment (`uniform`, `range`) and Kafka's incremental reconciliation: a member moves to a new
/// assignment epoch only after revoking the partitions it loses, and a partition reaches its new
/// owner only after the previous owner acknowledged the revocation (its heartbeat's owned
/// partitions no longer list it).
///
/// Membership, epochs and assignments are persisted in `__consumer_offsets` with Kafka's
/// consumer-group records (GroupCoordinator+ConsumerPersistence), so members continue after a
/// restart; committed offsets are persisted as for classic groups.
extension GroupCoordinator {
    static let leaveEpoch: Int32 = -1
    static let leaveStaticEpoch: Int32 = -2
    static let consumerGroupType = "consumer"

    public func handleConsumerGroupHeartbeat(
        _ request: ConsumerGroupHeartbeatRequest, client: GroupClientInfo,
        completion: @escaping @Sendable (ConsumerGroupHeartbeatResponse) -> Void
    ) {
        withState {
            let response = consumerHeartbeatLocked(request, client: client)
            if !request.memberId.isEmpty { markConsumerGroupChanged(request.groupId, member: request.memberId) }
            if let memberId = response.memberId, !memberId.isEmpty { markConsumerGroupChanged(request.groupId, member: memberId) }
            // As Kafka, answer once the membership change is durable.
            let records = consumerRecordsLocked(for: request.groupId)
            if records.isEmpty {
                respond { completion(response) }
            } else {
                let groupId = request.groupId
                persist(records) { [weak self] ok in
                    guard let self else { return }
                    self.consumerRecordsWritten(ok, groups: [groupId])
                    self.respond { completion(response) }
                }
            }
        }
    }

    private func failure(_ code: KafkaErrorCode, _ message: String? = nil) -> ConsumerGroupHeartbeatResponse {
        ConsumerGroupHeartbeatResponse(errorCode: code.rawValue, errorMessage: message ?? code.name)
    }

    private func consumerHeartbeatLocked(_ request: ConsumerGroupHeartbeatRequest, client: GroupClientInfo) -> ConsumerGroupHeartbeatResponse {
        if isLoading { return failure(.coordinatorLoadInProgress) }
        let epoch = request.memberEpoch
        // Kafka `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
        guard !request.groupId.isEmpty else { return failure(.invalidRequest, "GroupId can't be empty.") }
        if epoch == 0 {
            guard request.rebalanceTimeoutMs != -1 else { return failure(.invalidRequest, "RebalanceTimeoutMs must be provided in first request.") }
            guard request.topicPartitions?.isEmpty ?? true else { return failure(.invalidRequest, "TopicPartitions must be empty when (re-)joining.") }
            guard request.subscribedTopicNames != nil || request.subscribedTopicRegex != nil else {
                return failure(.invalidRequest, "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
            }
        } else if epoch > 0 || epoch == Self.leaveEpoch || epoch == Self.leaveStaticEpoch {
            guard !request.memberId.isEmpty else { return failure(.invalidRequest, "MemberId can't be empty.") }
            if epoch == Self.leaveStaticEpoch, request.instanceId == nil {
                return failure(.invalidRequest, "InstanceId can't be null.")
            }
        } else {
            return failure(.invalidRequest, "MemberEpoch is invalid.")
        }
        if let assignor = request.serverAssignor, !configuration.consumerAssignors.contains(where: { ConsumerAssignor.named($0) == ConsumerAssignor.named(assignor) }) || ConsumerAssignor.named(assignor) == nil {
            return failure(.unsupportedAssignor, "ServerAssignor \(assignor) is not supported. Supported assignors: \(configuration.consumerAssignors.joined(separator: ", ")).")
        }

        // The group: new, an empty classic group taken over, or an existing consumer group.
        let group: ClassicGroup
        if let existing = groups[request.groupId] {
            if existing.consumer == nil {
                if epoch != 0 { return failure(.unknownMemberId) }
                if existing.members.isEmpty, existing.state == .empty, existing.pendingMembers.isEmpty {
                    existing.consumer = ConsumerGroupState()
                    existing.protocolType = Self.consumerGroupType
                    existing.protocolName = nil
                } else if let error = convertToConsumerGroup(existing) {
                    return failure(error, "Group \(request.groupId) is a classic group that cannot be converted now.")
                }
            }
            group = existing
        } else {
            guard epoch == 0 else { return failure(.unknownMemberId) }
            group = ClassicGroup(groupId: request.groupId)
            group.protocolType = Self.consumerGroupType
            group.consumer = ConsumerGroupState()
            groups[request.groupId] = group
            logger.info("consumer group created", metadata: ["group": "\(request.groupId)"])
        }
        let state = group.consumer!

        // Leaving.
        if epoch == Self.leaveEpoch || epoch == Self.leaveStaticEpoch {
            guard let member = state.members[request.memberId] else { return failure(.unknownMemberId) }
            if epoch == Self.leaveStaticEpoch, member.instanceId != nil {
                // Temporary leave: keep the assignment for the instance's return until the session ends.
                member.hasLeftTemporarily = true
                scheduleConsumerSessionExpiry(group, state, member)
                logger.info("static member left temporarily", metadata: ["group": "\(group.groupId)", "member": "\(member.memberId)"])
            } else {
                removeConsumerMember(group, state, member, reason: "left the group")
            }
            return ConsumerGroupHeartbeatResponse(memberId: request.memberId, memberEpoch: epoch, heartbeatIntervalMs: 0)
        }

        let member: ConsumerMember
        var joined = false
        if epoch == 0 {
            if let instanceId = request.instanceId, let existingId = state.staticMembers[instanceId], let existing = state.members[existingId] {
                guard existing.hasLeftTemporarily || existing.memberId == request.memberId else {
                    return failure(.unreleasedInstanceId, "Static member \(instanceId) is still active as \(existingId).")
                }
                if existing.hasLeftTemporarily {
                    // The instance returns under a new member id with its previous assignment.
                    let newId = request.memberId.isEmpty || state.members[request.memberId] != nil ? makeConsumerMemberId() : request.memberId
                    existing.cancelTimers()
                    state.members[existingId] = nil
                    existing.memberId = newId
                    existing.hasLeftTemporarily = false
                    state.members[newId] = existing
                    state.staticMembers[instanceId] = newId
                    if let target = state.targetAssignment.removeValue(forKey: existingId) { state.targetAssignment[newId] = target }
                    markConsumerGroupChanged(group.groupId)
                    member = existing
                    joined = true
                    logger.info("static member rejoined", metadata: ["group": "\(group.groupId)", "member": "\(newId)", "instance": "\(instanceId)"])
                } else {
                    // Same member re-joining with epoch 0: start over.
                    removeConsumerMember(group, state, existing, reason: "rejoined", rejoining: true)
                    member = addConsumerMember(group, state, memberId: request.memberId, client: client)
                    joined = true
                }
            } else {
                if let existing = state.members[request.memberId] {
                    removeConsumerMember(group, state, existing, reason: "rejoined", rejoining: true)
                }
                if let maxGroupSize = configuration.maxGroupSize, state.members.count >= maxGroupSize {
                    return failure(.groupMaxSizeReached)
                }
                member = addConsumerMember(group, state, memberId: request.memberId.isEmpty ? makeConsumerMemberId() : request.memberId, client: client)
                joined = true
            }
        } else {
            guard let existing = state.members[request.memberId] else { return failure(.unknownMemberId) }
            if existing.hasLeftTemporarily { return failure(.fencedMemberEpoch, "The static member left the group.") }
            if epoch != existing.memberEpoch {
                // Kafka accepts the previous epoch when the member owns nothing beyond its assignment
                // (its response with the new epoch may have been lost).
                let owned = request.topicPartitions.map(Self.partitionSet)
                let acceptable = epoch == existing.previousMemberEpoch && owned.map { $0.isSubset(of: existing.assigned) } == true
                guard acceptable else {
                    return failure(.fencedMemberEpoch, "The member epoch \(epoch) is fenced; the current epoch is \(existing.memberEpoch).")
                }
            }
            member = existing
        }

        // Member metadata; changes of subscription or assignor bump the group epoch.
        member.clientId = client.clientId
        member.clientHost = client.clientHost
        if let rack = request.rackId { member.rackId = rack }
        if let instanceId = request.instanceId, member.instanceId == nil {
            member.instanceId = instanceId
            state.staticMembers[instanceId] = member.memberId
        }
        if request.rebalanceTimeoutMs > 0 { member.rebalanceTimeoutMs = request.rebalanceTimeoutMs }
        var bump = joined && state.targetAssignment[member.memberId] == nil
        if let names = request.subscribedTopicNames, Set(names) != Set(member.subscribedTopicNames) {
            member.subscribedTopicNames = Array(Set(names)).sorted()
            bump = true
        }
        if let pattern = request.subscribedTopicRegex, pattern != (member.subscribedTopicRegex ?? "") {
            if !pattern.isEmpty, (try? Regex(pattern)) == nil {
                if joined { removeConsumerMember(group, state, member, reason: "invalid regex") }
                return failure(.invalidRegularExpression, "SubscribedTopicRegex \(pattern) is not a valid regular expression.")
            }
            member.subscribedTopicRegex = pattern.isEmpty ? nil : pattern
            bump = true
        }
        if let assignor = request.serverAssignor, assignor != member.serverAssignor {
            member.serverAssignor = assignor
            bump = true
        }
        // Topic metadata of the subscriptions (created, deleted, grown topics bump the epoch too).
        let metadata = currentSubscriptionMetadata(state)
        if metadata != state.subscriptionMetadata {
            state.subscriptionMetadata = metadata
            bump = true
        }
        if bump { state.groupEpoch += 1 }
        if state.groupEpoch > state.assignmentEpoch { computeTargetAssignment(group, state) }

        let before = member.assigned
        reconcile(group, state, member, owned: request.topicPartitions)
        scheduleConsumerSessionExpiry(group, state, member)

        var response = ConsumerGroupHeartbeatResponse(
            memberId: member.memberId, memberEpoch: member.memberEpoch,
            heartbeatIntervalMs: configuration.consumerHeartbeatIntervalMs)
        if joined || member.assigned != before || request.topicPartitions != nil {
            response.assignment = .init(topicPartitions: Self.topicPartitions(member.assigned))
        }
        return response
    }

    // MARK: Members

    func makeConsumerMemberId() -> String {
        // A bare UUID (KIP-1082's client-generated form is accepted as sent).
        String(makeMemberId(prefix: "x").dropFirst(2))
    }

    func addConsumerMember(_ group: ClassicGroup, _ state: ConsumerGroupState, memberId: String, client: GroupClientInfo) -> ConsumerMember {
        let member = ConsumerMember(memberId: memberId, clientId: client.clientId, clientHost: client.clientHost)
        state.members[memberId] = member
        logger.info("consumer member joined", metadata: ["group": "\(group.groupId)", "member": "\(memberId)"])
        return member
    }

    /// Fences `member`: its partitions become free, the group epoch is bumped.
    func removeConsumerMember(_ group: ClassicGroup, _ state: ConsumerGroupState, _ member: ConsumerMember, reason: String, rejoining: Bool = false) {
        member.cancelTimers()
        markConsumerGroupChanged(group.groupId)
        state.members[member.memberId] = nil
        state.targetAssignment[member.memberId] = nil
        if let instanceId = member.instanceId, state.staticMembers[instanceId] == member.memberId {
            state.staticMembers[instanceId] = nil
        }
        state.groupEpoch += 1
        if state.members.isEmpty {
            group.stateTimestampMs = clock.nowMilliseconds()
        } else if !rejoining, state.members.values.allSatisfy({ $0.classic != nil }) {
            convertToClassicGroup(group, state)
        }
        logger.info("consumer member removed", metadata: ["group": "\(group.groupId)", "member": "\(member.memberId)", "reason": "\(reason)"])
    }

    func scheduleConsumerSessionExpiry(_ group: ClassicGroup, _ state: ConsumerGroupState, _ member: ConsumerMember) {
        member.sessionTimer?.cancel()
        let token = nextToken()
        member.sessionToken = token
        let timeoutMs = member.classic.map { Int64($0.sessionTimeoutMs) } ?? Int64(configuration.consumerSessionTimeoutMs)
        member.sessionTimer = scheduleLocked(after: timeoutMs) { [weak self, weak group, weak state, weak member] in
            guard let self, let group, let state, let member, self.groups[group.groupId] === group, group.consumer === state,
                  state.members[member.memberId] === member, member.sessionToken == token else { return }
            self.removeConsumerMember(group, state, member, reason: "session timeout")
        }
    }

    func scheduleRevocationTimeout(_ group: ClassicGroup, _ state: ConsumerGroupState, _ member: ConsumerMember) {
        member.revocationTimer?.cancel()
        let token = nextToken()
        member.revocationToken = token
        member.revocationTimer = scheduleLocked(after: Int64(member.rebalanceTimeoutMs)) { [weak self, weak group, weak state, weak member] in
            guard let self, let group, let state, let member, self.groups[group.groupId] === group, group.consumer === state,
                  state.members[member.memberId] === member, member.revocationToken == token,
                  member.state == .unrevokedPartitions else { return }
            self.removeConsumerMember(group, state, member, reason: "did not revoke partitions within the rebalance timeout")
        }
    }

    // MARK: Assignment

    /// The topics `member` subscribes to: its names plus the non-internal topics its regex matches
    /// (the whole name, as Kafka's RE2J `matches`).
    func memberTopics(_ member: ConsumerMember) -> [String] {
        guard let pattern = member.subscribedTopicRegex, let regex = try? Regex(pattern) else { return member.subscribedTopicNames }
        var names = Set(member.subscribedTopicNames)
        for name in topicMetadata?.allTopicNames() ?? [] where !name.hasPrefix("__") {
            if (try? regex.wholeMatch(in: name)) != nil { names.insert(name) }
        }
        return names.sorted()
    }

    func currentSubscriptionMetadata(_ state: ConsumerGroupState) -> [String: GroupTopicInfo] {
        var result: [String: GroupTopicInfo] = [:]
        for name in Set(state.members.values.flatMap(memberTopics)) {
            if let info = topicMetadata?.topic(named: name) { result[name] = info }
        }
        return result
    }

    /// The assignor the members ask for (the most common choice, ties by name), else the default.
    func selectAssignor(_ state: ConsumerGroupState) -> ConsumerAssignor {
        var votes: [String: Int] = [:]
        for member in state.members.values {
            if let name = member.serverAssignor, let assignor = ConsumerAssignor.named(name) { votes[assignor.rawValue, default: 0] += 1 }
        }
        if let best = votes.max(by: { $0.value == $1.value ? $0.key > $1.key : $0.value < $1.value }) {
            return ConsumerAssignor(rawValue: best.key)!
        }
        return ConsumerAssignor.named(configuration.consumerAssignors.first ?? "uniform") ?? .uniform
    }

    func computeTargetAssignment(_ group: ClassicGroup, _ state: ConsumerGroupState) {
        let assignor = selectAssignor(state)
        let members = state.members.values.map { member in
            AssignorMember(
                memberId: member.memberId,
                topics: memberTopics(member).compactMap { state.subscriptionMetadata[$0] },
                current: state.targetAssignment[member.memberId] ?? [])
        }
        state.targetAssignment = assignor.assign(members)
        markConsumerGroupChanged(group.groupId)
        state.assignmentEpoch = state.groupEpoch
        state.assignorName = assignor.rawValue
        logger.debug("target assignment computed", metadata: ["group": "\(group.groupId)", "epoch": "\(state.groupEpoch)", "assignor": "\(assignor.rawValue)"])
    }

    /// Kafka `CurrentAssignmentBuilder`: moves `member` towards its target assignment.
    func reconcile(_ group: ClassicGroup, _ state: ConsumerGroupState, _ member: ConsumerMember, owned: [ConsumerGroupHeartbeatRequest.TopicPartitions]?) {
        switch member.state {
        case .stable:
            if member.memberEpoch != state.assignmentEpoch { computeNextAssignment(group, state, member) }
        case .unrevokedPartitions:
            // Revoked once the member reports owning none of the partitions it had to give up.
            if let owned, Self.partitionSet(owned).isDisjoint(with: member.pendingRevocation) {
                member.pendingRevocation = []
                member.revocationTimer?.cancel()
                member.revocationTimer = nil
                computeNextAssignment(group, state, member)
            }
        case .unreleasedPartitions:
            computeNextAssignment(group, state, member)
        }
    }

    func computeNextAssignment(_ group: ClassicGroup, _ state: ConsumerGroupState, _ member: ConsumerMember) {
        let target = state.targetAssignment[member.memberId] ?? []
        let revoke = member.assigned.subtracting(target)
        if !revoke.isEmpty {
            member.assigned.formIntersection(target)
            member.pendingRevocation = revoke
            member.state = .unrevokedPartitions
            scheduleRevocationTimeout(group, state, member)
            return
        }
        let wanted = target.subtracting(member.assigned)
        let others = state.members.values.filter { $0 !== member }
        let free = wanted.filter { tp in !others.contains { $0.assigned.contains(tp) || $0.pendingRevocation.contains(tp) } }
        member.assigned.formUnion(free)
        if member.memberEpoch != state.assignmentEpoch {
            member.previousMemberEpoch = member.memberEpoch
            member.memberEpoch = state.assignmentEpoch
        }
        member.state = free.count == wanted.count ? .stable : .unreleasedPartitions
    }

    static func partitionSet(_ partitions: [ConsumerGroupHeartbeatRequest.TopicPartitions]) -> Set<TopicIdPartition> {
        var result: Set<TopicIdPartition> = []
        for topic in partitions {
            for p in topic.partitions { result.insert(TopicIdPartition(topicId: topic.topicId, partition: p)) }
        }
        return result
    }

    static func topicPartitions(_ set: Set<TopicIdPartition>) -> [ConsumerGroupHeartbeatResponse.TopicPartitions] {
        Dictionary(grouping: set, by: \.topicId)
            .map { ConsumerGroupHeartbeatResponse.TopicPartitions(topicId: $0.key, partitions: $0.value.map(\.partition).sorted()) }
            .sorted { $0.topicId < $1.topicId }
    }

    /// OffsetCommit validation for consumer-protocol groups (Kafka `ConsumerGroup.validateOffsetCommit`):
    /// the member must exist and send its current epoch (STALE_MEMBER_EPOCH otherwise). Commits
    /// without a member id are allowed only while the group has no members.
    func validateConsumerOffsetCommit(_ state: ConsumerGroupState, memberEpoch: Int32, memberId: String) -> KafkaErrorCode? {
        if memberEpoch < 0 && memberId.isEmpty {
            return state.members.isEmpty ? nil : .unknownMemberId
        }
        guard let member = state.members[memberId] else { return .unknownMemberId }
        guard memberEpoch == member.memberEpoch else { return member.classic != nil ? .illegalGeneration : .staleMemberEpoch }
        return nil
    }

    // MARK: ConsumerGroupDescribe

    public func handleConsumerGroupDescribe(_ request: ConsumerGroupDescribeRequest, completion: @escaping @Sendable (ConsumerGroupDescribeResponse) -> Void) {
        var response = ConsumerGroupDescribeResponse()
        withState {
            let operations = request.includeAuthorizedOperations ? Self.groupAuthorizedOperations : Int32.min
            response.groups = request.groupIds.map { groupId in
                var described = ConsumerGroupDescribeResponse.DescribedGroup(groupId: groupId, authorizedOperations: operations)
                if isLoading {
                    described.errorCode = KafkaErrorCode.coordinatorLoadInProgress.rawValue
                    return described
                }
                guard let group = groups[groupId] else {
                    described.errorCode = KafkaErrorCode.groupIdNotFound.rawValue
                    described.errorMessage = "Group \(groupId) not found."
                    return described
                }
                guard let state = group.consumer else {
                    described.errorCode = KafkaErrorCode.groupIdNotFound.rawValue
                    described.errorMessage = "Group \(groupId) is not a consumer group."
                    return described
                }
                described.groupState = state.stateName
                described.groupEpoch = state.groupEpoch
                described.assignmentEpoch = state.assignmentEpoch
                described.assignorName = state.assignorName.isEmpty ? (configuration.consumerAssignors.first ?? "uniform") : state.assignorName
                described.members = state.orderedMembers.map { member in
                    ConsumerGroupDescribeResponse.Member(
                        memberId: member.memberId, instanceId: member.instanceId, rackId: member.rackId,
                        memberEpoch: member.memberEpoch, clientId: member.clientId, clientHost: member.clientHost,
                        subscribedTopicNames: member.subscribedTopicNames, subscribedTopicRegex: member.subscribedTopicRegex,
                        assignment: describeAssignment(member.assigned),
                        targetAssignment: describeAssignment(state.targetAssignment[member.memberId] ?? []))
                }
                return described
            }
        }
        completion(response)
    }

    private func describeAssignment(_ set: Set<TopicIdPartition>) -> ConsumerGroupDescribeResponse.Assignment {
        .init(topicPartitions: Dictionary(grouping: set, by: \.topicId).map { id, partitions in
            ConsumerGroupDescribeResponse.TopicPartitions(
                topicId: id, topicName: topicMetadata?.topic(id: id)?.name ?? "",
                partitions: partitions.map(\.partition).sorted())
        }.sorted { $0.topicName < $1.topicName })
    }
}
