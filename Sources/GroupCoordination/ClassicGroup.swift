import KafkaWire
import NIOCore

/// A parked JoinGroup request.
struct JoinWaiter: Sendable {
    let version: Int16
    let completion: @Sendable (JoinGroupResponse) -> Void
}

/// A parked SyncGroup request.
struct SyncWaiter: Sendable {
    let version: Int16
    let completion: @Sendable (SyncGroupResponse) -> Void
}

/// One protocol a member supports (JoinGroup.Protocols[]).
struct MemberProtocol: Sendable, Equatable {
    var name: String
    var metadata: ByteBuffer
}

/// A group member. Only touched under the coordinator's lock, hence `@unchecked Sendable` (timer
/// and persistence closures carry references back into the lock).
final class GroupMember: @unchecked Sendable {
    var memberId: String
    let groupInstanceId: String?
    var clientId: String
    var clientHost: String
    var rebalanceTimeoutMs: Int32
    var sessionTimeoutMs: Int32
    var protocolType: String
    var protocols: [MemberProtocol]
    var assignment = ByteBuffer()
    var joinWaiter: JoinWaiter?
    var syncWaiter: SyncWaiter?
    /// Joined in the current rebalance and not yet part of a generation (Kafka `isNew`): such a
    /// member may expire while parked in JoinGroup.
    var isNew = false
    var sessionTimer: (any CancellableTimer)?
    var sessionToken: UInt64 = 0

    init(
        memberId: String, groupInstanceId: String?, clientId: String, clientHost: String,
        rebalanceTimeoutMs: Int32, sessionTimeoutMs: Int32, protocolType: String, protocols: [MemberProtocol]
    ) {
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.clientId = clientId
        self.clientHost = clientHost
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.sessionTimeoutMs = sessionTimeoutMs
        self.protocolType = protocolType
        self.protocols = protocols
    }

    func metadata(for protocolName: String?) -> ByteBuffer? {
        guard let protocolName else { return nil }
        return protocols.first { $0.name == protocolName }?.metadata
    }

    /// Same protocols with the same metadata, in the same order (Kafka `MemberMetadata.matches`).
    func matches(_ other: [MemberProtocol]) -> Bool { protocols == other }
}

/// A classic consumer group: membership, generation and committed offsets. Only touched under the
/// coordinator's lock.
final class ClassicGroup: @unchecked Sendable {
    let groupId: String
    var state: GroupState = .empty
    var stateTimestampMs: Int64?
    var protocolType: String?
    var protocolName: String?
    var generationId: Int32 = 0
    var leaderId: String?
    private(set) var members: [String: GroupMember] = [:]
    /// Member ids in join order: leader fallback, JoinGroup member lists and DescribeGroups follow it.
    private(set) var memberOrder: [String] = []
    /// Members that got MEMBER_ID_REQUIRED and have not rejoined yet, with their expiry timers.
    var pendingMembers: [String: any CancellableTimer] = [:]
    /// group.instance.id -> current member id.
    var staticMembers: [String: String] = [:]
    /// Members of the current generation that have not sent SyncGroup yet.
    var pendingSyncMembers: Set<String> = []
    var pendingSyncTimer: (any CancellableTimer)?
    var pendingSyncToken: UInt64 = 0
    /// Set when a member joins during the initial delayed join; extends the delay once more.
    var newMemberAdded = false
    /// Non-nil while the first rebalance of an empty group is being delayed: the rebalance time left
    /// for further extensions.
    var initialDelayRemainingMs: Int64?
    var rebalanceTimer: (any CancellableTimer)?
    var rebalanceToken: UInt64 = 0
    var offsets: [GroupTopicPartition: CommittedOffset] = [:]
    /// Offset commits handed to the store and not yet completed (Kafka `pendingOffsetCommits`):
    /// they keep a just-created group alive and their partitions out of expiry.
    var pendingOffsetCommits: [GroupTopicPartition: Int] = [:]
    /// Topics the members subscribe to (consumer protocol), nil when unknown (not a consumer group
    /// or undecodable metadata: then every topic counts as subscribed).
    var subscribedTopics: Set<String>?
    /// Non-nil while the group runs the consumer protocol (KIP-848); its offsets stay in `offsets`.
    var consumer: ConsumerGroupState?

    init(groupId: String) {
        self.groupId = groupId
    }

    var orderedMembers: [GroupMember] { memberOrder.compactMap { members[$0] } }

    var isConsumerGroup: Bool { protocolType == "consumer" }

    /// ListGroups v5 group type: "consumer" for KIP-848 groups, else "classic".
    var groupType: String { consumer == nil ? "classic" : "consumer" }

    /// The state as ListGroups/DescribeGroups name it (consumer groups: Empty/Assigning/Reconciling/Stable).
    var stateName: String { consumer?.stateName ?? state.rawValue }

    func isLeader(_ memberId: String) -> Bool { leaderId == memberId }

    /// Largest rebalance timeout among members (Kafka `GroupMetadata.rebalanceTimeoutMs`).
    var rebalanceTimeoutMs: Int64 { Int64(members.values.map(\.rebalanceTimeoutMs).max() ?? 0) }

    var hasAllMembersJoined: Bool {
        pendingMembers.isEmpty && members.values.allSatisfy { $0.joinWaiter != nil }
    }

    /// True when nothing is left worth keeping: no members, no pending members, no offsets.
    var isVacant: Bool {
        state == .empty && members.isEmpty && pendingMembers.isEmpty && offsets.isEmpty && pendingOffsetCommits.isEmpty
            && (consumer?.members.isEmpty ?? true)
    }

    func add(_ member: GroupMember) {
        precondition(members[member.memberId] == nil, "member added twice")
        if members.isEmpty {
            protocolType = member.protocolType
        }
        members[member.memberId] = member
        memberOrder.append(member.memberId)
        if leaderId == nil {
            leaderId = member.memberId
        }
        if let instanceId = member.groupInstanceId {
            staticMembers[instanceId] = member.memberId
        }
        pendingMembers.removeValue(forKey: member.memberId)?.cancel()
    }

    @discardableResult
    func remove(_ memberId: String) -> GroupMember? {
        guard let member = members.removeValue(forKey: memberId) else { return nil }
        memberOrder.removeAll { $0 == memberId }
        if let instanceId = member.groupInstanceId, staticMembers[instanceId] == memberId {
            staticMembers[instanceId] = nil
        }
        pendingSyncMembers.remove(memberId)
        if leaderId == memberId {
            leaderId = memberOrder.first
        }
        member.sessionTimer?.cancel()
        member.sessionTimer = nil
        return member
    }

    /// Gives a static member a new member id (Kafka `replaceStaticMember`).
    func replaceMemberId(_ member: GroupMember, with newMemberId: String) {
        let oldMemberId = member.memberId
        precondition(members[oldMemberId] === member, "replacing a member that is not in the group")
        members[oldMemberId] = nil
        member.memberId = newMemberId
        members[newMemberId] = member
        if let index = memberOrder.firstIndex(of: oldMemberId) {
            memberOrder[index] = newMemberId
        }
        if let instanceId = member.groupInstanceId {
            staticMembers[instanceId] = newMemberId
        }
        if pendingSyncMembers.remove(oldMemberId) != nil {
            pendingSyncMembers.insert(newMemberId)
        }
        if leaderId == oldMemberId {
            leaderId = newMemberId
        }
    }

    /// Protocols every member supports.
    private func candidateProtocols() -> [String] {
        guard let first = orderedMembers.first else { return [] }
        return first.protocols.map(\.name).filter { name in
            members.values.allSatisfy { member in member.protocols.contains { $0.name == name } }
        }
    }

    /// Whether a member with these protocols may join (Kafka `supportsProtocols`).
    func supportsProtocols(type: String, names: [String]) -> Bool {
        if members.isEmpty {
            return !type.isEmpty && !names.isEmpty
        }
        let candidates = Set(candidateProtocols())
        return protocolType == type && names.contains { candidates.contains($0) }
    }

    /// The protocol all members support, chosen by votes: each member votes for the first of its
    /// protocols every member supports; most votes wins, ties go to the earlier candidate.
    func selectProtocol() -> String? {
        let candidates = candidateProtocols()
        guard !candidates.isEmpty else { return nil }
        var votes: [String: Int] = [:]
        for member in members.values {
            if let vote = member.protocols.first(where: { candidates.contains($0.name) }) {
                votes[vote.name, default: 0] += 1
            }
        }
        var best = candidates[0]
        for candidate in candidates where votes[candidate, default: 0] > votes[best, default: 0] {
            best = candidate
        }
        return best
    }

    /// If the leader did not rejoin, makes a member that did the leader. False when nobody rejoined.
    func maybeElectNewJoinedLeader() -> Bool {
        guard let leaderId, let leader = members[leaderId] else { return false }
        if leader.joinWaiter != nil { return true }
        if let joined = orderedMembers.first(where: { $0.joinWaiter != nil }) {
            self.leaderId = joined.memberId
            return true
        }
        return false
    }

    /// Recomputes `subscribedTopics` from the members' consumer-protocol metadata.
    func computeSubscribedTopics() {
        guard isConsumerGroup, let protocolName else {
            subscribedTopics = nil
            return
        }
        var topics: Set<String> = []
        for member in members.values {
            guard let metadata = member.metadata(for: protocolName),
                  let subscription = try? GroupCoordinator.decodeSubscription(metadata)
            else {
                subscribedTopics = nil
                return
            }
            topics.formUnion(subscription.topics)
        }
        subscribedTopics = topics
    }

    func isSubscribed(to topic: String) -> Bool {
        subscribedTopics?.contains(topic) ?? true
    }

    func snapshot() -> GroupSnapshot {
        GroupSnapshot(
            groupId: groupId,
            state: state,
            protocolType: protocolType,
            protocolName: protocolName,
            generationId: generationId,
            leaderId: leaderId,
            members: orderedMembers.map { member in
                MemberSnapshot(
                    memberId: member.memberId,
                    groupInstanceId: member.groupInstanceId,
                    clientId: member.clientId,
                    clientHost: member.clientHost,
                    sessionTimeoutMs: member.sessionTimeoutMs,
                    rebalanceTimeoutMs: member.rebalanceTimeoutMs,
                    metadata: member.metadata(for: protocolName) ?? member.protocols.first?.metadata ?? ByteBuffer(),
                    assignment: member.assignment
                )
            },
            stateTimestampMs: stateTimestampMs
        )
    }
}
