import CommitLog
import GroupCoordination
import KafkaWire
import Logging
import NIOCore
import RecordFormat
import Synchronization


/// Persists the group coordinator's records in the internal compacted topic `__consumer_offsets`,
/// in Kafka's record formats, through the same commit log as every other topic.
///
/// Built from the broker's parts (topic registry, log manager, clock), not the broker itself, so
/// the broker → coordinator → store chain has no back-reference.
final class OffsetsTopicStore: GroupStore {
    static let topicName = "__consumer_offsets"
    let topics: TopicRegistry
    let logManager: LogManager
    let clock: any LogClock
    let logger: Logger
    /// `offsets.topic.num.partitions`, used when the topic is created on first use.
    let partitionCount: Int32

    init(topics: TopicRegistry, logManager: LogManager, clock: any LogClock, logger: Logger, partitionCount: Int32) {
        self.topics = topics
        self.logManager = logManager
        self.clock = clock
        self.logger = logger
        self.partitionCount = partitionCount
    }

    /// `__consumer_offsets`, created on first use as Kafka does.
    func ensureTopic() throws(TopicError) -> Topic {
        try topics.ensureInternalTopic(Self.topicName, partitions: partitionCount)
    }

    func persist(_ records: [CoordinatorRecord], completion: @escaping @Sendable (Bool) -> Void) {
        guard !records.isEmpty else {
            completion(true)
            return
        }
        let topic: Topic
        do {
            topic = try ensureTopic()
        } catch {
            logger.error("cannot create __consumer_offsets", metadata: ["error": "\(error)"])
            completion(false)
            return
        }
        // One batch per partition, records in the order given.
        var order: [Int32] = []
        var byPartition: [Int32: RecordBatchBuilder] = [:]
        let now = clock.wallMilliseconds()
        for record in records {
            let partition = CoordinatorRecord.offsetsPartition(for: record.groupId, partitionCount: Int32(topic.partitions.count))
            if byPartition[partition] == nil {
                order.append(partition)
                byPartition[partition] = RecordBatchBuilder()
            }
            byPartition[partition]!.append(
                key: Array(buffer: record.key), value: record.value.map { Array(buffer: $0) }, headers: [], timestamp: now)
        }
        let remaining = Mutex((count: order.count, ok: true))
        for partition in order {
            guard let log = topic.partition(partition) else {
                completion(false)
                return
            }
            logManager.appender.append(byPartition[partition]!.build(), to: log) { result in
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

extension Broker {
    /// `__consumer_offsets` (compacted, `offsets.topic.num.partitions` partitions), created on first
    /// use as Kafka does.
    @discardableResult
    func ensureOffsetsTopic() throws(TopicError) -> Topic {
        try ensureInternalTopic(OffsetsTopicStore.topicName, partitions: configuration.offsetsTopicPartitions)
    }

    /// An internal coordinator topic (compacted, 100 MiB segments), created on first use as Kafka
    /// does; a concurrent creation by another request counts as success.
    func ensureInternalTopic(_ name: String, partitions: Int32) throws(TopicError) -> Topic {
        try topics.ensureInternalTopic(name, partitions: partitions)
    }

    /// Replays `__consumer_offsets` into the coordinator (last write per key wins).
    func loadGroups() throws {
        guard let topic = topics.topic(named: OffsetsTopicStore.topicName) else {
            groupCoordinator.load([])
            return
        }
        var records: [(key: ByteBuffer, value: ByteBuffer?)] = []
        var pendingTransactional: [Int64: [(key: ByteBuffer, value: ByteBuffer?)]] = [:]
        for log in topic.partitions {
            try Self.replay(log) { header, record in
                if header.isControl {
                    // A transaction marker applies or drops that producer's offsets (TxnOffsetCommit).
                    if let held = pendingTransactional.removeValue(forKey: header.producerId),
                        record.key.flatMap(ControlRecordType.init(controlKey:)) == .commit {
                        records.append(contentsOf: held)
                    }
                    return
                }
                guard let key = record.key else { return }
                if header.isTransactional {
                    pendingTransactional[header.producerId, default: []].append((key, record.value))
                } else {
                    records.append((key, record.value))
                }
            }
        }
        groupCoordinator.load(records)
        for (producerId, held) in pendingTransactional {
            groupCoordinator.loadPendingTransactionalOffsets(producerId: producerId, records: held)
        }
        logger.info("loaded consumer groups", metadata: ["records": "\(records.count)", "groups": "\(groupCoordinator.describeAllGroups().count)"])
    }

    func coordinatorNode(listener: String) -> CoordinatorNode {
        let (host, port) = advertisedAddress(listener: listener)
        return CoordinatorNode(nodeId: configuration.nodeId, host: host, port: Int32(port))
    }
}

/// Topic names, ids and partition counts for the KIP-848 coordinator, read from the registry.
struct RegistryTopicMetadata: GroupTopicMetadata {
    let registry: TopicRegistry

    func topic(named name: String) -> GroupTopicInfo? {
        registry.topic(named: name).map { GroupTopicInfo(name: $0.name, id: $0.id, partitionCount: Int32($0.partitions.count)) }
    }

    func allTopicNames() -> [String] { registry.allTopics.map(\.name) }

    func topic(id: KafkaUUID) -> GroupTopicInfo? {
        registry.topic(id: id).map { GroupTopicInfo(name: $0.name, id: $0.id, partitionCount: Int32($0.partitions.count)) }
    }
}

extension TopicRegistry {
    /// An internal coordinator topic (compacted, 100 MiB segments), created on first use as Kafka
    /// does; a concurrent creation by another request counts as success.
    func ensureInternalTopic(_ name: String, partitions: Int32) throws(TopicError) -> Topic {
        if let topic = topic(named: name) { return topic }
        do {
            try createTopic(
                name: name, partitions: partitions, replicationFactor: 1,
                configs: ["cleanup.policy": "compact", "segment.bytes": "104857600"])
        } catch let error where error.code == .topicAlreadyExists {}
        guard let topic = topic(named: name) else {
            throw TopicError(.coordinatorNotAvailable, "\(name) is not available")
        }
        return topic
    }
}

/// The broker's injected clock as the group coordinator's (commit timestamps, retention).
struct GroupWallClock: CoordinatorClock {
    let clock: any LogClock
    func nowMilliseconds() -> Int64 { clock.wallMilliseconds() }
}
