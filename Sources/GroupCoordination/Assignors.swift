public import KafkaWire

/// A topic as the KIP-848 coordinator needs it: name, id, partition count.
public struct GroupTopicInfo: Sendable, Hashable {
    public var name: String
    public var id: KafkaUUID
    public var partitionCount: Int32

    public init(name: String, id: KafkaUUID, partitionCount: Int32) {
        self.name = name
        self.id = id
        self.partitionCount = partitionCount
    }
}

/// The broker's topics, as seen by the consumer-protocol coordinator (the broker's registry in
/// production, a dictionary in tests). Called under the coordinator's lock: must not call back.
public protocol GroupTopicMetadata: Sendable {
    func topic(named name: String) -> GroupTopicInfo?
    func topic(id: KafkaUUID) -> GroupTopicInfo?
    /// Every topic name (regex subscriptions match against them).
    func allTopicNames() -> [String]
}

/// A topic id and partition: the unit of KIP-848 assignments.
struct TopicIdPartition: Hashable, Comparable, Sendable {
    var topicId: KafkaUUID
    var partition: Int32

    static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.topicId, lhs.partition) < (rhs.topicId, rhs.partition)
    }
}

/// What an assignor sees of one member.
struct AssignorMember: Sendable {
    var memberId: String
    /// Subscribed topics that exist.
    var topics: [GroupTopicInfo]
    /// The member's current target assignment (stickiness).
    var current: Set<TopicIdPartition>
}

/// Kafka's server-side assignors (`group.consumer.assignors`).
enum ConsumerAssignor: String, Sendable {
    /// Kafka `UniformAssignor`: balances the partition count per member, keeping current
    /// assignments where the balance allows.
    case uniform
    /// Kafka `RangeAssignor`: per topic, contiguous ranges to the subscribed members in member-id order.
    case range

    static func named(_ name: String) -> ConsumerAssignor? {
        switch name.lowercased() {
        case "uniform", "org.apache.kafka.coordinator.group.assignor.uniformassignor": return .uniform
        case "range", "org.apache.kafka.coordinator.group.assignor.rangeassignor": return .range
        default: return nil
        }
    }

    /// Target assignment for `members`; every partition of a subscribed topic goes to exactly one
    /// member subscribed to it.
    func assign(_ members: [AssignorMember]) -> [String: Set<TopicIdPartition>] {
        var result: [String: Set<TopicIdPartition>] = [:]
        for member in members { result[member.memberId] = [] }
        let sorted = members.sorted { $0.memberId < $1.memberId }
        switch self {
        case .range:
            var topics: [KafkaUUID: GroupTopicInfo] = [:]
            for member in members { for topic in member.topics { topics[topic.id] = topic } }
            for topic in topics.values.sorted(by: { $0.name < $1.name }) {
                let subscribers = sorted.filter { $0.topics.contains { $0.id == topic.id } }
                guard !subscribers.isEmpty else { continue }
                let count = Int(topic.partitionCount)
                let quota = count / subscribers.count
                let extra = count % subscribers.count
                var next = 0
                for (index, member) in subscribers.enumerated() {
                    let take = quota + (index < extra ? 1 : 0)
                    for p in next..<(next + take) {
                        result[member.memberId, default: []].insert(TopicIdPartition(topicId: topic.id, partition: Int32(p)))
                    }
                    next += take
                }
            }
        case .uniform:
            // Every partition that must be placed, and who may take it.
            var all: [TopicIdPartition] = []
            var eligible: [TopicIdPartition: [String]] = [:]
            var seen: Set<KafkaUUID> = []
            for member in sorted {
                for topic in member.topics where seen.insert(topic.id).inserted {
                    for p in 0..<topic.partitionCount { all.append(TopicIdPartition(topicId: topic.id, partition: p)) }
                }
                for topic in member.topics {
                    for p in 0..<topic.partitionCount { eligible[TopicIdPartition(topicId: topic.id, partition: p), default: []].append(member.memberId) }
                }
            }
            all.sort()
            guard !sorted.isEmpty else { return result }
            // Balanced quota over the members (exact for homogeneous subscriptions).
            let quota = all.count / sorted.count
            var extras = all.count % sorted.count
            var assigned: Set<TopicIdPartition> = []
            // Stickiness: members keep current partitions up to their quota.
            for member in sorted {
                var keep = member.current.filter { eligible[$0]?.contains(member.memberId) == true }.sorted()
                var limit = quota
                if keep.count > quota, extras > 0 {
                    limit += 1
                    extras -= 1
                }
                if keep.count > limit { keep = Array(keep.prefix(limit)) }
                for tp in keep where assigned.insert(tp).inserted { result[member.memberId]!.insert(tp) }
            }
            // The rest go to the least-loaded eligible member.
            for tp in all where !assigned.contains(tp) {
                guard let candidates = eligible[tp], !candidates.isEmpty else { continue }
                let target = candidates.min { lhs, rhs in
                    let (l, r) = (result[lhs]!.count, result[rhs]!.count)
                    return l == r ? lhs < rhs : l < r
                }!
                result[target]!.insert(tp)
                assigned.insert(tp)
            }
        }
        return result
    }
}
