import DiskIO
import Foundation
import KafkaWire
import Logging
import Synchronization

/// Dynamic broker configs: AlterConfigs / IncrementalAlterConfigs on the BROKER resource, for this
/// node (its id: DYNAMIC_BROKER_CONFIG) or the cluster-wide default ("" : DYNAMIC_DEFAULT_BROKER_CONFIG),
/// over Kafka's dynamically updatable set; anything else is INVALID_REQUEST, as in Kafka. Kept in
/// `DIR/petrel-dynamic-config.json` (Kafka keeps them in the metadata log), written atomically, and
/// layered over the static configuration: per-broker over default over static.
///
/// What Petrel applies at once: every `log.*` topic default (and `message.max.bytes`,
/// `compression.type`, `producer.id.expiration.ms`) on every partition without an override,
/// `log.retention.check.interval.ms`, and the connection limits (`max.connections`,
/// `max.connections.per.ip(.overrides)`, for new connections) and Petrel's `log.level`. The rest of the set is accepted and
/// kept (thread counts, cleaner buffers) and takes effect at the next start.
public final class DynamicBrokerConfig: Sendable {
    public static let fileName = "petrel-dynamic-config.json"

    /// Kafka's dynamic broker config names that Petrel knows: the topic-default synonyms
    /// (DynamicLogConfig), the cleaner's, the thread pools', the connection quotas', the producer
    /// state manager's, plus `log.retention.check.interval.ms` (Petrel: not dynamic in Kafka).
    public static let dynamicNames: Set<String> = {
        var names: Set<String> = [
            "log.cleaner.threads", "log.cleaner.io.max.bytes.per.second", "log.cleaner.dedupe.buffer.size",
            "log.cleaner.io.buffer.size", "log.cleaner.io.buffer.load.factor", "log.cleaner.backoff.ms",
            "num.io.threads", "num.network.threads", "num.replica.fetchers", "num.recovery.threads.per.data.dir", "background.threads",
            "max.connections", "max.connections.per.ip", "max.connections.per.ip.overrides", "max.connection.creation.rate",
            "producer.id.expiration.ms", "log.retention.check.interval.ms", "log.level",
        ]
        for definition in TopicConfigs.all {
            for synonym in definition.brokerSynonyms { names.insert(synonym.name) }
        }
        return names
    }()

    struct Stored: Codable, Sendable {
        var version = 1
        var broker: [String: String] = [:]
        var clusterDefault: [String: String] = [:]
    }

    private let base: BrokerConfiguration
    private let io: any FileIO
    private let logger: Logger
    private let state = Mutex(Stored())
    private var path: String { base.dataDirectory + "/" + Self.fileName }

    public init(base: BrokerConfiguration, io: any FileIO, logger: Logger) {
        self.base = base
        self.io = io
        self.logger = logger
    }

    /// Reads the stored configs (an unreadable entry is logged and skipped, never fatal).
    public func load() throws {
        guard let bytes = try io.readWholeFile(path) else { return }
        let stored = try JSONDecoder().decode(Stored.self, from: Data(bytes))
        var kept = Stored()
        var check = base
        for (key, value) in stored.clusterDefault.sorted(by: { $0.key < $1.key }) {
            do { try check.applyDynamic(key: key, value: value, clusterDefault: true); kept.clusterDefault[key] = value } catch {
                logger.error("ignoring stored dynamic broker config", metadata: ["config": "\(key)", "error": "\(error)"])
            }
        }
        for (key, value) in stored.broker.sorted(by: { $0.key < $1.key }) {
            do { try check.applyDynamic(key: key, value: value, clusterDefault: false); kept.broker[key] = value } catch {
                logger.error("ignoring stored dynamic broker config", metadata: ["config": "\(key)", "error": "\(error)"])
            }
        }
        state.withLock { $0 = kept }
    }

    public var brokerConfigs: [String: String] { state.withLock { $0.broker } }
    public var defaultConfigs: [String: String] { state.withLock { $0.clusterDefault } }

    /// Static configuration with the default, then the per-broker dynamic configs applied.
    public func effective() -> BrokerConfiguration {
        let stored = state.withLock { $0 }
        return (try? Self.layer(base, stored)) ?? base
    }

    private static func layer(_ base: BrokerConfiguration, _ stored: Stored) throws(ConfigurationError) -> BrokerConfiguration {
        var configuration = base
        for (key, value) in stored.clusterDefault.sorted(by: { $0.key < $1.key }) {
            try configuration.applyDynamic(key: key, value: value, clusterDefault: true)
        }
        for (key, value) in stored.broker.sorted(by: { $0.key < $1.key }) {
            try configuration.applyDynamic(key: key, value: value, clusterDefault: false)
        }
        return configuration
    }

    /// Changes one resource's dynamic configs (`change` maps the current set to the new one),
    /// validates, persists, and returns the new effective configuration (nil with validateOnly).
    public func alter(
        clusterDefault: Bool, validateOnly: Bool, _ change: ([String: String]) throws(TopicError) -> [String: String]
    ) throws(TopicError) -> BrokerConfiguration? {
        try state.withLock { stored throws(TopicError) -> BrokerConfiguration? in
            var updated = stored
            let current = clusterDefault ? stored.clusterDefault : stored.broker
            let next = try change(current)
            let refused = next.keys.filter { !Self.dynamicNames.contains($0) }.sorted()
            if !refused.isEmpty {
                throw TopicError(.invalidRequest, "Cannot update these configs dynamically: \(refused.joined(separator: ", "))")
            }
            if clusterDefault { updated.clusterDefault = next } else { updated.broker = next }
            let configuration: BrokerConfiguration
            do { configuration = try Self.layer(base, updated) } catch {
                throw TopicError(.invalidConfig, "\(error)")
            }
            if validateOnly { return nil }
            do {
                let data = try JSONEncoder().encode(updated)
                try io.writeFileAtomically(path, Array(data))
            } catch {
                throw TopicError(.kafkaStorageError, "cannot persist dynamic broker configs: \(error)")
            }
            stored = updated
            logger.info(
                "dynamic broker configs changed",
                metadata: ["resource": "\(clusterDefault ? "default" : "broker")", "configs": "\(next.keys.sorted().joined(separator: ","))"])
            return configuration
        }
    }
}
