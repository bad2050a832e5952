import CommitLog
import DiskIO
import Foundation
import KafkaWire
import Logging
import Synchronization

/// A topic as the broker knows it: id, partitions (each a `PartitionLog`), config overrides.
public final class Topic: @unchecked Sendable {
    public let name: String
    public let id: KafkaUUID
    /// Immutable snapshot; replaced (under the registry lock) when partitions are added.
    public let partitions: [PartitionLog]
    public let overrides: [String: String]
    public var isInternal: Bool { name.hasPrefix("__") }

    init(name: String, id: KafkaUUID, partitions: [PartitionLog], overrides: [String: String]) {
        self.name = name
        self.id = id
        self.partitions = partitions
        self.overrides = overrides
    }

    public func partition(_ index: Int32) -> PartitionLog? {
        index >= 0 && Int(index) < partitions.count ? partitions[Int(index)] : nil
    }
}

/// Errors of topic administration, each with its Kafka error code.
public struct TopicError: Error, Sendable {
    public var code: KafkaErrorCode
    public var message: String
    public init(_ code: KafkaErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// The broker's topics. Persisted in `DIR/petrel-topics.json` (name, id, partition count, config
/// overrides), written atomically; the partition directories themselves are Kafka's layout, and
/// partition directories without an entry (e.g. copied from a Kafka broker) are adopted at start.
public final class TopicRegistry: Sendable {
    private struct State {
        var topics: [String: Topic] = [:]
        var byId: [KafkaUUID: Topic] = [:]
        /// Topics whose deletion is committed but whose partition directories are not all renamed
        /// away yet (persisted; the next load finishes them).
        var deleting: Set<String> = []
    }

    private struct StoredTopic: Codable {
        var name: String
        var id: String
        var partitions: Int32
        var configs: [String: String]
    }

    private struct StoredMetadata: Codable {
        var version: Int
        var topics: [StoredTopic]
        /// Deleted topics whose directories may still exist (absent in files written before it existed).
        var deleting: [String]?
    }

    private let state = Mutex(State())
    /// Serializes admin changes (create/delete/alter) and their persistence.
    private let adminLock = Mutex(())
    private let logManager: LogManager
    private let io: any FileIO
    private let logger: Logger
    private let configurationBox: Mutex<BrokerConfiguration>
    /// The effective broker configuration: static, plus dynamic broker configs.
    public var configuration: BrokerConfiguration { configurationBox.withLock { $0 } }
    private var metadataPath: String { configuration.dataDirectory + "/petrel-topics.json" }

    public init(configuration: BrokerConfiguration, logManager: LogManager, io: any FileIO, logger: Logger) {
        self.configurationBox = Mutex(configuration)
        self.logManager = logManager
        self.io = io
        self.logger = logger
    }

    /// Loads topics: recovers every partition directory through the log manager, then matches
    /// them with the stored topic list.
    public func load() throws {
        var stored: [String: StoredTopic] = [:]
        var deleting: Set<String> = []
        if let bytes = try io.readWholeFile(metadataPath) {
            let metadata = try JSONDecoder().decode(StoredMetadata.self, from: Data(bytes))
            for topic in metadata.topics { stored[topic.name] = topic }
            deleting = Set(metadata.deleting ?? [])
        }
        let logs = try logManager.loadLogs { tp in
            self.configuration.logConfiguration(overrides: stored[tp.topic]?.configs ?? [:])
        }
        var logsByTopic: [String: [Int32: PartitionLog]] = [:]
        for log in logs { logsByTopic[log.topicPartition.topic, default: [:]][log.topicPartition.partition] = log }
        // Finish deletions committed before a crash (or whose renames failed): never adopt them.
        var stillDeleting: Set<String> = []
        for name in deleting where stored[name] == nil {
            for log in (logsByTopic[name] ?? [:]).values {
                do { try logManager.deleteLog(log.topicPartition) } catch {
                    stillDeleting.insert(name)
                    logger.error("could not finish deleting a partition", metadata: ["partition": "\(log.topicPartition)", "error": "\(error)"])
                }
            }
            logsByTopic[name] = nil
        }
        for (name, partitionLogs) in logsByTopic where stored[name] == nil {
            let count = (partitionLogs.keys.max() ?? 0) + 1
            stored[name] = StoredTopic(name: name, id: KafkaUUID.random().description, partitions: count, configs: [:])
            logger.info("adopted partition directories without a topic entry", metadata: ["topic": "\(name)", "partitions": "\(count)"])
        }
        var newState = State()
        newState.deleting = stillDeleting
        for (name, entry) in stored {
            let logConfiguration = configuration.logConfiguration(overrides: entry.configs)
            var partitions: [PartitionLog] = []
            for index in 0..<entry.partitions {
                if let log = logsByTopic[name]?[index] {
                    partitions.append(log)
                } else {
                    partitions.append(try logManager.createLog(TopicPartition(topic: name, partition: index), configuration: logConfiguration))
                }
            }
            let topic = Topic(name: name, id: KafkaUUID(entry.id) ?? KafkaUUID.random(), partitions: partitions, overrides: entry.configs)
            newState.topics[name] = topic
            newState.byId[topic.id] = topic
        }
        state.withLock { $0 = newState }
        try persist()
    }

    public func topic(named name: String) -> Topic? { state.withLock { $0.topics[name] } }
    public func topic(id: KafkaUUID) -> Topic? { state.withLock { $0.byId[id] } }
    public var allTopics: [Topic] { state.withLock { Array($0.topics.values) }.sorted { $0.name < $1.name } }

    public func partition(_ topic: String, _ index: Int32) -> PartitionLog? {
        state.withLock { $0.topics[topic] }?.partition(index)
    }

    /// Kafka's topic name rule: `[a-zA-Z0-9._-]{1,249}`, not `.` or `..`.
    public static func validateName(_ name: String) -> String? {
        if name.isEmpty { return "Topic name is illegal, it can't be empty" }
        if name == "." || name == ".." { return "Topic name cannot be \".\" or \"..\"" }
        if name.utf8.count > 249 { return "Topic name is illegal, it can't be longer than 249 characters" }
        for byte in name.utf8 {
            let ok = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D
            if !ok { return "Topic name \(name) is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'" }
        }
        return nil
    }

    /// Creates a topic. `validateOnly` checks everything without creating.
    @discardableResult
    public func createTopic(
        name: String, partitions: Int32, replicationFactor: Int16, configs: [String: String], validateOnly: Bool = false
    ) throws(TopicError) -> Topic? {
        if let reason = Self.validateName(name) { throw TopicError(.invalidTopicException, reason) }
        let count = partitions == -1 ? configuration.numPartitions : partitions
        guard count >= 1 else { throw TopicError(.invalidPartitions, "Number of partitions must be larger than 0.") }
        guard count <= 100_000 else { throw TopicError(.invalidPartitions, "Number of partitions \(count) exceeds the limit of 100000.") }
        let factor = replicationFactor == -1 ? configuration.defaultReplicationFactor : replicationFactor
        guard factor == 1 else {
            throw TopicError(.invalidReplicationFactor, "Replication factor: \(factor) larger than available brokers: 1.")
        }
        for (key, value) in configs {
            if let reason = TopicConfigs.validate(name: key, value: value) { throw TopicError(.invalidConfig, reason) }
        }
        return try adminLock.withLock { _ throws(TopicError) -> Topic? in
            if topic(named: name) != nil { throw TopicError(.topicAlreadyExists, "Topic '\(name)' already exists.") }
            try checkBudget(adding: Int(count))
            if state.withLock({ $0.deleting.contains(name) }) {
                throw TopicError(.kafkaStorageError, "Topic '\(name)' is still being deleted (a directory could not be renamed); the next restart finishes it.")
            }
            if validateOnly { return nil }
            let logConfiguration = configuration.logConfiguration(overrides: configs)
            let logs: [PartitionLog]
            do {
                // All or nothing: on failure no directory of this topic is left behind.
                logs = try logManager.createLogs((0..<count).map { TopicPartition(topic: name, partition: $0) }, configuration: logConfiguration)
            } catch {
                throw TopicError(.kafkaStorageError, "creating topic \(name): \(error)")
            }
            let topic = Topic(name: name, id: KafkaUUID.random(), partitions: logs, overrides: configs)
            state.withLock {
                $0.topics[name] = topic
                $0.byId[topic.id] = topic
            }
            try persistOrThrow()
            logger.info("created topic", metadata: ["topic": "\(name)", "partitions": "\(count)"])
            return topic
        }
    }

    /// Deletes a topic all or nothing. The commit point is the atomic rewrite of `petrel-topics.json`
    /// without the topic and with its name under `deleting`; if that write fails (e.g. the disk is
    /// full) nothing changed and the answer is `KAFKA_STORAGE_ERROR`. After it, the deletion is
    /// rolled forward: the partition logs are renamed `-delete` (LogManager.deleteLog), then the
    /// tombstone is dropped with another write.
    ///
    /// Crash points: before the commit, the old file still lists the topic and nothing was renamed;
    /// after it, the next load renames away whatever partition directories of a `deleting` topic are
    /// still there (instead of adopting them as unknown directories) and removes the `-delete` ones, so
    /// an answered deletion is complete after a restart. A rename that fails after the commit is
    /// logged, keeps the tombstone (and refuses re-creating the name) until the next load finishes it.
    public func deleteTopic(name: String) throws(TopicError) {
        guard configuration.deleteTopicEnable else { throw TopicError(.topicDeletionDisabled, "Topic deletion is disabled.") }
        try adminLock.withLock { _ throws(TopicError) in
            guard let topic = topic(named: name) else {
                throw TopicError(.unknownTopicOrPartition, "This server does not host this topic-partition.")
            }
            // 1. Commit.
            let (remaining, deleting) = state.withLock { s in
                (Array(s.topics.values.filter { $0.name != name }), s.deleting.union([name]))
            }
            do { try persist(remaining, deleting: deleting) } catch {
                throw TopicError(.kafkaStorageError, "deleting \(name): writing topic metadata: \(error)")
            }
            state.withLock { s in
                s.topics[name] = nil
                s.byId[topic.id] = nil
                s.deleting.insert(name)
            }
            // 2. Roll forward.
            // One batch off the appender (renames, one data-dir sync, one checkpoint write each).
            var complete = true
            let present = topic.partitions.map(\.topicPartition).filter { logManager.log(for: $0) != nil }
            do throws(CommitLogError) { try logManager.deleteLogs(present) } catch {
                complete = false
                logger.error("could not rename a deleted partition away; the next start finishes it", metadata: ["topic": "\(name)", "error": "\(error)"])
            }
            // 3. Drop the tombstone (if this write fails, the next load finds nothing left to do).
            if complete {
                state.withLock { _ = $0.deleting.remove(name) }
                do { try persist() } catch {
                    logger.warning("could not drop the deletion tombstone", metadata: ["topic": "\(name)", "error": "\(error)"])
                }
            }
            logger.info("deleted topic", metadata: ["topic": "\(name)"])
        }
    }

    public func createPartitions(name: String, count: Int32, validateOnly: Bool) throws(TopicError) {
        try adminLock.withLock { _ throws(TopicError) in
            guard let topic = topic(named: name) else {
                throw TopicError(.unknownTopicOrPartition, "The topic '\(name)' does not exist.")
            }
            let current = Int32(topic.partitions.count)
            guard count > current else {
                throw TopicError(.invalidPartitions, "Topic currently has \(current) partitions, which is higher than the requested \(count).")
            }
            guard count <= 100_000 else { throw TopicError(.invalidPartitions, "Number of partitions \(count) exceeds the limit of 100000.") }
            try checkBudget(adding: Int(count - current))
            if validateOnly { return }
            let logConfiguration = configuration.logConfiguration(overrides: topic.overrides)
            var logs = topic.partitions
            do {
                logs += try logManager.createLogs(
                    (current..<count).map { TopicPartition(topic: name, partition: $0) }, configuration: logConfiguration)
            } catch {
                throw TopicError(.kafkaStorageError, "adding partitions to \(name): \(error)")
            }
            replace(Topic(name: name, id: topic.id, partitions: logs, overrides: topic.overrides))
            try persistOrThrow()
        }
    }

    /// Replaces the topic's config overrides (AlterConfigs) or edits them (IncrementalAlterConfigs)
    /// and applies the new log configuration to every partition.
    public func alterConfigs(
        name: String, validateOnly: Bool, _ change: ([String: String]) throws(TopicError) -> [String: String]
    ) throws(TopicError) {
        try adminLock.withLock { _ throws(TopicError) in
            guard let topic = topic(named: name) else {
                throw TopicError(.unknownTopicOrPartition, "The topic '\(name)' does not exist.")
            }
            let overrides = try change(topic.overrides)
            for (key, value) in overrides {
                if let reason = TopicConfigs.validate(name: key, value: value) { throw TopicError(.invalidConfig, reason) }
            }
            if validateOnly { return }
            let logConfiguration = configuration.logConfiguration(overrides: overrides)
            for log in topic.partitions { log.updateConfiguration(logConfiguration) }
            replace(Topic(name: name, id: topic.id, partitions: topic.partitions, overrides: overrides))
            try persistOrThrow()
        }
    }

    /// Installs a new effective broker configuration (dynamic broker configs changed) and applies the
    /// resulting topic defaults to every partition, without a restart.
    public func reconfigure(_ configuration: BrokerConfiguration) {
        adminLock.withLock { _ in
            configurationBox.withLock { $0 = configuration }
            for topic in allTopics {
                let logConfiguration = configuration.logConfiguration(overrides: topic.overrides)
                for log in topic.partitions { log.updateConfiguration(logConfiguration) }
            }
        }
    }

    /// Refuses, before anything is created, partitions that would not fit in the descriptor budget.
    private func checkBudget(adding count: Int) throws(TopicError) {
        do { try logManager.checkPartitionBudget(adding: count) } catch {
            throw TopicError(.policyViolation, error.message)
        }
    }

    private func replace(_ topic: Topic) {
        state.withLock {
            $0.topics[topic.name] = topic
            $0.byId[topic.id] = topic
        }
    }

    private func persistOrThrow() throws(TopicError) {
        do { try persist() } catch { throw TopicError(.kafkaStorageError, "writing topic metadata: \(error)") }
    }

    private func persist() throws {
        let (topics, deleting) = state.withLock { (Array($0.topics.values), $0.deleting) }
        try persist(topics, deleting: deleting)
    }

    private func persist(_ topics: [Topic], deleting: Set<String>) throws {
        let topics = topics.sorted { $0.name < $1.name }
        let stored = StoredMetadata(
            version: 1,
            topics: topics.map { StoredTopic(name: $0.name, id: $0.id.description, partitions: Int32($0.partitions.count), configs: $0.overrides) },
            deleting: deleting.isEmpty ? nil : deleting.sorted())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try io.writeFileAtomically(metadataPath, Array(try encoder.encode(stored)))
    }
}
