import CommitLog
import Dispatch
import GroupCoordination
import KafkaWire
import Logging
import NIOCore
import RecordFormat
import Security
import Synchronization

/// Share-group settings (KIP-932) with Kafka's names, defaults and bounds.
public struct ShareGroupSettings: Sendable, Equatable {
    public var recordLockDurationMs: Int64 = 30_000
    public var minRecordLockDurationMs: Int64 = 15_000
    public var maxRecordLockDurationMs: Int64 = 60_000
    public var deliveryCountLimit: Int16 = 5
    public var partitionMaxRecordLocks = 2000
    public var maxSize = 200
    public var maxGroups = 10
    public var sessionTimeoutMs: Int64 = 45_000
    public var heartbeatIntervalMs: Int32 = 5000
    public var maxShareSessions = 2000
    /// `share.coordinator.state.topic.num.partitions` (50).
    public var stateTopicPartitions: Int32 = 50

    public init() {}

    static let keys: Set<String> = [
        "group.share.record.lock.duration.ms", "group.share.min.record.lock.duration.ms", "group.share.max.record.lock.duration.ms",
        "group.share.delivery.count.limit", "group.share.partition.max.record.locks", "group.share.max.size", "group.share.max.groups",
        "group.share.session.timeout.ms", "group.share.heartbeat.interval.ms", "group.share.max.share.sessions",
        "share.coordinator.state.topic.num.partitions",
    ]

    mutating func set(_ key: String, _ value: String) throws(ConfigurationError) {
        guard let number = Int64(value.filter { $0 != " " }) else {
            throw ConfigurationError("invalid value '\(value)' for \(key): expected an integer")
        }
        func bounded(_ range: ClosedRange<Int64>) throws(ConfigurationError) -> Int64 {
            guard range.contains(number) else { throw ConfigurationError("\(key) must be in \(range.lowerBound)...\(range.upperBound)") }
            return number
        }
        switch key {
        case "group.share.record.lock.duration.ms": recordLockDurationMs = try bounded(1000...3_600_000)
        case "group.share.min.record.lock.duration.ms": minRecordLockDurationMs = try bounded(1000...3_600_000)
        case "group.share.max.record.lock.duration.ms": maxRecordLockDurationMs = try bounded(1000...3_600_000)
        case "group.share.delivery.count.limit": deliveryCountLimit = Int16(try bounded(2...10))
        case "group.share.partition.max.record.locks": partitionMaxRecordLocks = Int(try bounded(100...10_000))
        case "group.share.max.size": maxSize = Int(try bounded(1...1000))
        case "group.share.max.groups": maxGroups = Int(try bounded(1...100))
        case "group.share.session.timeout.ms": sessionTimeoutMs = try bounded(1...3_600_000)
        case "group.share.heartbeat.interval.ms": heartbeatIntervalMs = Int32(try bounded(1...3_600_000))
        case "group.share.max.share.sessions": maxShareSessions = Int(try bounded(1...100_000))
        case "share.coordinator.state.topic.num.partitions": stateTopicPartitions = Int32(try bounded(1...1000))
        default: break
        }
    }

    /// Kafka's cross-checks (the lock duration inside its min/max).
    func validate() throws(ConfigurationError) {
        guard minRecordLockDurationMs <= maxRecordLockDurationMs,
            (minRecordLockDurationMs...maxRecordLockDurationMs).contains(recordLockDurationMs)
        else {
            throw ConfigurationError(
                "group.share.record.lock.duration.ms must be between group.share.min.record.lock.duration.ms and group.share.max.record.lock.duration.ms")
        }
    }

    var coordinatorConfiguration: ShareGroupConfiguration {
        var c = ShareGroupConfiguration()
        c.limits = SharePartition.Limits(
            recordLockDurationMs: recordLockDurationMs, deliveryCountLimit: deliveryCountLimit, maxRecordLocks: partitionMaxRecordLocks)
        c.maxGroupSize = maxSize
        c.maxGroups = maxGroups
        c.sessionTimeoutMs = sessionTimeoutMs
        c.heartbeatIntervalMs = heartbeatIntervalMs
        c.maxShareSessions = maxShareSessions
        return c
    }
}

/// The share-group coordinator with what the broker adds: the queue ShareFetch reads the log on
/// (never an event loop), and ordered persistence of share-partition state to `__share_group_state`.
public final class ShareServices: Sendable {
    static let topicName = "__share_group_state"
    public let coordinator: ShareGroupCoordinator
    let queue = DispatchQueue(label: "petrel-share-fetch")
    /// Held from taking the dirty snapshots to submitting their appends, so a share-partition's
    /// snapshots reach the log in the order they were taken.
    let persistLock = Mutex(())

    init(settings: ShareGroupSettings, logger: Logger) {
        coordinator = ShareGroupCoordinator(configuration: settings.coordinatorConfiguration, clock: SystemCoordinatorClock(), logger: logger)
    }
}

/// A ShareFetch waiting for records, lock expiries or its MaxWaitMs.
private final class ParkedShareFetch: Sendable {
    struct State {
        var done = false
        var waiterId: UInt64?
        var timerAt: Int64 = .max
    }
    let state = Mutex(State())
}

extension Broker {
    @discardableResult
    func ensureShareStateTopic() throws(TopicError) -> Topic {
        try ensureInternalTopic(ShareServices.topicName, partitions: configuration.shareGroups.stateTopicPartitions)
    }

    /// Appends the changed share-partition snapshots; `completion(true)` once durable (at once if
    /// nothing changed).
    func persistShareState(completion: @escaping @Sendable (Bool) -> Void) {
        shares.persistLock.withLock { _ in
            let deleted = shares.coordinator.takeDeletedKeys()
            let snapshots = shares.coordinator.takeDirtySnapshots()
            guard !snapshots.isEmpty || !deleted.isEmpty else { return completion(true) }
            let topic: Topic
            do { topic = try ensureShareStateTopic() } catch {
                logger.error("cannot create \(ShareServices.topicName)", metadata: ["error": "\(error)"])
                return completion(false)
            }
            var builders: [Int32: RecordBatchBuilder] = [:]
            let now = clock.wallMilliseconds()
            // Tombstones first: a share-partition deleted and then created again ends with its snapshot.
            for key in deleted {
                let partition = ShareStateRecord.statePartition(for: key, partitionCount: Int32(topic.partitions.count))
                builders[partition, default: RecordBatchBuilder()].append(
                    key: Array(buffer: ShareStateRecord.encodeTombstoneKey(key)), value: nil, headers: [], timestamp: now)
            }
            for snapshot in snapshots {
                let partition = ShareStateRecord.statePartition(for: snapshot.key, partitionCount: Int32(topic.partitions.count))
                let (key, value) = ShareStateRecord.encode(snapshot, writeTimestamp: now)
                builders[partition, default: RecordBatchBuilder()].append(
                    key: Array(buffer: key), value: Array(buffer: value), headers: [], timestamp: now)
            }
            var appends: [(PartitionLog, RecordBatchBuilder)] = []
            for (partition, builder) in builders {
                guard let log = topic.partition(partition) else { return completion(false) }
                appends.append((log, builder))
            }
            let remaining = Mutex((count: appends.count, ok: true))
            for (log, builder) in appends {
                logManager.appender.append(builder.build(), to: log) { result in
                    let done: (Bool, Bool) = remaining.withLock { state in
                        if case .failure = result { state.ok = false }
                        state.count -= 1
                        return (state.count == 0, state.ok)
                    }
                    if done.0 { completion(done.1) }
                }
            }
        }
    }

    /// Replays `__share_group_state` at start: the last snapshot of each share-partition.
    func loadShareState() throws {
        guard let topic = topics.topic(named: ShareServices.topicName) else { return }
        var decoded: [ShareStateRecord.Decoded] = []
        for log in topic.partitions {
            try Self.replay(log) { header, record in
                guard !header.isControl, let key = record.key else { return }
                do {
                    if let entry = try ShareStateRecord.decode(key: key, value: record.value) { decoded.append(entry) }
                } catch {
                    logger.warning("skipping an undecodable \(ShareServices.topicName) record", metadata: ["error": "\(error)"])
                }
            }
        }
        let snapshots = ShareStateRecord.replay(decoded)
        shares.coordinator.load(snapshots)
        logger.info("loaded share-partition states", metadata: ["records": "\(decoded.count)", "share-partitions": "\(snapshots.count)"])
    }

    /// Drops silent share-group members every second (their records go back to the group).
    func startShareGroupTimer() {
        shares.queue.asyncAfter(deadline: .now() + .seconds(1)) { [weak self] in
            guard let self, !self.isShuttingDown.load(ordering: .acquiring) else { return }
            self.shares.coordinator.expireMembers()
            self.persistShareState { _ in }
            self.startShareGroupTimer()
        }
    }

    /// ConfigResource type GROUP (KIP-848 / KIP-932 group configs).
    static let groupConfigResourceType: Int8 = 32

    /// IncrementalAlterConfigs on a GROUP: `share.auto.offset.reset` (`latest`, Kafka's default, or
    /// `earliest`) decides where a share group starts reading a partition it has no state for.
    /// Kept in memory (the share-partition states themselves are persisted).
    func alterShareGroupConfigs(
        _ context: RequestContext, _ resource: IncrementalAlterConfigsRequest.AlterConfigsResource, validateOnly: Bool
    ) -> (KafkaErrorCode, String?) {
        guard authorized(context, .alterConfigs, .group, resource.resourceName) else { return (.groupAuthorizationFailed, nil) }
        guard !resource.resourceName.isEmpty else { return (.invalidRequest, "Group name must not be empty.") }
        var earliest: Bool?
        for config in resource.configs {
            guard config.name == "share.auto.offset.reset" else {
                return (.invalidConfig, "Unsupported group config: \(config.name) (supported: share.auto.offset.reset)")
            }
            switch (config.configOperation, config.value?.lowercased()) {
            case (0, "earliest"): earliest = true
            case (0, "latest"), (1, _): earliest = false
            default: return (.invalidConfig, "share.auto.offset.reset must be latest or earliest")
            }
        }
        if let earliest, !validateOnly, !shares.coordinator.setAutoOffsetReset(groupId: resource.resourceName, earliest: earliest) {
            return (.groupMaxSizeReached, "group.share.max.groups (\(configuration.shareGroups.maxGroups)) share groups exist.")
        }
        return (.none, nil)
    }

    /// ListGroups lists share groups too (protocol type and group type `share`), with the filters.
    func withShareGroups(_ listed: [ListGroupsResponse.ListedGroup], _ request: ListGroupsRequest, version: Int16) -> [ListGroupsResponse.ListedGroup] {
        let states = Set((version >= 4 ? request.statesFilter : []).map { $0.lowercased() })
        let types = Set((version >= 5 ? request.typesFilter : []).map { $0.lowercased() })
        guard types.isEmpty || types.contains("share") else { return listed }
        let shared = shares.coordinator.listGroups()
            .filter { states.isEmpty || states.contains($0.state.lowercased()) }
            .map { ListGroupsResponse.ListedGroup(
                groupId: $0.groupId, protocolType: "share", groupState: version >= 4 ? $0.state : "", groupType: version >= 5 ? "share" : "") }
        return (listed + shared).sorted { $0.groupId < $1.groupId }
    }

    // MARK: ShareGroupHeartbeat / ShareGroupDescribe

    func handleShareGroupHeartbeat(_ context: RequestContext, _ request: ShareGroupHeartbeatRequest, reply: Reply<ShareGroupHeartbeatResponse>) {
        guard authorized(context, .read, .group, request.groupId) else {
            return reply.send(ShareGroupHeartbeatResponse(errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue))
        }
        if !shares.coordinator.isShareGroup(request.groupId), groupCoordinator.describeGroup(request.groupId) != nil {
            return reply.send(ShareGroupHeartbeatResponse(
                errorCode: KafkaErrorCode.groupIdNotFound.rawValue, errorMessage: "Group \(request.groupId) is not a share group."))
        }
        let client = GroupClientInfo(clientId: context.header.clientId ?? "", clientHost: context.clientHost)
        let response = shares.coordinator.heartbeat(request, client: client)
        persistShareState { _ in reply.send(response) }
    }

    func handleShareGroupDescribe(_ context: RequestContext, _ request: ShareGroupDescribeRequest, reply: Reply<ShareGroupDescribeResponse>) {
        let allowed = request.groupIds.filter { authorized(context, .describe, .group, $0) }
        var response = shares.coordinator.describe(allowed)
        for groupId in request.groupIds where !allowed.contains(groupId) {
            response.groups.append(.init(errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue, groupId: groupId))
        }
        if request.includeAuthorizedOperations {
            for index in response.groups.indices where response.groups[index].errorCode == 0 {
                response.groups[index].authorizedOperations = authorizedOperations(context, .group, response.groups[index].groupId)
            }
        }
        reply.send(response)
    }

    /// DescribeShareGroupOffsets: each share-partition's start offset (-1 where the group has no
    /// state for a partition it names).
    func handleDescribeShareGroupOffsets(_ context: RequestContext, _ request: DescribeShareGroupOffsetsRequest) -> DescribeShareGroupOffsetsResponse {
        typealias Group = DescribeShareGroupOffsetsResponse.DescribeShareGroupOffsetsResponseGroup
        var response = DescribeShareGroupOffsetsResponse()
        for requested in request.groups {
            var group = Group(groupId: requested.groupId)
            guard authorized(context, .describe, .group, requested.groupId) else {
                group.errorCode = KafkaErrorCode.groupAuthorizationFailed.rawValue
                response.groups.append(group)
                continue
            }
            guard let offsets = shares.coordinator.startOffsets(groupId: requested.groupId) else {
                group.errorCode = KafkaErrorCode.groupIdNotFound.rawValue
                group.errorMessage = "Group \(requested.groupId) is not a share group."
                response.groups.append(group)
                continue
            }
            var wanted: [(name: String, partitions: [Int32])] = []
            if let named = requested.topics {
                wanted = named.map { ($0.topicName, $0.partitions) }
            } else {
                var byTopic: [KafkaUUID: [Int32]] = [:]
                for key in offsets.keys { byTopic[key.topicId, default: []].append(key.partition) }
                wanted = byTopic.compactMap { id, partitions in topics.topic(id: id).map { ($0.name, partitions) } }.sorted { $0.name < $1.name }
            }
            for (name, partitions) in wanted {
                let topic = topics.topic(named: name)
                let mayDescribe = authorized(context, .describe, .topic, name)
                group.topics.append(.init(topicName: name, topicId: topic?.id ?? .zero, partitions: partitions.sorted().map { index in
                    var partition = DescribeShareGroupOffsetsResponse.DescribeShareGroupOffsetsResponsePartition(
                        partitionIndex: index, startOffset: -1, leaderEpoch: 0)
                    if !mayDescribe {
                        partition.errorCode = KafkaErrorCode.topicAuthorizationFailed.rawValue
                    } else if let topic, topic.partition(index) != nil {
                        partition.startOffset = offsets[SharePartitionKey(groupId: requested.groupId, topicId: topic.id, partition: index)] ?? -1
                    } else {
                        partition.errorCode = KafkaErrorCode.unknownTopicOrPartition.rawValue
                    }
                    return partition
                }))
            }
            response.groups.append(group)
        }
        return response
    }

    /// AlterShareGroupOffsets: sets share-partition start offsets of an empty share group
    /// (GROUP READ, TOPIC READ as in Kafka); persisted to `__share_group_state` before the answer.
    func handleAlterShareGroupOffsets(_ context: RequestContext, _ request: AlterShareGroupOffsetsRequest, reply: Reply<AlterShareGroupOffsetsResponse>) {
        typealias Partition = AlterShareGroupOffsetsResponse.AlterShareGroupOffsetsResponsePartition
        var response = AlterShareGroupOffsetsResponse()
        let groupAllowed = authorized(context, .read, .group, request.groupId)
        var offsets: [SharePartitionKey: Int64] = [:]
        // (topic index, partition index) of the partitions handed to the coordinator.
        var pending: [(Int, Int)] = []
        for requested in request.topics {
            let topic = topics.topic(named: requested.topicName)
            let topicAllowed = groupAllowed && authorized(context, .read, .topic, requested.topicName)
            var result = AlterShareGroupOffsetsResponse.AlterShareGroupOffsetsResponseTopic(
                topicName: requested.topicName, topicId: topic?.id ?? .zero, partitions: [])
            for wanted in requested.partitions {
                var partition = Partition(partitionIndex: wanted.partitionIndex, errorCode: 0, errorMessage: nil)
                if !groupAllowed {
                    partition.errorCode = KafkaErrorCode.groupAuthorizationFailed.rawValue
                } else if !topicAllowed {
                    partition.errorCode = KafkaErrorCode.topicAuthorizationFailed.rawValue
                } else if let topic, topic.partition(wanted.partitionIndex) != nil {
                    if wanted.startOffset < 0 {
                        partition.errorCode = KafkaErrorCode.invalidRequest.rawValue
                        partition.errorMessage = "The start offset must not be negative."
                    } else {
                        offsets[SharePartitionKey(groupId: request.groupId, topicId: topic.id, partition: wanted.partitionIndex)] = wanted.startOffset
                        pending.append((response.responses.count, result.partitions.count))
                    }
                } else {
                    partition.errorCode = KafkaErrorCode.unknownTopicOrPartition.rawValue
                    partition.errorMessage = "Unknown topic or partition \(requested.topicName)-\(wanted.partitionIndex)."
                }
                result.partitions.append(partition)
            }
            response.responses.append(result)
        }
        func failed(_ code: KafkaErrorCode, _ message: String) -> AlterShareGroupOffsetsResponse {
            var failed = response
            for (t, p) in pending {
                failed.responses[t].partitions[p].errorCode = code.rawValue
                failed.responses[t].partitions[p].errorMessage = message
            }
            return failed
        }
        guard groupAllowed else { return reply.send(response) }
        switch shares.coordinator.alterStartOffsets(groupId: request.groupId, offsets) {
        case .groupNotFound:
            reply.send(failed(.groupIdNotFound, "Group \(request.groupId) is not a share group."))
        case .nonEmptyGroup:
            reply.send(failed(.nonEmptyGroup, "The share group \(request.groupId) has members."))
        case .done:
            let done = response
            let storageFailed = failed(.kafkaStorageError, "Writing \(ShareServices.topicName) failed.")
            persistShareState { ok in reply.send(ok ? done : storageFailed) }
        }
    }

    /// DeleteShareGroupOffsets: drops an empty share group's state of the named topics (GROUP
    /// READ, TOPIC READ), so its next fetch starts per `share.auto.offset.reset`. An unknown topic
    /// is answered with one partition -1 carrying UNKNOWN_TOPIC_OR_PARTITION.
    func handleDeleteShareGroupOffsets(_ context: RequestContext, _ request: DeleteShareGroupOffsetsRequest, reply: Reply<DeleteShareGroupOffsetsResponse>) {
        typealias Topic = DeleteShareGroupOffsetsResponse.DeleteShareGroupOffsetsResponseTopic
        typealias Partition = DeleteShareGroupOffsetsResponse.DeleteShareGroupOffsetsResponsePartition
        var response = DeleteShareGroupOffsetsResponse()
        guard authorized(context, .read, .group, request.groupId) else {
            response.errorCode = KafkaErrorCode.groupAuthorizationFailed.rawValue
            return reply.send(response)
        }
        var topicIds: Set<KafkaUUID> = []
        var seen: Set<String> = []
        for requested in request.topics where seen.insert(requested.topicName).inserted {
            guard let topic = topics.topic(named: requested.topicName) else {
                response.responses.append(Topic(topicName: requested.topicName, topicId: .zero, partitions: [
                    Partition(partitionIndex: -1, errorCode: KafkaErrorCode.unknownTopicOrPartition.rawValue,
                              errorMessage: "Unknown topic \(requested.topicName).")]))
                continue
            }
            let code: KafkaErrorCode = authorized(context, .read, .topic, requested.topicName) ? .none : .topicAuthorizationFailed
            if code == .none { topicIds.insert(topic.id) }
            response.responses.append(Topic(topicName: requested.topicName, topicId: topic.id, partitions: (0..<Int32(topic.partitions.count)).map {
                Partition(partitionIndex: $0, errorCode: code.rawValue, errorMessage: nil)
            }))
        }
        switch shares.coordinator.deleteStartOffsets(groupId: request.groupId, topicIds: topicIds) {
        case .groupNotFound:
            reply.send(DeleteShareGroupOffsetsResponse(
                throttleTimeMs: 0, errorCode: KafkaErrorCode.groupIdNotFound.rawValue,
                errorMessage: "Group \(request.groupId) is not a share group.", responses: []))
        case .nonEmptyGroup:
            reply.send(DeleteShareGroupOffsetsResponse(
                throttleTimeMs: 0, errorCode: KafkaErrorCode.nonEmptyGroup.rawValue,
                errorMessage: "The share group \(request.groupId) has members.", responses: []))
        case .done:
            let done = response
            persistShareState { ok in
                var answer = done
                if !ok {
                    answer.errorCode = KafkaErrorCode.kafkaStorageError.rawValue
                    answer.errorMessage = "Writing \(ShareServices.topicName) failed."
                }
                reply.send(answer)
            }
        }
    }

    // MARK: ShareFetch / ShareAcknowledge

    /// One partition named in a ShareFetch / ShareAcknowledge, resolved.
    struct ShareTarget {
        var topicId: KafkaUUID
        var partition: Int32
        var error: KafkaErrorCode
        var acknowledgements: [(firstOffset: Int64, lastOffset: Int64, types: [Int8])]
    }

    private func resolveShareTargets(
        _ context: RequestContext, _ requested: [(topicId: KafkaUUID, partitions: [(Int32, [(Int64, Int64, [Int8])])])]
    ) -> [ShareTarget] {
        var targets: [ShareTarget] = []
        for topic in requested {
            let resolved = topics.topic(id: topic.topicId)
            let mayRead = resolved.map { authorized(context, .read, .topic, $0.name) } ?? true
            for (partition, acks) in topic.partitions {
                var target = ShareTarget(
                    topicId: topic.topicId, partition: partition, error: .none,
                    acknowledgements: acks.map { (firstOffset: $0.0, lastOffset: $0.1, types: $0.2) })
                if resolved == nil {
                    target.error = .unknownTopicId
                } else if !mayRead {
                    target.error = .topicAuthorizationFailed
                } else if resolved?.partition(partition) == nil {
                    target.error = .unknownTopicOrPartition
                }
                targets.append(target)
            }
        }
        return targets
    }

    func handleShareFetch(_ context: RequestContext, _ request: ShareFetchRequest, reply: Reply<ShareFetchResponse>) {
        let lockMs = Int32(clamping: configuration.shareGroups.recordLockDurationMs)
        func refuse(_ code: KafkaErrorCode, _ message: String) {
            reply.send(ShareFetchResponse(errorCode: code.rawValue, errorMessage: message, acquisitionLockTimeoutMs: lockMs))
        }
        guard let groupId = request.groupId, !groupId.isEmpty else { return refuse(.invalidRequest, "GroupId must be set.") }
        guard let memberId = request.memberId, !memberId.isEmpty else { return refuse(.invalidRequest, "MemberId must be set.") }
        guard authorized(context, .read, .group, groupId) else { return refuse(.groupAuthorizationFailed, "Not authorized to read group \(groupId).") }
        let targets = resolveShareTargets(context, request.topics.map { topic in
            (topic.topicId, topic.partitions.map { ($0.partitionIndex, $0.acknowledgementBatches.map { ($0.firstOffset, $0.lastOffset, $0.acknowledgeTypes) }) })
        })
        let epoch = request.shareSessionEpoch
        let valid = targets.filter { $0.error == .none }.map { SharePartitionKey(groupId: groupId, topicId: $0.topicId, partition: $0.partition) }
        let forget = request.forgottenTopicsData.flatMap { topic in
            topic.partitions.map { SharePartitionKey(groupId: groupId, topicId: topic.topicId, partition: $0) }
        }
        let sessionPartitions: [SharePartitionKey]
        switch shares.coordinator.updateSession(groupId: groupId, memberId: memberId, epoch: epoch, add: valid, forget: forget) {
        case .error(let code, let message): return refuse(code, message)
        case .closed: sessionPartitions = []
        case .open(let partitions): sessionPartitions = partitions
        }
        // Acknowledgements piggybacked on the fetch come first.
        var ackErrors: [SharePartitionKey: KafkaErrorCode] = [:]
        for target in targets where target.error == .none && !target.acknowledgements.isEmpty {
            let key = SharePartitionKey(groupId: groupId, topicId: target.topicId, partition: target.partition)
            ackErrors[key] = epoch == 0
                ? .invalidShareSessionEpoch  // a new session has nothing to acknowledge
                : shares.coordinator.acknowledge(key, memberId: memberId, batches: target.acknowledgements)
        }
        if epoch == -1 { shares.coordinator.closeSession(groupId: groupId, memberId: memberId) }
        let maxWait = epoch == -1 ? 0 : max(0, Int64(request.maxWaitMs))
        let maxBytes = max(1, Int(request.maxBytes))
        let maxRecords = request.maxRecords > 0 ? Int(request.maxRecords) : 500
        let template = ShareFetchResponse(acquisitionLockTimeoutMs: lockMs)
        let ackResults = ackErrors
        persistShareState { [self] _ in
            shares.queue.async { [self] in
                let parked = ParkedShareFetch()
                let deadline = clock.wallMilliseconds() + maxWait
                attemptShareFetch(
                    parked, deadline: deadline, groupId: groupId, memberId: memberId, partitions: sessionPartitions,
                    maxBytes: maxBytes, maxRecords: maxRecords
                ) { fetched in
                    reply.send(self.shareFetchResponse(template, targets: targets, ackErrors: ackResults, fetched: fetched, groupId: groupId))
                }
            }
        }
    }

    typealias ShareFetched = [SharePartitionKey: (records: ByteBuffer, ranges: [SharePartition.AcquiredRange])]

    /// Runs on the share queue: acquires what it can, else parks until an append, a lock expiry or
    /// the deadline.
    private func attemptShareFetch(
        _ parked: ParkedShareFetch, deadline: Int64, groupId: String, memberId: String, partitions: [SharePartitionKey],
        maxBytes: Int, maxRecords: Int, finish: @escaping @Sendable (ShareFetched) -> Void
    ) {
        guard !parked.state.withLock({ $0.done }) else { return }
        let fetched = acquireShareRecords(memberId: memberId, partitions: partitions, maxBytes: maxBytes, maxRecords: maxRecords)
        let now = clock.wallMilliseconds()
        if !fetched.isEmpty || now >= deadline || partitions.isEmpty || isShuttingDown.load(ordering: .acquiring) {
            let waiter: UInt64? = parked.state.withLock { state in
                state.done = true
                return state.waiterId
            }
            if let waiter { fetchWaiters.remove(waiter) }
            persistShareState { _ in }  // expired locks and new share-partitions
            finish(fetched)
            return
        }
        let retry: @Sendable () -> Void = { [self] in
            attemptShareFetch(
                parked, deadline: deadline, groupId: groupId, memberId: memberId, partitions: partitions,
                maxBytes: maxBytes, maxRecords: maxRecords, finish: finish)
        }
        let logs = partitions.compactMap { topics.topic(id: $0.topicId)?.partition($0.partition)?.topicPartition }
        let needsWaiter = parked.state.withLock { $0.waiterId == nil }
        if needsWaiter {
            let queue = shares.queue
            let id = fetchWaiters.add(partitions: logs) { queue.async(execute: retry) }
            parked.state.withLock { $0.waiterId = id }
        }
        let wakeAt = min(deadline, (shares.coordinator.earliestLockExpiry(partitions).map { $0 + 1 } ?? .max))
        let schedule = parked.state.withLock { state -> Bool in
            guard wakeAt < state.timerAt || state.timerAt <= now else { return false }
            state.timerAt = wakeAt
            return true
        }
        if schedule {
            shares.queue.asyncAfter(deadline: .now() + .milliseconds(Int(max(1, wakeAt - now))), execute: retry)
        }
    }

    /// Reads each share-partition from its next fetch offset and acquires the records found.
    private func acquireShareRecords(memberId: String, partitions: [SharePartitionKey], maxBytes: Int, maxRecords: Int) -> ShareFetched {
        var fetched: ShareFetched = [:]
        var bytesLeft = maxBytes
        var recordsLeft = maxRecords
        for key in partitions where bytesLeft > 0 && recordsLeft > 0 {
            guard let log = topics.topic(id: key.topicId)?.partition(key.partition), !log.isOffline else { continue }
            guard let next = shares.coordinator.nextFetchOffset(key, logStartOffset: log.logStartOffset, highWatermark: log.highWatermark) else {
                continue
            }
            // At most 1 MiB per partition and fetch (Kafka's max.partition.fetch.bytes default); one
            // whole batch even if larger.
            guard let read = try? log.read(from: Offset(next), maxBytes: max(1, min(bytesLeft, 1 << 20))), read.byteCount > 0 else { continue }
            var bytes = ByteBufferAllocator().buffer(capacity: read.byteCount)
            for slice in read.slices where slice.length > 0 {
                guard (try? slice.read(appendingTo: &bytes)) == slice.length else { break }
            }
            var batches: [(baseOffset: Int64, lastOffset: Int64)] = []
            var spans: [(start: Int, length: Int)] = []
            var cursor = bytes
            while cursor.readableBytes >= RecordBatchHeader.byteCount {
                guard let header = try? RecordBatch.validateFraming(cursor, requireExactLength: false),
                    header.totalByteCount <= cursor.readableBytes
                else { break }
                let start = cursor.readerIndex
                cursor.moveReaderIndex(forwardBy: header.totalByteCount)
                // Control batches (transaction markers) are never handed out; their offsets are
                // archived when a later record is acquired.
                guard !header.isControl, header.lastOffset >= next, header.baseOffset < read.highWatermark.value else { continue }
                batches.append((header.baseOffset, min(header.lastOffset, read.highWatermark.value - 1)))
                spans.append((start, header.totalByteCount))
            }
            let acquired = shares.coordinator.acquire(key, memberId: memberId, batches: batches, maxRecords: recordsLeft)
            guard !acquired.ranges.isEmpty else { continue }
            var out = ByteBufferAllocator().buffer(capacity: acquired.batchIndexes.reduce(0) { $0 + spans[$1].length })
            for index in acquired.batchIndexes {
                out.writeImmutableBuffer(bytes.getSlice(at: spans[index].start, length: spans[index].length)!)
            }
            bytesLeft -= out.readableBytes
            recordsLeft -= acquired.ranges.reduce(0) { $0 + Int($1.lastOffset - $1.firstOffset + 1) }
            log.traffic.recordOut(bytes: out.readableBytes)
            fetched[key] = (out, acquired.ranges)
        }
        return fetched
    }

    private func shareFetchResponse(
        _ template: ShareFetchResponse, targets: [ShareTarget], ackErrors: [SharePartitionKey: KafkaErrorCode], fetched: ShareFetched,
        groupId: String
    ) -> ShareFetchResponse {
        var response = template
        var topicIndex: [KafkaUUID: Int] = [:]
        var seen = Set<SharePartitionKey>()
        func append(_ topicId: KafkaUUID, _ partition: ShareFetchResponse.PartitionData) {
            if topicIndex[topicId] == nil {
                topicIndex[topicId] = response.responses.count
                response.responses.append(.init(topicId: topicId, partitions: []))
            }
            response.responses[topicIndex[topicId]!].partitions.append(partition)
        }
        func data(_ key: SharePartitionKey, error: KafkaErrorCode) -> ShareFetchResponse.PartitionData {
            var partition = ShareFetchResponse.PartitionData(partitionIndex: key.partition, errorCode: error.rawValue)
            partition.currentLeader = .init(leaderId: configuration.nodeId, leaderEpoch: 0)
            if let ack = ackErrors[key] {
                partition.acknowledgeErrorCode = ack.rawValue
                if ack != .none { partition.acknowledgeErrorMessage = ack.name ?? "error \(ack.rawValue)" }
            }
            if let got = fetched[key] {
                partition.records = Records(chunks: [.bytes(got.records)])
                partition.acquiredRecords = got.ranges.map { .init(firstOffset: $0.firstOffset, lastOffset: $0.lastOffset, deliveryCount: $0.deliveryCount) }
            } else {
                partition.records = Records.empty
            }
            return partition
        }
        for target in targets {
            let key = SharePartitionKey(groupId: groupId, topicId: target.topicId, partition: target.partition)
            guard seen.insert(key).inserted else { continue }
            append(target.topicId, data(key, error: target.error))
        }
        for key in fetched.keys.sorted(by: { ($0.topicId, $0.partition) < ($1.topicId, $1.partition) }) where seen.insert(key).inserted {
            append(key.topicId, data(key, error: .none))
        }
        return response
    }

    func handleShareAcknowledge(_ context: RequestContext, _ request: ShareAcknowledgeRequest, reply: Reply<ShareAcknowledgeResponse>) {
        func refuse(_ code: KafkaErrorCode, _ message: String) {
            reply.send(ShareAcknowledgeResponse(errorCode: code.rawValue, errorMessage: message))
        }
        guard let groupId = request.groupId, !groupId.isEmpty else { return refuse(.invalidRequest, "GroupId must be set.") }
        guard let memberId = request.memberId, !memberId.isEmpty else { return refuse(.invalidRequest, "MemberId must be set.") }
        guard authorized(context, .read, .group, groupId) else { return refuse(.groupAuthorizationFailed, "Not authorized to read group \(groupId).") }
        let epoch = request.shareSessionEpoch
        let sessionError = shares.coordinator.checkAcknowledgeSession(groupId: groupId, memberId: memberId, epoch: epoch)
        guard sessionError == .none else { return refuse(sessionError, sessionError.name ?? "share session error") }
        let targets = resolveShareTargets(context, request.topics.map { topic in
            (topic.topicId, topic.partitions.map { ($0.partitionIndex, $0.acknowledgementBatches.map { ($0.firstOffset, $0.lastOffset, $0.acknowledgeTypes) }) })
        })
        var response = ShareAcknowledgeResponse()
        var topicIndex: [KafkaUUID: Int] = [:]
        for target in targets {
            var code = target.error
            if code == .none {
                let key = SharePartitionKey(groupId: groupId, topicId: target.topicId, partition: target.partition)
                code = shares.coordinator.acknowledge(key, memberId: memberId, batches: target.acknowledgements)
            }
            if topicIndex[target.topicId] == nil {
                topicIndex[target.topicId] = response.responses.count
                response.responses.append(.init(topicId: target.topicId, partitions: []))
            }
            response.responses[topicIndex[target.topicId]!].partitions.append(.init(
                partitionIndex: target.partition, errorCode: code.rawValue, errorMessage: code == .none ? nil : code.name ?? "error \(code.rawValue)",
                currentLeader: .init(leaderId: configuration.nodeId, leaderEpoch: 0)))
        }
        if epoch == -1 { shares.coordinator.closeSession(groupId: groupId, memberId: memberId) }
        let answer = response
        persistShareState { ok in
            if ok {
                reply.send(answer)
            } else {
                reply.send(ShareAcknowledgeResponse(errorCode: KafkaErrorCode.coordinatorNotAvailable.rawValue, errorMessage: "share state not persisted"))
            }
        }
    }
}
