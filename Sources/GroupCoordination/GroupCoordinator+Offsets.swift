public import KafkaWire
import Logging
public import NIOCore

extension GroupCoordinator {
    // MARK: OffsetCommit

    /// OffsetCommit (v2-9). Completes once the records are persisted. Generation -1 with an empty
    /// member id is a "simple" commit, allowed while the group has no members.
    public func handleOffsetCommit(_ request: OffsetCommitRequest, version: Int16, completion: @escaping @Sendable (OffsetCommitResponse) -> Void) {
        withState {
            var created: ClassicGroup?
            func failAll(_ error: KafkaErrorCode) {
                if let created { removeIfVacant(created) }
                let response = Self.commitResponse(request) { _ in error }
                respond { completion(response) }
            }
            if isLoading { return failAll(.coordinatorLoadInProgress) }
            let generationId = request.generationIdOrMemberEpoch
            let instanceId = version >= 7 ? request.groupInstanceId : nil
            let group: ClassicGroup
            if let existing = groups[request.groupId] {
                group = existing
            } else {
                // Without a group only clients not using group management may commit.
                guard generationId < 0 else { return failAll(.illegalGeneration) }
                group = ClassicGroup(groupId: request.groupId)
                groups[request.groupId] = group
                created = group
            }
            if let error = validateOffsetCommit(group, generationId: generationId, memberId: request.memberId, groupInstanceId: instanceId) {
                return failAll(error)
            }
            switch group.state {
            case .empty:
                break
            case .stable, .preparingRebalance:
                // Commits during PreparingRebalance are fine; the heartbeat reports the rebalance.
                if let member = group.members[request.memberId] { scheduleSessionExpiry(group, member) }
            case .completingRebalance:
                return failAll(.rebalanceInProgress)
            case .dead:
                return failAll(.coordinatorNotAvailable)
            }
            commitOffsets(group, request, version: version, completion: completion)
        }
    }

    /// Kafka `validateOffsetCommit`.
    private func validateOffsetCommit(_ group: ClassicGroup, generationId: Int32, memberId: String, groupInstanceId: String?) -> KafkaErrorCode? {
        if group.state == .dead { return .coordinatorNotAvailable }
        if let consumer = group.consumer {
            return validateConsumerOffsetCommit(consumer, memberEpoch: generationId, memberId: memberId)
        }
        if generationId >= 0 || !memberId.isEmpty || groupInstanceId != nil {
            if let error = validateCurrentMember(group, memberId: memberId, groupInstanceId: groupInstanceId) { return error }
            return generationId == group.generationId ? nil : .illegalGeneration
        }
        // Generation -1: admin clients or consumers using assign(); only while nobody is a member.
        return group.state == .empty ? nil : .unknownMemberId
    }

    private func commitOffsets(_ group: ClassicGroup, _ request: OffsetCommitRequest, version: Int16, completion: @escaping @Sendable (OffsetCommitResponse) -> Void) {
        let now = clock.nowMilliseconds()
        // OffsetCommit v2-4 may ask for a per-commit retention (legacy expire timestamp).
        let expireTimestampMs: Int64? = version <= 4 && request.retentionTimeMs >= 0 ? now + request.retentionTimeMs : nil
        var errors: [GroupTopicPartition: KafkaErrorCode] = [:]
        var accepted: [(GroupTopicPartition, CommittedOffset)] = []
        for topic in request.topics {
            for partition in topic.partitions {
                let key = GroupTopicPartition(topic: topic.name, partition: partition.partitionIndex)
                let metadata = partition.committedMetadata ?? ""
                guard metadata.utf8.count <= configuration.offsetMetadataMaxBytes else {
                    errors[key] = .offsetMetadataTooLarge
                    continue
                }
                accepted.append((key, CommittedOffset(
                    offset: partition.committedOffset,
                    leaderEpoch: version >= 6 ? partition.committedLeaderEpoch : -1,
                    metadata: metadata,
                    commitTimestampMs: now,
                    expireTimestampMs: expireTimestampMs)))
            }
        }
        guard !accepted.isEmpty else {
            removeIfVacant(group)
            let response = Self.commitResponse(request) { errors[$0] ?? .none }
            return respond { completion(response) }
        }
        for (key, _) in accepted { group.pendingOffsetCommits[key, default: 0] += 1 }
        let records = accepted.map { key, offset in
            CoordinatorRecord.offsetCommit(
                group: group.groupId, topic: key.topic, partition: key.partition,
                value: OffsetCommitValue(
                    offset: offset.offset, leaderEpoch: offset.leaderEpoch, metadata: offset.metadata,
                    commitTimestamp: offset.commitTimestampMs, expireTimestamp: offset.expireTimestampMs ?? -1))
        }
        let acceptedOffsets = accepted
        let rejected = errors
        persist(records) { [weak self] ok in
            guard let self else { return }
            for (key, _) in acceptedOffsets {
                let left = (group.pendingOffsetCommits[key] ?? 1) - 1
                group.pendingOffsetCommits[key] = left > 0 ? left : nil
            }
            if ok, self.groups[group.groupId] === group, group.state != .dead {
                for (key, offset) in acceptedOffsets { group.offsets[key] = offset }
            } else if !ok {
                self.logger.warning("storing offsets failed", metadata: ["group": "\(group.groupId)"])
                self.removeIfVacant(group)
            }
            let response = Self.commitResponse(request) { rejected[$0] ?? (ok ? .none : .coordinatorNotAvailable) }
            self.respond { completion(response) }
        }
    }

    private static func commitResponse(_ request: OffsetCommitRequest, error: (GroupTopicPartition) -> KafkaErrorCode) -> OffsetCommitResponse {
        OffsetCommitResponse(topics: request.topics.map { topic in
            OffsetCommitResponse.OffsetCommitResponseTopic(name: topic.name, partitions: topic.partitions.map { partition in
                OffsetCommitResponse.OffsetCommitResponsePartition(
                    partitionIndex: partition.partitionIndex,
                    errorCode: error(GroupTopicPartition(topic: topic.name, partition: partition.partitionIndex)).rawValue)
            })
        })
    }

    // MARK: OffsetFetch

    /// OffsetFetch (v1-9; v8+ several groups). Unknown groups and partitions answer offset -1 without
    /// an error; `Topics == nil` (v2+) means every partition with a committed offset. With
    /// `RequireStable` (v7+, KIP-447) a partition whose offset a transaction has written but not
    /// yet decided answers UNSTABLE_OFFSET_COMMIT (offset -1) so the consumer retries.
    public func handleOffsetFetch(_ request: OffsetFetchRequest, version: Int16, completion: @escaping @Sendable (OffsetFetchResponse) -> Void) {
        var response = OffsetFetchResponse()
        let requireStable = version >= 7 && request.requireStable
        func unstable(_ group: String, _ topic: String, _ partition: Int32) -> Bool {
            requireStable && pendingTransactionalOffsets.values.contains { $0[group]?[GroupTopicPartition(topic: topic, partition: partition)] != nil }
        }
        withState {
            if version >= 8 {
                response.groups = request.groups.map { requested in
                    let topics = requested.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
                    let (error, fetched) = fetchOffsets(groupId: requested.groupId, topics: topics)
                    return OffsetFetchResponse.OffsetFetchResponseGroup(
                        groupId: requested.groupId,
                        topics: fetched.map { topic, partitions in
                            OffsetFetchResponse.OffsetFetchResponseTopics(name: topic, partitions: partitions.map { partition, offset in
                                let pending = unstable(requested.groupId, topic, partition)
                                return OffsetFetchResponse.OffsetFetchResponsePartitions(
                                    partitionIndex: partition,
                                    committedOffset: pending ? -1 : offset?.offset ?? -1,
                                    committedLeaderEpoch: pending ? -1 : offset?.leaderEpoch ?? -1,
                                    metadata: pending ? "" : offset?.metadata ?? "",
                                    errorCode: pending ? KafkaErrorCode.unstableOffsetCommit.rawValue : 0)
                            })
                        },
                        errorCode: error.rawValue)
                }
            } else {
                let topics = request.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
                let (error, fetched) = fetchOffsets(groupId: request.groupId, topics: topics)
                // v1 has no group-level error; each partition carries it.
                let partitionError = version < 2 ? error : .none
                response.topics = fetched.map { topic, partitions in
                    OffsetFetchResponse.OffsetFetchResponseTopic(name: topic, partitions: partitions.map { partition, offset in
                        let pending = unstable(request.groupId, topic, partition)
                        return OffsetFetchResponse.OffsetFetchResponsePartition(
                            partitionIndex: partition,
                            committedOffset: pending ? -1 : offset?.offset ?? -1,
                            committedLeaderEpoch: pending ? -1 : offset?.leaderEpoch ?? -1,
                            metadata: pending ? "" : offset?.metadata ?? "",
                            errorCode: pending ? KafkaErrorCode.unstableOffsetCommit.rawValue : partitionError.rawValue)
                    })
                }
                if version >= 2 { response.errorCode = error.rawValue }
            }
        }
        completion(response)
    }

    /// Committed offsets of `groupId` for `topics` (nil = all), grouped by topic in request order.
    private func fetchOffsets(groupId: String, topics: [(String, [Int32])]?) -> (KafkaErrorCode, [(String, [(Int32, CommittedOffset?)])]) {
        let error: KafkaErrorCode = isLoading ? .coordinatorLoadInProgress : .none
        let offsets = isLoading ? [:] : (groups[groupId]?.offsets ?? [:])
        if let topics {
            return (error, topics.map { topic, partitions in
                (topic, partitions.map { ($0, offsets[GroupTopicPartition(topic: topic, partition: $0)]) })
            })
        }
        var byTopic: [String: [(Int32, CommittedOffset?)]] = [:]
        for (key, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            byTopic[key.topic, default: []].append((key.partition, offset))
        }
        return (error, byTopic.keys.sorted().map { ($0, byTopic[$0]!) })
    }

    /// Committed offsets of one group (empty when the group is unknown), for tools.
    public func committedOffsets(group groupId: String) -> [GroupTopicPartition: CommittedOffset] {
        var result: [GroupTopicPartition: CommittedOffset] = [:]
        withState { result = groups[groupId]?.offsets ?? [:] }
        return result
    }

    // MARK: OffsetDelete

    /// OffsetDelete (v0): removes committed offsets of topics no active member subscribes to.
    public func handleOffsetDelete(_ request: OffsetDeleteRequest, version: Int16, completion: @escaping @Sendable (OffsetDeleteResponse) -> Void) {
        withState {
            func fail(_ error: KafkaErrorCode) {
                let response = OffsetDeleteResponse(errorCode: error.rawValue)
                respond { completion(response) }
            }
            if isLoading { return fail(.coordinatorLoadInProgress) }
            guard !request.groupId.isEmpty else { return fail(.invalidGroupId) }
            guard let group = groups[request.groupId] else { return fail(.groupIdNotFound) }
            var errors: [GroupTopicPartition: KafkaErrorCode] = [:]
            var eligible: [GroupTopicPartition] = []
            let requested = request.topics.flatMap { topic in
                topic.partitions.map { GroupTopicPartition(topic: topic.name, partition: $0.partitionIndex) }
            }
            switch group.state {
            case .dead:
                return fail(.groupIdNotFound)
            case .empty:
                eligible = requested
            case .preparingRebalance, .completingRebalance, .stable:
                guard group.isConsumerGroup else { return fail(.nonEmptyGroup) }
                for key in requested {
                    if group.isSubscribed(to: key.topic) {
                        errors[key] = .groupSubscribedToTopic
                    } else {
                        eligible.append(key)
                    }
                }
            }
            let removed = eligible.filter { group.offsets.removeValue(forKey: $0) != nil }
            let response = OffsetDeleteResponse(topics: request.topics.map { topic in
                OffsetDeleteResponse.OffsetDeleteResponseTopic(name: topic.name, partitions: topic.partitions.map { partition in
                    let key = GroupTopicPartition(topic: topic.name, partition: partition.partitionIndex)
                    return OffsetDeleteResponse.OffsetDeleteResponsePartition(
                        partitionIndex: partition.partitionIndex, errorCode: (errors[key] ?? .none).rawValue)
                })
            })
            guard !removed.isEmpty else { return respond { completion(response) } }
            logger.info("offsets deleted", metadata: ["group": "\(group.groupId)", "partitions": "\(removed.count)"])
            persist(removed.map { .offsetCommit(group: group.groupId, topic: $0.topic, partition: $0.partition, value: nil) }) { [weak self] _ in
                self?.respond { completion(response) }
            }
        }
    }

    // MARK: Retention

    func scheduleRetentionCheck() {
        retentionTimer = scheduleLocked(after: configuration.offsetsRetentionCheckIntervalMs) { [weak self] in
            guard let self else { return }
            self.expireOffsetsLocked()
            self.scheduleRetentionCheck()
        }
    }

    /// Removes expired committed offsets (`offsets.retention.minutes`) and drops empty groups left
    /// without offsets, writing tombstones. Runs every `offsetsRetentionCheckIntervalMs` on its own.
    public func purgeExpiredOffsets() {
        withState { expireOffsetsLocked() }
    }

    private func expireOffsetsLocked() {
        let now = clock.nowMilliseconds()
        let retentionMs = configuration.offsetsRetentionMs
        var records: [CoordinatorRecord] = []
        for group in groups.values.sorted(by: { $0.groupId < $1.groupId }) {
            // Kafka `GroupMetadata.removeExpiredOffsets`.
            let expiredKeys: [GroupTopicPartition]
            func expired(base: (CommittedOffset) -> Int64, keeping subscribed: Set<String> = []) -> [GroupTopicPartition] {
                group.offsets.filter { key, offset in
                    guard !subscribed.contains(key.topic), group.pendingOffsetCommits[key] == nil else { return false }
                    if let expire = offset.expireTimestampMs { return now >= expire }
                    return now - base(offset) >= retentionMs
                }.map(\.key)
            }
            switch (group.protocolType, group.state) {
            case (_, _) where !(group.consumer?.members.isEmpty ?? true):
                // A live consumer-protocol group: offsets of topics nobody subscribes to expire.
                expiredKeys = expired(base: { $0.commitTimestampMs }, keeping: group.consumer!.subscribedTopicNames)
            case (.some, .empty):
                expiredKeys = expired { group.stateTimestampMs ?? $0.commitTimestampMs }
            case (.some("consumer"), .stable) where group.subscribedTopics != nil:
                expiredKeys = expired(base: { $0.commitTimestampMs }, keeping: group.subscribedTopics ?? [])
            case (.none, _):
                expiredKeys = expired { $0.commitTimestampMs }
            default:
                expiredKeys = []
            }
            for key in expiredKeys.sorted() {
                group.offsets[key] = nil
                records.append(.offsetCommit(group: group.groupId, topic: key.topic, partition: key.partition, value: nil))
            }
            if group.isVacant {
                transition(group, to: .dead)
                groups[group.groupId] = nil
                records.append(.groupMetadata(group: group.groupId, value: nil))
                logger.info("group expired", metadata: ["group": "\(group.groupId)"])
            }
            if !expiredKeys.isEmpty {
                logger.info("offsets expired", metadata: ["group": "\(group.groupId)", "partitions": "\(expiredKeys.count)"])
            }
        }
        if !records.isEmpty {
            persist(records) { _ in }
        }
    }

    // MARK: Load

    /// Replays `__consumer_offsets` (in log order; last write wins, a nil value deletes) and replaces
    /// all groups with the result. Groups stored with members come back Stable and their members must
    /// heartbeat within their session timeout; groups with offsets only come back Empty; KIP-848
    /// groups come back with their members, epochs and assignments (ConsumerPersistence). Ends
    /// `beginLoading()`. Undecodable records are skipped with a warning.
    public func load(_ records: [(key: ByteBuffer, value: ByteBuffer?)]) {
        var offsets: [String: [GroupTopicPartition: CommittedOffset]] = [:]
        var metadata: [String: GroupMetadataValue] = [:]
        var consumerImages: [String: [ConsumerRecordSlot: ByteBuffer]] = [:]
        var skipped = 0
        for record in records {
            do {
                switch try CoordinatorRecord.decodeKey(record.key) {
                case .offsetCommit(let key):
                    let tp = GroupTopicPartition(topic: key.topic, partition: key.partition)
                    if let value = record.value {
                        let decoded = try CoordinatorRecord.decodeOffsetCommitValue(value)
                        offsets[key.group, default: [:]][tp] = CommittedOffset(
                            offset: decoded.offset, leaderEpoch: decoded.leaderEpoch, metadata: decoded.metadata,
                            commitTimestampMs: decoded.commitTimestamp,
                            expireTimestampMs: decoded.expireTimestamp >= 0 ? decoded.expireTimestamp : nil)
                    } else {
                        offsets[key.group]?[tp] = nil
                    }
                case .groupMetadata(let key):
                    if let value = record.value {
                        metadata[key.group] = try CoordinatorRecord.decodeGroupMetadataValue(value)
                    } else {
                        metadata[key.group] = nil
                    }
                case .consumerGroup(let key):
                    let slot = ConsumerRecordSlot(kind: key.kind, memberId: key.memberId)
                    if let value = record.value {
                        consumerImages[key.groupId, default: [:]][slot] = value
                    } else {
                        consumerImages[key.groupId]?[slot] = nil
                    }
                case .other:
                    skipped += 1
                }
            } catch {
                skipped += 1
                logger.warning("skipping undecodable __consumer_offsets record", metadata: ["error": "\(error)"])
            }
        }
        withState {
            for group in groups.values { discardTimers(group) }
            groups = [:]
            // A group with consumer-group records is restored from them (restoreConsumerGroupsLocked).
            let consumerGroupIds = Set(consumerImages.filter { $0.value[.metadata] != nil }.keys)
            for groupId in Set(offsets.keys).union(metadata.keys).sorted() {
                let groupOffsets = offsets[groupId] ?? [:]
                let value = consumerGroupIds.contains(groupId) ? nil : metadata[groupId]
                guard value != nil || !groupOffsets.isEmpty else { continue }
                let group = ClassicGroup(groupId: groupId)
                group.offsets = groupOffsets
                if let value { restore(group, from: value) }
                groups[groupId] = group
            }
            let consumerGroups = restoreConsumerGroupsLocked(consumerImages.filter { !$0.value.isEmpty })
            isLoading = false
            logger.info(
                "groups loaded",
                metadata: ["groups": "\(groups.count)", "consumer-groups": "\(consumerGroups)", "records": "\(records.count)", "skipped": "\(skipped)"])
        }
    }

    private func restore(_ group: ClassicGroup, from value: GroupMetadataValue) {
        group.generationId = value.generation
        group.protocolType = value.protocolType.isEmpty ? nil : value.protocolType
        group.protocolName = value.protocol
        group.stateTimestampMs = value.currentStateTimestamp >= 0 ? value.currentStateTimestamp : nil
        for stored in value.members {
            let member = GroupMember(
                memberId: stored.memberId, groupInstanceId: stored.groupInstanceId,
                clientId: stored.clientId, clientHost: stored.clientHost,
                rebalanceTimeoutMs: stored.rebalanceTimeout, sessionTimeoutMs: stored.sessionTimeout,
                protocolType: value.protocolType,
                protocols: [MemberProtocol(name: value.protocol ?? "", metadata: stored.subscription)])
            member.assignment = stored.assignment
            group.add(member)
        }
        group.leaderId = value.leader.flatMap { group.members[$0] != nil ? $0 : nil } ?? group.orderedMembers.first?.memberId
        if group.members.isEmpty {
            group.state = .empty
            group.protocolName = nil
        } else {
            group.state = .stable
            group.computeSubscribedTopics()
            for member in group.orderedMembers { scheduleSessionExpiry(group, member) }
        }
    }

    private func discardTimers(_ group: ClassicGroup) {
        group.rebalanceTimer?.cancel()
        group.pendingSyncTimer?.cancel()
        for timer in group.pendingMembers.values { timer.cancel() }
        for member in group.orderedMembers { member.sessionTimer?.cancel() }
    }
}
