public import NIOCore

/// Classic group states, named as Kafka names them in ListGroups / DescribeGroups.
public enum GroupState: String, Sendable, Hashable, CaseIterable {
    /// No members; may still hold committed offsets.
    case empty = "Empty"
    /// Members are (re)joining; JoinGroup requests park until all known members rejoined.
    case preparingRebalance = "PreparingRebalance"
    /// Join done; waiting for the leader's SyncGroup with the assignment.
    case completingRebalance = "CompletingRebalance"
    /// Assignment distributed.
    case stable = "Stable"
    /// Deleted or unloaded; the group object is about to be dropped.
    case dead = "Dead"
}

/// A topic partition a group committed an offset for.
public struct GroupTopicPartition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    public var description: String { "\(topic)-\(partition)" }
}

/// A committed offset as stored in `__consumer_offsets`.
public struct CommittedOffset: Sendable, Hashable {
    public var offset: Int64
    /// -1 when the client did not send one (OffsetCommit < v6).
    public var leaderEpoch: Int32
    public var metadata: String
    public var commitTimestampMs: Int64
    /// Explicit expiry (OffsetCommit v2-4 with a retention time); nil = group-based retention.
    public var expireTimestampMs: Int64?

    public init(offset: Int64, leaderEpoch: Int32 = -1, metadata: String = "", commitTimestampMs: Int64, expireTimestampMs: Int64? = nil) {
        self.offset = offset
        self.leaderEpoch = leaderEpoch
        self.metadata = metadata
        self.commitTimestampMs = commitTimestampMs
        self.expireTimestampMs = expireTimestampMs
    }
}

/// A point-in-time view of one group, for tools (`petrel groups`).
public struct GroupSnapshot: Sendable, Equatable {
    public var groupId: String
    public var state: GroupState
    /// "consumer" for Kafka consumers; nil for groups that only commit offsets.
    public var protocolType: String?
    /// The selected assignor (`range`, `cooperative-sticky`, ...); nil outside a generation.
    public var protocolName: String?
    public var generationId: Int32
    public var leaderId: String?
    public var members: [MemberSnapshot]
    /// When the group entered its current state (ms since epoch), if known.
    public var stateTimestampMs: Int64?
}

/// One member in a `GroupSnapshot`.
public struct MemberSnapshot: Sendable, Equatable {
    public var memberId: String
    public var groupInstanceId: String?
    public var clientId: String
    public var clientHost: String
    public var sessionTimeoutMs: Int32
    public var rebalanceTimeoutMs: Int32
    /// The member's metadata for the selected protocol (for `consumer` groups an
    /// `int16 version` + `ConsumerProtocolSubscription`).
    public var metadata: ByteBuffer
    /// The member's assignment (for `consumer` groups `int16 version` + `ConsumerProtocolAssignment`);
    /// empty until the leader's SyncGroup.
    public var assignment: ByteBuffer
}
