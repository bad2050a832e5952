import CommitLog
import RecordFormat

/// Kafka's `ConfigEntry.ConfigType` as sent in DescribeConfigs v3+.
public enum ConfigType: Int8, Sendable {
    case unknown = 0, boolean = 1, string = 2, int = 3, short = 4, long = 5, double = 6, list = 7, `class` = 8, password = 9
}

/// Kafka's `DescribeConfigsResponse.ConfigSource`.
public enum ConfigSource: Int8, Sendable {
    case unknown = 0
    case dynamicTopicConfig = 1
    case dynamicBrokerConfig = 2
    case dynamicDefaultBrokerConfig = 3
    case staticBrokerConfig = 4
    case defaultConfig = 5
    case dynamicBrokerLoggerConfig = 6
}

/// One topic-level config: Kafka's name, type, default and the broker configs that set its default
/// (most specific first, e.g. `log.retention.ms`, `log.retention.minutes`, `log.retention.hours`).
public struct TopicConfigDefinition: Sendable {
    public var name: String
    public var type: ConfigType
    public var defaultValue: String
    /// Broker-level synonyms, most specific first, with a factor converting their unit to the
    /// topic config's unit (e.g. hours → ms).
    public var brokerSynonyms: [(name: String, factor: Int64)]
    /// Validates a value; returns a reason when invalid.
    public var validate: @Sendable (String) -> String?

    init(
        _ name: String, _ type: ConfigType, _ defaultValue: String,
        broker: [(String, Int64)] = [], validate: @escaping @Sendable (String) -> String? = { _ in nil }
    ) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.brokerSynonyms = broker.map { (name: $0.0, factor: $0.1) }
        self.validate = validate
    }
}

/// The topic configs Petrel knows, with Kafka 3.9's names and defaults.
public enum TopicConfigs {
    static func long(min: Int64 = .min) -> @Sendable (String) -> String? {
        { value in
            guard let number = Int64(value) else { return "'\(value)' is not a long" }
            return number < min ? "value \(number) is below the minimum \(min)" : nil
        }
    }

    static func int(min: Int64 = Int64(Int32.min)) -> @Sendable (String) -> String? {
        { value in
            guard let number = Int32(value) else { return "'\(value)' is not an int" }
            return Int64(number) < min ? "value \(number) is below the minimum \(min)" : nil
        }
    }

    static func oneOf(_ allowed: [String]) -> @Sendable (String) -> String? {
        { value in allowed.contains(value) ? nil : "'\(value)' is not one of \(allowed.joined(separator: ", "))" }
    }

    static let boolean: @Sendable (String) -> String? = { value in
        ["true", "false"].contains(value.lowercased()) ? nil : "'\(value)' is not a boolean"
    }

    static func double(in range: ClosedRange<Double>) -> @Sendable (String) -> String? {
        { value in
            guard let number = Double(value) else { return "'\(value)' is not a double" }
            return range.contains(number) ? nil : "value \(number) is outside \(range)"
        }
    }

    static let cleanupPolicy: @Sendable (String) -> String? = { value in
        let parts = value.split(separator: ",").map { $0.trimmingWhitespace() }
        if parts.isEmpty { return "cleanup.policy must not be empty" }
        for part in parts where part != "delete" && part != "compact" {
            return "'\(part)' is not a valid cleanup.policy (delete, compact)"
        }
        return nil
    }

    static let maxLong = String(Int64.max)

    public static let all: [TopicConfigDefinition] = [
        .init("cleanup.policy", .list, "delete", broker: [("log.cleanup.policy", 1)], validate: cleanupPolicy),
        .init(
            "compression.type", .string, "producer", broker: [("compression.type", 1)],
            validate: oneOf(["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"])),
        .init("delete.retention.ms", .long, "86400000", broker: [("log.cleaner.delete.retention.ms", 1)], validate: long(min: 0)),
        .init("file.delete.delay.ms", .long, "60000", broker: [("log.segment.delete.delay.ms", 1)], validate: long(min: 0)),
        .init("flush.messages", .long, maxLong, broker: [("log.flush.interval.messages", 1)], validate: long(min: 1)),
        .init("flush.ms", .long, maxLong, broker: [("log.flush.interval.ms", 1)], validate: long(min: 0)),
        .init("index.interval.bytes", .int, "4096", broker: [("log.index.interval.bytes", 1)], validate: int(min: 0)),
        .init("max.compaction.lag.ms", .long, maxLong, broker: [("log.cleaner.max.compaction.lag.ms", 1)], validate: long(min: 1)),
        .init("max.message.bytes", .int, "1048588", broker: [("message.max.bytes", 1)], validate: int(min: 0)),
        .init("message.timestamp.after.max.ms", .long, maxLong, broker: [("log.message.timestamp.after.max.ms", 1)], validate: long(min: 0)),
        .init("message.timestamp.before.max.ms", .long, maxLong, broker: [("log.message.timestamp.before.max.ms", 1)], validate: long(min: 0)),
        .init(
            "message.timestamp.type", .string, "CreateTime", broker: [("log.message.timestamp.type", 1)],
            validate: oneOf(["CreateTime", "LogAppendTime"])),
        .init("min.cleanable.dirty.ratio", .double, "0.5", broker: [("log.cleaner.min.cleanable.ratio", 1)], validate: double(in: 0...1)),
        .init("min.compaction.lag.ms", .long, "0", broker: [("log.cleaner.min.compaction.lag.ms", 1)], validate: long(min: 0)),
        .init("min.insync.replicas", .int, "1", broker: [("min.insync.replicas", 1)], validate: int(min: 1)),
        .init("preallocate", .boolean, "false", broker: [("log.preallocate", 1)], validate: boolean),
        .init("retention.bytes", .long, "-1", broker: [("log.retention.bytes", 1)], validate: long()),
        .init(
            "retention.ms", .long, "604800000",
            broker: [("log.retention.ms", 1), ("log.retention.minutes", 60_000), ("log.retention.hours", 3_600_000)],
            validate: long(min: -1)),
        .init("segment.bytes", .int, "1073741824", broker: [("log.segment.bytes", 1)], validate: int(min: 14)),
        .init("segment.index.bytes", .int, "10485760", broker: [("log.index.size.max.bytes", 1)], validate: int(min: 4)),
        .init("segment.jitter.ms", .long, "0", broker: [("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", 3_600_000)], validate: long(min: 0)),
        .init("segment.ms", .long, "604800000", broker: [("log.roll.ms", 1), ("log.roll.hours", 3_600_000)], validate: long(min: 1)),
        .init("unclean.leader.election.enable", .boolean, "false", broker: [("unclean.leader.election.enable", 1)], validate: boolean),
    ]

    public static let byName: [String: TopicConfigDefinition] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// Validates one topic config override; nil when valid, else Kafka-style reason.
    public static func validate(name: String, value: String?) -> String? {
        guard let definition = byName[name] else { return "Unknown topic config name: \(name)" }
        guard let value else { return nil }
        if let reason = definition.validate(value) { return "Invalid value \(value) for configuration \(name): \(reason)" }
        return nil
    }
}

/// The effective value of one topic config and where it came from.
public struct ResolvedConfig: Sendable {
    public var name: String
    public var value: String
    public var source: ConfigSource
    public var type: ConfigType
    /// Kafka's synonym list, most specific first (topic override, broker configs, default).
    public var synonyms: [(name: String, value: String, source: ConfigSource)]
}

extension BrokerConfiguration {
    /// Resolves every topic config for a topic with `overrides`: topic override, else broker
    /// static config (through its synonyms), else Kafka's default.
    public func resolveTopicConfigs(overrides: [String: String]) -> [ResolvedConfig] {
        TopicConfigs.all.map { definition in
            var synonyms: [(name: String, value: String, source: ConfigSource)] = []
            if let value = overrides[definition.name] {
                synonyms.append((definition.name, value, .dynamicTopicConfig))
            }
            for synonym in definition.brokerSynonyms {
                let layers: [(String?, ConfigSource)] = [
                    (dynamicBrokerConfigs[synonym.name], .dynamicBrokerConfig),
                    (dynamicDefaultConfigs[synonym.name], .dynamicDefaultBrokerConfig),
                    (staticConfigs[synonym.name], .staticBrokerConfig),
                ]
                for case (let raw?, let source) in layers {
                    var value = raw
                    if synonym.factor != 1, let number = Int64(raw) {
                        value = String(number.multipliedReportingOverflow(by: synonym.factor).overflow ? Int64.max : number * synonym.factor)
                    }
                    synonyms.append((synonym.name, value, source))
                }
            }
            synonyms.append((definition.name, definition.defaultValue, .defaultConfig))
            let winner = synonyms[0]
            return ResolvedConfig(name: definition.name, value: winner.value, source: winner.source, type: definition.type, synonyms: synonyms)
        }
    }

    /// The storage settings for a topic with `overrides`.
    public func logConfiguration(overrides: [String: String]) -> LogConfiguration {
        var values: [String: String] = [:]
        for resolved in resolveTopicConfigs(overrides: overrides) { values[resolved.name] = resolved.value }
        func long(_ key: String) -> Int64 { Int64(values[key] ?? "") ?? Int64(TopicConfigs.byName[key]!.defaultValue)! }
        var configuration = LogConfiguration()
        configuration.segmentBytes = Int(long("segment.bytes"))
        configuration.segmentMs = long("segment.ms")
        configuration.segmentIndexBytes = Int(long("segment.index.bytes"))
        configuration.indexIntervalBytes = Int(long("index.interval.bytes"))
        configuration.flushMessages = long("flush.messages")
        configuration.flushMs = long("flush.ms")
        configuration.retentionMs = long("retention.ms")
        configuration.retentionBytes = long("retention.bytes")
        configuration.maxMessageBytes = Int(long("max.message.bytes"))
        configuration.fileDeleteDelayMs = long("file.delete.delay.ms")
        configuration.messageTimestampType = values["message.timestamp.type"] == "LogAppendTime" ? .logAppendTime : .createTime
        configuration.producerIdExpirationMs = producerIdExpirationMs
        switch values["compression.type"] ?? "producer" {
        case "uncompressed": configuration.compressionType = CompressionCodec.none
        case "gzip": configuration.compressionType = .gzip
        case "snappy": configuration.compressionType = .snappy
        case "lz4": configuration.compressionType = .lz4
        case "zstd": configuration.compressionType = .zstd
        default: configuration.compressionType = nil
        }
        configuration.messageTimestampBeforeMaxMs = long("message.timestamp.before.max.ms")
        configuration.messageTimestampAfterMaxMs = long("message.timestamp.after.max.ms")
        configuration.cleanupPolicy = CleanupPolicy(kafkaValue: values["cleanup.policy"] ?? "delete")
        configuration.deleteRetentionMs = long("delete.retention.ms")
        configuration.minCleanableDirtyRatio = Double(values["min.cleanable.dirty.ratio"] ?? "") ?? 0.5
        configuration.minCompactionLagMs = long("min.compaction.lag.ms")
        configuration.maxCompactionLagMs = long("max.compaction.lag.ms")
        configuration.segmentJitterMs = long("segment.jitter.ms")
        return configuration
    }
}
