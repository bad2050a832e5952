import KafkaWire
public import NIOCore

/// The key of a KIP-848 consumer-group record in `__consumer_offsets`, in Kafka's layout:
/// `int16 version` (the record type, 3-8) + group id (+ member id for the per-member records).
public struct ConsumerGroupRecordKey: Sendable, Hashable {
    /// Kafka's record types (the key version).
    public enum Kind: Int16, Sendable, Hashable {
        /// `ConsumerGroupMetadataValue`: the group epoch.
        case metadata = 3
        /// `ConsumerGroupPartitionMetadataValue`: the subscribed topics at the last assignment.
        case partitionMetadata = 4
        /// `ConsumerGroupMemberMetadataValue`: a member's subscription and client details.
        case memberMetadata = 5
        /// `ConsumerGroupTargetAssignmentMetadataValue`: the assignment epoch.
        case targetAssignmentMetadata = 6
        /// `ConsumerGroupTargetAssignmentMemberValue`: a member's target partitions.
        case targetAssignmentMember = 7
        /// `ConsumerGroupCurrentMemberAssignmentValue`: a member's epoch and owned partitions.
        case currentMemberAssignment = 8

        var hasMember: Bool { self == .memberMetadata || self == .targetAssignmentMember || self == .currentMemberAssignment }
    }

    public var kind: Kind
    public var groupId: String
    /// The member for kinds 5, 7 and 8; empty otherwise.
    public var memberId: String

    public init(kind: Kind, groupId: String, memberId: String = "") {
        self.kind = kind
        self.groupId = groupId
        self.memberId = memberId
    }

    /// Reads the key after its `int16 version`.
    init(from buffer: inout ByteBuffer, version: Int16) throws(WireError) {
        guard let kind = Kind(rawValue: version) else { throw .malformed("not a consumer group record key: \(version)") }
        switch kind {
        case .metadata:
            self.init(kind: kind, groupId: try ConsumerGroupMetadataKey(from: &buffer, version: version).groupId)
        case .partitionMetadata:
            self.init(kind: kind, groupId: try ConsumerGroupPartitionMetadataKey(from: &buffer, version: version).groupId)
        case .targetAssignmentMetadata:
            self.init(kind: kind, groupId: try ConsumerGroupTargetAssignmentMetadataKey(from: &buffer, version: version).groupId)
        case .memberMetadata:
            let key = try ConsumerGroupMemberMetadataKey(from: &buffer, version: version)
            self.init(kind: kind, groupId: key.groupId, memberId: key.memberId)
        case .targetAssignmentMember:
            let key = try ConsumerGroupTargetAssignmentMemberKey(from: &buffer, version: version)
            self.init(kind: kind, groupId: key.groupId, memberId: key.memberId)
        case .currentMemberAssignment:
            let key = try ConsumerGroupCurrentMemberAssignmentKey(from: &buffer, version: version)
            self.init(kind: kind, groupId: key.groupId, memberId: key.memberId)
        }
    }

    /// The encoded key (`int16 version` + fields).
    var encoded: ByteBuffer {
        let version = kind.rawValue
        switch kind {
        case .metadata: return CoordinatorRecord.encode(ConsumerGroupMetadataKey(groupId: groupId), version: version)
        case .partitionMetadata: return CoordinatorRecord.encode(ConsumerGroupPartitionMetadataKey(groupId: groupId), version: version)
        case .targetAssignmentMetadata:
            return CoordinatorRecord.encode(ConsumerGroupTargetAssignmentMetadataKey(groupId: groupId), version: version)
        case .memberMetadata:
            return CoordinatorRecord.encode(ConsumerGroupMemberMetadataKey(groupId: groupId, memberId: memberId), version: version)
        case .targetAssignmentMember:
            return CoordinatorRecord.encode(ConsumerGroupTargetAssignmentMemberKey(groupId: groupId, memberId: memberId), version: version)
        case .currentMemberAssignment:
            return CoordinatorRecord.encode(ConsumerGroupCurrentMemberAssignmentKey(groupId: groupId, memberId: memberId), version: version)
        }
    }
}

extension CoordinatorRecord {
    /// Value version Kafka writes for every consumer-group record.
    public static let consumerGroupValueVersion: Int16 = 0

    /// A consumer-group record (nil value = tombstone).
    public static func consumerGroup(_ key: ConsumerGroupRecordKey, value: ByteBuffer?) -> CoordinatorRecord {
        CoordinatorRecord(groupId: key.groupId, key: key.encoded, value: value)
    }
}

/// One consumer-protocol record slot of a group: what a key addresses within the group.
struct ConsumerRecordSlot: Hashable, Sendable {
    var kind: ConsumerGroupRecordKey.Kind
    var memberId: String

    static let metadata = ConsumerRecordSlot(kind: .metadata, memberId: "")
    static let partitionMetadata = ConsumerRecordSlot(kind: .partitionMetadata, memberId: "")
    static let targetAssignmentMetadata = ConsumerRecordSlot(kind: .targetAssignmentMetadata, memberId: "")
}

/// Encoding the in-memory consumer-group state as record values, and rebuilding it from them.
enum ConsumerGroupCodec {
    static let version = CoordinatorRecord.consumerGroupValueVersion
    /// `ConsumerGroupCurrentMemberAssignmentValue.memberEpoch` of a static member that left
    /// temporarily (Kafka's LEAVE_GROUP_STATIC_MEMBER_EPOCH); its real epoch is kept in
    /// `previousMemberEpoch`.
    static let leftStaticEpoch: Int32 = -2

    static func stateCode(_ state: ConsumerMemberState) -> Int8 {
        switch state {
        case .stable: return 0
        case .unrevokedPartitions: return 1
        case .unreleasedPartitions: return 2
        }
    }

    static func state(code: Int8) -> ConsumerMemberState? {
        switch code {
        case 0: return .stable
        case 1: return .unrevokedPartitions
        case 2: return .unreleasedPartitions
        default: return nil
        }
    }

    static func groupedPartitions(_ set: Set<TopicIdPartition>) -> [(KafkaUUID, [Int32])] {
        Dictionary(grouping: set, by: \.topicId).map { ($0.key, $0.value.map(\.partition).sorted()) }.sorted { $0.0 < $1.0 }
    }

    static func metadata(_ state: ConsumerGroupState) -> ByteBuffer {
        CoordinatorRecord.encode(ConsumerGroupMetadataValue(epoch: state.groupEpoch), version: version)
    }

    static func partitionMetadata(_ state: ConsumerGroupState) -> ByteBuffer {
        let topics = state.subscriptionMetadata.values.sorted { $0.name < $1.name }.map { info in
            ConsumerGroupPartitionMetadataValue.TopicMetadata(
                topicId: info.id, topicName: info.name, numPartitions: info.partitionCount, partitionMetadata: [])
        }
        return CoordinatorRecord.encode(ConsumerGroupPartitionMetadataValue(topics: topics), version: version)
    }

    static func targetAssignmentMetadata(_ state: ConsumerGroupState) -> ByteBuffer {
        CoordinatorRecord.encode(ConsumerGroupTargetAssignmentMetadataValue(assignmentEpoch: state.assignmentEpoch), version: version)
    }

    static func memberMetadata(_ member: ConsumerMember) -> ByteBuffer {
        CoordinatorRecord.encode(
            ConsumerGroupMemberMetadataValue(
                instanceId: member.instanceId, rackId: member.rackId, clientId: member.clientId, clientHost: member.clientHost,
                subscribedTopicNames: member.subscribedTopicNames, subscribedTopicRegex: member.subscribedTopicRegex,
                rebalanceTimeoutMs: member.rebalanceTimeoutMs, serverAssignor: member.serverAssignor),
            version: version)
    }

    static func targetAssignmentMember(_ target: Set<TopicIdPartition>) -> ByteBuffer {
        let value = ConsumerGroupTargetAssignmentMemberValue(
            topicPartitions: groupedPartitions(target).map { .init(topicId: $0.0, partitions: $0.1) })
        return CoordinatorRecord.encode(value, version: version)
    }

    static func currentMemberAssignment(_ member: ConsumerMember) -> ByteBuffer {
        let value = ConsumerGroupCurrentMemberAssignmentValue(
            memberEpoch: member.hasLeftTemporarily ? leftStaticEpoch : member.memberEpoch,
            previousMemberEpoch: member.hasLeftTemporarily ? member.memberEpoch : member.previousMemberEpoch,
            state: stateCode(member.state),
            assignedPartitions: groupedPartitions(member.assigned).map { .init(topicId: $0.0, partitions: $0.1) },
            partitionsPendingRevocation: groupedPartitions(member.pendingRevocation).map { .init(topicId: $0.0, partitions: $0.1) })
        return CoordinatorRecord.encode(value, version: version)
    }

    /// Every record slot of `state` with its value. Classic members hosted in the group are left
    /// out (their JoinGroup protocols are not stored); they rejoin after a restart.
    static func image(of state: ConsumerGroupState, members only: Set<String>? = nil) -> [ConsumerRecordSlot: ByteBuffer] {
        var image: [ConsumerRecordSlot: ByteBuffer] = [
            .metadata: metadata(state),
            .partitionMetadata: partitionMetadata(state),
            .targetAssignmentMetadata: targetAssignmentMetadata(state),
        ]
        for member in state.members.values where member.classic == nil && (only?.contains(member.memberId) ?? true) {
            image[ConsumerRecordSlot(kind: .memberMetadata, memberId: member.memberId)] = memberMetadata(member)
            image[ConsumerRecordSlot(kind: .currentMemberAssignment, memberId: member.memberId)] = currentMemberAssignment(member)
            if let target = state.targetAssignment[member.memberId] {
                image[ConsumerRecordSlot(kind: .targetAssignmentMember, memberId: member.memberId)] = targetAssignmentMember(target)
            }
        }
        return image
    }

    private static func decode<M: KafkaMessage>(_ type: M.Type, _ bytes: ByteBuffer) throws(WireError) -> M {
        var buffer = bytes
        let version = try buffer.readWireInt16()
        return try M(from: &buffer, version: version)
    }

    private static func partitionSet(_ topics: [(KafkaUUID, [Int32])]) -> Set<TopicIdPartition> {
        var result: Set<TopicIdPartition> = []
        for (id, partitions) in topics {
            for p in partitions { result.insert(TopicIdPartition(topicId: id, partition: p)) }
        }
        return result
    }

    /// Rebuilds a group's consumer state from its replayed record values (nil when the group has
    /// no `ConsumerGroupMetadata` record). A member needs its member-metadata record; target
    /// assignments of unknown members are dropped; member epochs above the assignment epoch are
    /// capped. Throws on undecodable values.
    static func restore(_ image: [ConsumerRecordSlot: ByteBuffer]) throws(WireError) -> ConsumerGroupState? {
        guard let metadataBytes = image[.metadata] else { return nil }
        let state = ConsumerGroupState()
        state.groupEpoch = try decode(ConsumerGroupMetadataValue.self, metadataBytes).epoch
        if let bytes = image[.targetAssignmentMetadata] {
            state.assignmentEpoch = min(try decode(ConsumerGroupTargetAssignmentMetadataValue.self, bytes).assignmentEpoch, state.groupEpoch)
        }
        if let bytes = image[.partitionMetadata] {
            for topic in try decode(ConsumerGroupPartitionMetadataValue.self, bytes).topics {
                state.subscriptionMetadata[topic.topicName] = GroupTopicInfo(name: topic.topicName, id: topic.topicId, partitionCount: topic.numPartitions)
            }
        }
        for (slot, bytes) in image.sorted(by: { $0.key.memberId < $1.key.memberId }) where slot.kind == .memberMetadata {
            let value = try decode(ConsumerGroupMemberMetadataValue.self, bytes)
            let member = ConsumerMember(memberId: slot.memberId, clientId: value.clientId, clientHost: value.clientHost)
            member.instanceId = value.instanceId
            member.rackId = value.rackId
            member.subscribedTopicNames = value.subscribedTopicNames
            member.subscribedTopicRegex = value.subscribedTopicRegex
            if value.rebalanceTimeoutMs > 0 { member.rebalanceTimeoutMs = value.rebalanceTimeoutMs }
            member.serverAssignor = value.serverAssignor
            if let bytes = image[ConsumerRecordSlot(kind: .currentMemberAssignment, memberId: slot.memberId)] {
                let current = try decode(ConsumerGroupCurrentMemberAssignmentValue.self, bytes)
                if current.memberEpoch == leftStaticEpoch {
                    member.hasLeftTemporarily = true
                    member.memberEpoch = current.previousMemberEpoch
                } else {
                    member.memberEpoch = current.memberEpoch
                    member.previousMemberEpoch = current.previousMemberEpoch
                }
                member.memberEpoch = min(max(member.memberEpoch, 0), state.assignmentEpoch)
                member.state = self.state(code: current.state) ?? .stable
                member.assigned = partitionSet(current.assignedPartitions.map { ($0.topicId, $0.partitions) })
                member.pendingRevocation = partitionSet(current.partitionsPendingRevocation.map { ($0.topicId, $0.partitions) })
            }
            state.members[member.memberId] = member
            if let instanceId = member.instanceId { state.staticMembers[instanceId] = member.memberId }
            if let bytes = image[ConsumerRecordSlot(kind: .targetAssignmentMember, memberId: slot.memberId)] {
                let target = try decode(ConsumerGroupTargetAssignmentMemberValue.self, bytes)
                state.targetAssignment[member.memberId] = partitionSet(target.topicPartitions.map { ($0.topicId, $0.partitions) })
            }
        }
        return state
    }
}
