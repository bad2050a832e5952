public import KafkaWire
import Logging
import Synchronization

/// Share-group settings with Kafka's names and defaults (KIP-932).
public struct ShareGroupConfiguration: Sendable, Equatable {
    /// `group.share.record.lock.duration.ms` (30000), `group.share.delivery.count.limit` (5),
    /// `group.share.partition.max.record.locks` (2000).
    public var limits = SharePartition.Limits()
    /// `group.share.max.size` (200): members per share group.
    public var maxGroupSize = 200
    /// `group.share.session.timeout.ms` (45000).
    public var sessionTimeoutMs: Int64 = 45_000
    /// `group.share.heartbeat.interval.ms` (5000).
    public var heartbeatIntervalMs: Int32 = 5000
    /// `group.share.max.share.sessions` (2000): open share sessions on this broker.
    public var maxShareSessions = 2000
    /// `group.share.max.groups` (10): share groups on this broker.
    public var maxGroups = 10

    public init() {}
}

/// One share-partition: a group's view of one topic partition (the `__share_group_state` key).
public struct SharePartitionKey: Hashable, Sendable, CustomStringConvertible {
    public var groupId: String
    public var topicId: KafkaUUID
    public var partition: Int32

    public init(groupId: String, topicId: KafkaUUID, partition: Int32) {
        self.groupId = groupId
        self.topicId = topicId
        self.partition = partition
    }

    public var description: String { "\(groupId):\(topicId):\(partition)" }
}

/// What to persist for a share-partition (ShareSnapshotValue).
public struct SharePartitionSnapshot: Sendable, Equatable {
    public var key: SharePartitionKey
    public var stateEpoch: Int32
    public var startOffset: Int64
    public var batches: [SharePartition.StateBatch]

    public init(key: SharePartitionKey, stateEpoch: Int32, startOffset: Int64, batches: [SharePartition.StateBatch]) {
        self.key = key
        self.stateEpoch = stateEpoch
        self.startOffset = startOffset
        self.batches = batches
    }
}

/// KIP-932 share groups: membership (ShareGroupHeartbeat, every member gets every partition of
/// the topics it subscribes to, so members share partitions), share sessions (ShareFetch), and
/// the share-partition states. Sans-IO: the broker reads the log, passes batch boundaries in, and
/// persists the snapshots `takeDirtySnapshots()` hands out. Thread-safe (one lock).
public final class ShareGroupCoordinator: Sendable {
    public static let assignorName = "simple"

    struct Member: Sendable {
        var memberId: String
        var epoch: Int32
        var rackId: String?
        var clientId: String
        var clientHost: String
        var subscribed: [String]
        var assignment: [KafkaUUID: [Int32]] = [:]
        var lastSeenMs: Int64
    }

    struct Group: Sendable {
        var epoch: Int32 = 0
        var members: [String: Member] = [:]
        var partitions: [SharePartitionKey: SharePartition] = [:]
        /// Group configs (IncrementalAlterConfigs on GROUP): `share.auto.offset.reset`.
        var autoOffsetResetEarliest = false
    }

    struct Session: Sendable {
        var nextEpoch: Int32
        var partitions: Set<SharePartitionKey>
        var lastUsedMs: Int64
    }

    struct SessionKey: Hashable, Sendable {
        var groupId: String
        var memberId: String
    }

    struct State: Sendable {
        var groups: [String: Group] = [:]
        var sessions: [SessionKey: Session] = [:]
        var dirty: Set<SharePartitionKey> = []
        /// Share-partitions whose state was deleted (DeleteShareGroupOffsets): tombstones to write.
        var deleted: Set<SharePartitionKey> = []
    }

    public let configuration: ShareGroupConfiguration
    let clock: any CoordinatorClock
    let logger: Logger
    private let state = Mutex(State())
    private let topicMetadata = Mutex<(any GroupTopicMetadata)?>(nil)

    public init(configuration: ShareGroupConfiguration, clock: any CoordinatorClock, logger: Logger) {
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    public func setTopicMetadata(_ metadata: any GroupTopicMetadata) {
        topicMetadata.withLock { $0 = metadata }
    }

    /// True when `groupId` is a share group (other group types must not take the id).
    public func isShareGroup(_ groupId: String) -> Bool {
        state.withLock { $0.groups[groupId] != nil }
    }

    // MARK: ShareGroupHeartbeat

    public func heartbeat(_ request: ShareGroupHeartbeatRequest, client: GroupClientInfo) -> ShareGroupHeartbeatResponse {
        func failure(_ code: KafkaErrorCode, _ message: String) -> ShareGroupHeartbeatResponse {
            ShareGroupHeartbeatResponse(errorCode: code.rawValue, errorMessage: message, memberId: nil, memberEpoch: 0, heartbeatIntervalMs: 0)
        }
        // Kafka's throwIfShareGroupHeartbeatRequestIsInvalid.
        guard !request.groupId.isEmpty else { return failure(.invalidRequest, "GroupId can't be empty.") }
        guard !request.memberId.isEmpty else { return failure(.invalidRequest, "MemberId can't be empty.") }
        guard request.memberId.utf8.count <= 255, request.groupId.utf8.count <= 255 else {
            return failure(.invalidRequest, "GroupId and MemberId must be at most 255 bytes.")
        }
        if request.memberEpoch == 0, (request.subscribedTopicNames ?? []).isEmpty {
            return failure(.invalidRequest, "SubscribedTopicNames must be set in first request.")
        }
        guard request.memberEpoch >= -1 else { return failure(.invalidRequest, "MemberEpoch is invalid.") }
        let metadata = topicMetadata.withLock { $0 }
        let now = clock.nowMilliseconds()
        return state.withLock { state -> ShareGroupHeartbeatResponse in
            expireMembersLocked(&state, now: now)
            if request.memberEpoch == -1 {
                guard var group = state.groups[request.groupId] else { return failure(.unknownMemberId, "Unknown member.") }
                if group.members.removeValue(forKey: request.memberId) != nil {
                    group.epoch &+= 1
                }
                // The member's share session stays until it closes it (ShareFetch/ShareAcknowledge
                // with epoch -1, which may race the leave and still acknowledges): the close
                // releases what is left, a member that never closes it loses its locks on expiry.
                state.groups[request.groupId] = group
                return ShareGroupHeartbeatResponse(memberId: request.memberId, memberEpoch: -1, heartbeatIntervalMs: 0)
            }
            if state.groups[request.groupId] == nil {
                guard state.groups.count < configuration.maxGroups else {
                    return failure(.groupMaxSizeReached, "The share group limit group.share.max.groups (\(configuration.maxGroups)) is reached.")
                }
                state.groups[request.groupId] = Group()
            }
            var group = state.groups[request.groupId]!
            var member: Member
            if let existing = group.members[request.memberId] {
                member = existing
                if request.memberEpoch > member.epoch {
                    return failure(.fencedMemberEpoch, "The member epoch \(request.memberEpoch) is newer than \(member.epoch).")
                }
                if request.memberEpoch == 0 { member.epoch = 0 }  // a rejoin gets its assignment again
            } else {
                guard request.memberEpoch == 0 else { return failure(.unknownMemberId, "Member \(request.memberId) is not in the group.") }
                guard group.members.count < configuration.maxGroupSize else {
                    return failure(.groupMaxSizeReached, "The share group has reached its maximum size \(configuration.maxGroupSize).")
                }
                member = Member(
                    memberId: request.memberId, epoch: 0, rackId: request.rackId, clientId: client.clientId,
                    clientHost: client.clientHost, subscribed: [], lastSeenMs: now)
            }
            member.lastSeenMs = now
            if let names = request.subscribedTopicNames { member.subscribed = names.sorted() }
            // The simple assignor with one broker: every member gets every partition of its
            // topics, so a partition is shared by all its subscribers.
            var assignment: [KafkaUUID: [Int32]] = [:]
            for name in Set(member.subscribed) {
                guard let topic = metadata?.topic(named: name), topic.partitionCount > 0 else { continue }
                assignment[topic.id] = Array(0..<topic.partitionCount)
            }
            var sendAssignment = request.memberEpoch != member.epoch || request.memberEpoch == 0
            if assignment != member.assignment || member.epoch == 0 {
                group.epoch &+= 1
                member.epoch = group.epoch
                member.assignment = assignment
                sendAssignment = true
            }
            group.members[request.memberId] = member
            state.groups[request.groupId] = group
            var response = ShareGroupHeartbeatResponse(
                memberId: request.memberId, memberEpoch: member.epoch, heartbeatIntervalMs: configuration.heartbeatIntervalMs)
            if sendAssignment {
                response.assignment = .init(topicPartitions: member.assignment.sorted { $0.key < $1.key }.map {
                    .init(topicId: $0.key, partitions: $0.value)
                })
            }
            return response
        }
    }

    /// Members that stopped heartbeating for `group.share.session.timeout.ms` leave; their records
    /// are released.
    public func expireMembers() {
        let now = clock.nowMilliseconds()
        state.withLock { expireMembersLocked(&$0, now: now) }
    }

    private func expireMembersLocked(_ state: inout State, now: Int64) {
        for groupId in Array(state.groups.keys) {
            var group = state.groups[groupId]!
            let expired = group.members.values.filter { now - $0.lastSeenMs > configuration.sessionTimeoutMs }.map(\.memberId)
            guard !expired.isEmpty else { continue }
            for memberId in expired {
                group.members[memberId] = nil
                releaseLocked(&group, memberId: memberId, limits: configuration.limits, dirty: &state.dirty)
                state.sessions[SessionKey(groupId: groupId, memberId: memberId)] = nil
                logger.info("share group member expired", metadata: ["group": "\(groupId)", "member": "\(memberId)"])
            }
            group.epoch &+= 1
            state.groups[groupId] = group
        }
    }

    private func releaseLocked(_ group: inout Group, memberId: String, limits: SharePartition.Limits, dirty: inout Set<SharePartitionKey>) {
        for key in Array(group.partitions.keys) {
            group.partitions[key]!.releaseAll(memberId: memberId, limits: limits)
            if group.partitions[key]!.isDirty { dirty.insert(key) }
        }
    }

    // MARK: Share sessions (ShareFetch / ShareAcknowledge)

    public enum SessionOutcome: Sendable, Equatable {
        case open([SharePartitionKey])
        case closed
        case error(KafkaErrorCode, String)
    }

    /// Applies a ShareFetch's session fields: epoch 0 opens a session with `add`, -1 closes it
    /// (releasing the member's records after the request's acknowledgements), any other epoch must
    /// be the next one and adds `add`, drops `forget`. Returns the session's partitions.
    public func updateSession(
        groupId: String, memberId: String, epoch: Int32, add: [SharePartitionKey], forget: [SharePartitionKey]
    ) -> SessionOutcome {
        let now = clock.nowMilliseconds()
        let key = SessionKey(groupId: groupId, memberId: memberId)
        return state.withLock { state -> SessionOutcome in
            switch epoch {
            case 0:
                // Only members open sessions (bounds the session table by the groups' sizes).
                guard state.groups[groupId]?.members[memberId] != nil else {
                    return .error(.unknownMemberId, "Member \(memberId) is not in share group \(groupId).")
                }
                if state.sessions[key] == nil, state.sessions.count >= configuration.maxShareSessions {
                    // Sessions of members that left the group go first.
                    state.sessions = state.sessions.filter { state.groups[$0.key.groupId]?.members[$0.key.memberId] != nil }
                }
                if state.sessions[key] == nil, state.sessions.count >= configuration.maxShareSessions {
                    // Kafka evicts nothing: the client retries (SHARE_SESSION_LIMIT_REACHED).
                    return .error(KafkaErrorCode(rawValue: 133), "group.share.max.share.sessions (\(configuration.maxShareSessions)) reached")
                }
                state.sessions[key] = Session(nextEpoch: 1, partitions: Set(add), lastUsedMs: now)
                return .open(Array(add))
            case -1:
                guard state.sessions[key] != nil else { return .error(.shareSessionNotFound, "no share session for \(memberId)") }
                return .closed
            default:
                guard var session = state.sessions[key] else { return .error(.shareSessionNotFound, "no share session for \(memberId)") }
                guard session.nextEpoch == epoch else {
                    return .error(.invalidShareSessionEpoch, "share session epoch \(epoch), expected \(session.nextEpoch)")
                }
                session.nextEpoch = epoch == Int32.max ? 1 : epoch + 1
                session.partitions.formUnion(add)
                session.partitions.subtract(forget)
                session.lastUsedMs = now
                state.sessions[key] = session
                return .open(session.partitions.sorted { ($0.topicId, $0.partition) < ($1.topicId, $1.partition) })
            }
        }
    }

    /// ShareAcknowledge's session check: the epoch must be the next one (it advances), -1 closes.
    public func checkAcknowledgeSession(groupId: String, memberId: String, epoch: Int32) -> KafkaErrorCode {
        let key = SessionKey(groupId: groupId, memberId: memberId)
        return state.withLock { state -> KafkaErrorCode in
            guard var session = state.sessions[key] else { return .shareSessionNotFound }
            if epoch == -1 { return .none }
            guard epoch != 0, session.nextEpoch == epoch else { return .invalidShareSessionEpoch }
            session.nextEpoch = epoch == Int32.max ? 1 : epoch + 1
            state.sessions[key] = session
            return .none
        }
    }

    /// Closes a share session: the member's records go back to the group.
    public func closeSession(groupId: String, memberId: String) {
        let limits = configuration.limits
        state.withLock { state in
            state.sessions[SessionKey(groupId: groupId, memberId: memberId)] = nil
            guard var group = state.groups[groupId] else { return }
            releaseLocked(&group, memberId: memberId, limits: limits, dirty: &state.dirty)
            state.groups[groupId] = group
        }
    }

    /// Applies acknowledgement batches for one share-partition.
    public func acknowledge(
        _ key: SharePartitionKey, memberId: String, batches: [(firstOffset: Int64, lastOffset: Int64, types: [Int8])]
    ) -> KafkaErrorCode {
        let limits = configuration.limits
        let now = clock.nowMilliseconds()
        return state.withLock { state -> KafkaErrorCode in
            guard var partition = state.groups[key.groupId]?.partitions[key] else { return .invalidRecordState }
            partition.expireLocks(nowMs: now, limits: limits)
            var result = KafkaErrorCode.none
            // Batches must be in order and not overlap (Kafka's validateAcknowledgementBatches).
            var previousLast = Int64.min
            for batch in batches {
                guard batch.firstOffset > previousLast else {
                    result = .invalidRequest
                    break
                }
                previousLast = batch.lastOffset
                switch partition.acknowledge(memberId: memberId, firstOffset: batch.firstOffset, lastOffset: batch.lastOffset, types: batch.types, limits: limits) {
                case .ok: continue
                case .invalidRecordState: result = .invalidRecordState
                case .invalidRequest: result = .invalidRequest
                }
                if result != .none { break }
            }
            if partition.isDirty { state.dirty.insert(key) }
            state.groups[key.groupId]!.partitions[key] = partition
            return result
        }
    }

    /// Where to read the log next for this share-partition, creating its state on first use at
    /// the log end (`share.auto.offset.reset=latest`, Kafka's default) or start (`earliest`).
    /// Nil when nothing is left to read below `highWatermark`.
    public func nextFetchOffset(_ key: SharePartitionKey, logStartOffset: Int64, highWatermark: Int64) -> Int64? {
        let limits = configuration.limits
        let now = clock.nowMilliseconds()
        return state.withLock { state -> Int64? in
            guard var group = state.groups[key.groupId] else { return nil }
            var partition = group.partitions[key] ?? {
                var created = SharePartition(startOffset: group.autoOffsetResetEarliest ? logStartOffset : highWatermark)
                created.isDirty = true
                return created
            }()
            partition.logStartMoved(to: logStartOffset)
            partition.expireLocks(nowMs: now, limits: limits)
            if partition.isDirty { state.dirty.insert(key) }
            group.partitions[key] = partition
            state.groups[key.groupId] = group
            let next = partition.nextFetchOffset()
            guard next < highWatermark, next < partition.startOffset + Int64(limits.maxRecordLocks) else { return nil }
            return next
        }
    }

    /// Acquires records of the batches read from the log for `memberId`.
    public func acquire(
        _ key: SharePartitionKey, memberId: String, batches: [(baseOffset: Int64, lastOffset: Int64)], maxRecords: Int
    ) -> (ranges: [SharePartition.AcquiredRange], batchIndexes: [Int]) {
        let limits = configuration.limits
        let now = clock.nowMilliseconds()
        return state.withLock { state in
            guard var partition = state.groups[key.groupId]?.partitions[key] else { return ([], []) }
            // Only members of the group acquire (a fetch racing a leave gets nothing).
            guard state.groups[key.groupId]?.members[memberId] != nil else { return ([], []) }
            let result = partition.acquire(memberId: memberId, batches: batches, maxRecords: maxRecords, nowMs: now, limits: limits)
            state.groups[key.groupId]!.partitions[key] = partition
            return result
        }
    }

    /// The earliest lock expiry among these share-partitions (a parked ShareFetch wakes then).
    public func earliestLockExpiry(_ keys: [SharePartitionKey]) -> Int64? {
        state.withLock { state in
            keys.compactMap { state.groups[$0.groupId]?.partitions[$0]?.earliestLockExpiry() }.min()
        }
    }

    // MARK: Persistence

    /// Share-partitions deleted since the last call (tombstones for `__share_group_state`, to
    /// append before the snapshots taken after them).
    public func takeDeletedKeys() -> [SharePartitionKey] {
        state.withLock { state in
            defer { state.deleted.removeAll() }
            return Array(state.deleted)
        }
    }

    /// Snapshots of the share-partitions changed since the last call (to append to `__share_group_state`).
    public func takeDirtySnapshots() -> [SharePartitionSnapshot] {
        state.withLock { state in
            var snapshots: [SharePartitionSnapshot] = []
            for key in state.dirty {
                guard var partition = state.groups[key.groupId]?.partitions[key] else { continue }
                partition.isDirty = false
                state.groups[key.groupId]!.partitions[key] = partition
                snapshots.append(SharePartitionSnapshot(
                    key: key, stateEpoch: partition.stateEpoch, startOffset: partition.startOffset, batches: partition.snapshot()))
            }
            state.dirty.removeAll()
            return snapshots
        }
    }

    /// Replays `__share_group_state` (the last snapshot per share-partition).
    public func load(_ snapshots: [SharePartitionSnapshot]) {
        state.withLock { state in
            for snapshot in snapshots {
                let key = snapshot.key
                if state.groups[key.groupId] == nil { state.groups[key.groupId] = Group() }
                state.groups[key.groupId]!.partitions[key] = SharePartition(
                    startOffset: snapshot.startOffset, batches: snapshot.batches, stateEpoch: snapshot.stateEpoch)
                state.groups[key.groupId]!.partitions[key]!.isDirty = false
            }
        }
    }

    // MARK: Group configs, describe, list, offsets

    /// `share.auto.offset.reset` (`latest` / `earliest`) for one group (a group config in Kafka).
    /// False when the group would be new and `group.share.max.groups` are already there.
    @discardableResult
    public func setAutoOffsetReset(groupId: String, earliest: Bool) -> Bool {
        state.withLock { state in
            if state.groups[groupId] == nil {
                guard state.groups.count < configuration.maxGroups else { return false }
                state.groups[groupId] = Group()
            }
            state.groups[groupId]!.autoOffsetResetEarliest = earliest
            return true
        }
    }

    public func autoOffsetResetEarliest(groupId: String) -> Bool? {
        state.withLock { $0.groups[groupId]?.autoOffsetResetEarliest }
    }

    /// Share groups with their state (`Empty` / `Stable`, Kafka's ShareGroupState names).
    public func listGroups() -> [(groupId: String, state: String)] {
        state.withLock { state in
            state.groups.map { ($0.key, $0.value.members.isEmpty ? "Empty" : "Stable") }.sorted { $0.groupId < $1.groupId }
        }
    }

    public func describe(_ groupIds: [String]) -> ShareGroupDescribeResponse {
        let metadata = topicMetadata.withLock { $0 }
        return state.withLock { state in
            ShareGroupDescribeResponse(throttleTimeMs: 0, groups: groupIds.map { groupId in
                guard let group = state.groups[groupId] else {
                    return .init(errorCode: KafkaErrorCode.groupIdNotFound.rawValue, errorMessage: "Group \(groupId) not found.", groupId: groupId)
                }
                var described = ShareGroupDescribeResponse.DescribedGroup(
                    errorCode: 0, errorMessage: nil, groupId: groupId, groupState: group.members.isEmpty ? "Empty" : "Stable",
                    groupEpoch: group.epoch, assignmentEpoch: group.epoch, assignorName: Self.assignorName, members: [])
                described.members = group.members.values.sorted { $0.memberId < $1.memberId }.map { member in
                    .init(
                        memberId: member.memberId, rackId: member.rackId, memberEpoch: member.epoch, clientId: member.clientId,
                        clientHost: member.clientHost, subscribedTopicNames: member.subscribed,
                        assignment: .init(topicPartitions: member.assignment.sorted { $0.key < $1.key }.map {
                            .init(topicId: $0.key, topicName: metadata?.topic(id: $0.key)?.name ?? "", partitions: $0.value)
                        }))
                }
                return described
            })
        }
    }

    /// The start offset of every share-partition of a group (DescribeShareGroupOffsets).
    public func startOffsets(groupId: String) -> [SharePartitionKey: Int64]? {
        state.withLock { state in
            state.groups[groupId].map { group in group.partitions.mapValues(\.startOffset) }
        }
    }

    public enum OffsetsChange: Sendable, Equatable {
        case done
        /// The group does not exist (or is not a share group): GROUP_ID_NOT_FOUND.
        case groupNotFound
        /// The group has members: NON_EMPTY_GROUP.
        case nonEmptyGroup
    }

    /// AlterShareGroupOffsets: each share-partition starts over at its offset with nothing in
    /// flight (a new state epoch), created if the group had no state for it. Only while the group
    /// has no members, as in Kafka.
    public func alterStartOffsets(groupId: String, _ offsets: [SharePartitionKey: Int64]) -> OffsetsChange {
        state.withLock { state in
            guard var group = state.groups[groupId] else { return .groupNotFound }
            guard group.members.isEmpty else { return .nonEmptyGroup }
            for (key, offset) in offsets where key.groupId == groupId {
                var partition = group.partitions[key] ?? SharePartition(startOffset: offset)
                partition.reset(to: offset)
                group.partitions[key] = partition
                state.dirty.insert(key)
            }
            state.groups[groupId] = group
            return .done
        }
    }

    /// DeleteShareGroupOffsets: drops the group's state of every partition of these topics (the
    /// next fetch starts per `share.auto.offset.reset`). Only while the group has no members.
    public func deleteStartOffsets(groupId: String, topicIds: Set<KafkaUUID>) -> OffsetsChange {
        state.withLock { state in
            guard var group = state.groups[groupId] else { return .groupNotFound }
            guard group.members.isEmpty else { return .nonEmptyGroup }
            for key in Array(group.partitions.keys) where topicIds.contains(key.topicId) {
                group.partitions[key] = nil
                state.dirty.remove(key)
                state.deleted.insert(key)
            }
            state.groups[groupId] = group
            return .done
        }
    }
}
