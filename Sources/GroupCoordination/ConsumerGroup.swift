import KafkaWire

/// Where a consumer-protocol member is in its reconciliation (Kafka `MemberState`).
enum ConsumerMemberState: String, Sendable {
    /// Owns exactly its target assignment at the group's assignment epoch.
    case stable = "STABLE"
    /// Must revoke partitions (listed in `pendingRevocation`) before it moves to the new epoch.
    case unrevokedPartitions = "UNREVOKED_PARTITIONS"
    /// At the new epoch, but some target partitions are still owned by others.
    case unreleasedPartitions = "UNRELEASED_PARTITIONS"
}

/// A KIP-848 group member. Only touched under the coordinator's lock.
final class ConsumerMember: @unchecked Sendable {
    var memberId: String
    var instanceId: String?
    var rackId: String?
    var clientId: String
    var clientHost: String
    var subscribedTopicNames: [String] = []
    var subscribedTopicRegex: String?
    var serverAssignor: String?
    var rebalanceTimeoutMs: Int32 = 300_000
    var memberEpoch: Int32 = 0
    var previousMemberEpoch: Int32 = -1
    var state: ConsumerMemberState = .stable
    /// Partitions the member may use now.
    var assigned: Set<TopicIdPartition> = []
    /// Partitions it still owns and must give up.
    var pendingRevocation: Set<TopicIdPartition> = []
    var sessionTimer: (any CancellableTimer)?
    var sessionToken: UInt64 = 0
    var revocationTimer: (any CancellableTimer)?
    var revocationToken: UInt64 = 0
    /// Set for a classic (JoinGroup/SyncGroup) member hosted in a consumer-protocol group.
    var classic: ClassicMemberInfo?

    init(memberId: String, clientId: String, clientHost: String) {
        self.memberId = memberId
        self.clientId = clientId
        self.clientHost = clientHost
    }

    /// A static member that sent epoch -2 and may come back under a new member id.
    var hasLeftTemporarily = false

    func cancelTimers() {
        sessionTimer?.cancel()
        sessionTimer = nil
        revocationTimer?.cancel()
        revocationTimer = nil
    }
}

/// The consumer-protocol (KIP-848) state of a group. Committed offsets stay in the owning
/// `ClassicGroup`, so OffsetCommit/OffsetFetch, retention and persistence are shared.
final class ConsumerGroupState: @unchecked Sendable {
    var groupEpoch: Int32 = 0
    var assignmentEpoch: Int32 = 0
    var members: [String: ConsumerMember] = [:]
    /// group.instance.id -> member id.
    var staticMembers: [String: String] = [:]
    var targetAssignment: [String: Set<TopicIdPartition>] = [:]
    /// Partition counts of the subscribed topics at the last assignment (metadata changes bump
    /// the group epoch).
    var subscriptionMetadata: [String: GroupTopicInfo] = [:]
    /// The assignor of the last target assignment.
    var assignorName: String = ""

    /// Kafka's consumer group states: Empty, Assigning, Reconciling, Stable.
    var stateName: String {
        if members.isEmpty { return "Empty" }
        if groupEpoch > assignmentEpoch { return "Assigning" }
        if members.values.contains(where: { $0.state != .stable || $0.memberEpoch != assignmentEpoch }) { return "Reconciling" }
        return "Stable"
    }

    var orderedMembers: [ConsumerMember] { members.values.sorted { $0.memberId < $1.memberId } }

    var subscribedTopicNames: Set<String> { Set(members.values.flatMap(\.subscribedTopicNames)) }
}

/// What a classic member hosted in a consumer-protocol group keeps of its JoinGroup (to answer it
/// in the classic protocol, and to turn it back into a classic member).
struct ClassicMemberInfo: Sendable {
    var protocols: [MemberProtocol]
    var sessionTimeoutMs: Int32
    var rebalanceTimeoutMs: Int32

    /// The protocol the member is told about (its first), as Kafka does for such members.
    var protocolName: String { protocols.first?.name ?? "" }
}
