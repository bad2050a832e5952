public import CommitLog

/// Broker settings, with Kafka's broker config names. Built from defaults, then a
/// `server.properties` file, then `--set key=value` overrides, validated once.
public struct BrokerConfiguration: Sendable {
    /// Address to listen on. Kafka: `listeners` (`PLAINTEXT://HOST:PORT`). Default: 127.0.0.1:9092.
    public var listenHost: String = "127.0.0.1"
    public var listenPort: Int = 9092
    /// Host/port advertised in Metadata. Kafka: `advertised.listeners`. Default: the listen address.
    public var advertisedHost: String?
    public var advertisedPort: Int?
    /// Data directory. Kafka: `log.dirs` / `log.dir`. Default: `./petrel-data`.
    public var dataDirectory: String = "./petrel-data"
    /// Kafka: `node.id` (or `broker.id`). Default: 0 (Kafka's `broker.id` default is -1 = generated).
    public var nodeId: Int32 = 0
    /// Kafka: `num.partitions`. Default: 1.
    public var numPartitions: Int32 = 1
    /// Kafka: `default.replication.factor`. Default: 1 (the only valid value on one node).
    public var defaultReplicationFactor: Int16 = 1
    /// Kafka: `auto.create.topics.enable`. Default: true.
    public var autoCreateTopics: Bool = true
    /// Kafka: `message.max.bytes` (largest batch). Default: 1048588.
    public var messageMaxBytes: Int = 1_048_588
    /// Kafka: `socket.request.max.bytes` (largest request frame). Default: 104857600.
    public var socketRequestMaxBytes: Int = 104_857_600
    /// Petrel: `petrel.batch.decompressed.max.bytes` — the most bytes a compressed batch's records
    /// may decompress to when Produce validates them (Kafka streams them with no limit). A larger
    /// batch is refused with CORRUPT_MESSAGE. Default: 268435456 (256 MiB).
    public var decompressedBatchBytesMax: Int = 256 << 20
    /// Petrel: `petrel.legacy.message.formats.enable` — serve the message formats v0/v1 that Kafka 4
    /// dropped (KIP-896): Produce v0-2 message sets are converted to record batches v2, Fetch v0-3
    /// and ListOffsets v0 are answered with down-converted message sets. `false` behaves like
    /// Kafka 4's floor (those requests close the connection). Default: true.
    public var legacyMessageFormats: Bool = true
    /// Partitions one CreateTopics or CreatePartitions request may create, summed over its topics;
    /// more fails the whole request with POLICY_VIOLATION. Kafka (KRaft) has the same rule with a
    /// fixed 10000 (`MAX_PARTITIONS_PER_BATCH`); Petrel names it `max.partitions.per.request`.
    /// Default: 10000.
    public var maxPartitionsPerRequest: Int = 10_000
    /// Partitions this broker may host in total (internal topics included); a CreateTopics or
    /// CreatePartitions that would exceed it fails for that topic with POLICY_VIOLATION. Kafka has
    /// no such cap; the name is KIP-578's `max.broker.partitions`. Default: 50000.
    public var maxBrokerPartitions: Int = 50_000
    /// Kafka: `queued.max.request.bytes` — bytes of request frames being received or queued across
    /// all connections. Kafka's default -1 is unbounded; Petrel's is 512 MiB. While it is used up,
    /// the broker stops reading from connections (backpressure) instead of failing them. Must be at
    /// least `socket.request.max.bytes` (a larger frame could never be completed).
    public var queuedMaxRequestBytes: Int = 512 << 20
    /// Petrel: `request.read.timeout.ms` — a connection holding a partly received request that
    /// makes no progress (no new byte) for this long is closed, and its buffered bytes are freed.
    /// Kafka has no such timeout (only `connections.max.idle.ms`, 600000, for idle connections).
    /// Default: 30000.
    public var requestReadTimeoutMs: Int64 = 30_000
    /// Kafka: `delete.topic.enable`. Default: true.
    public var deleteTopicEnable: Bool = true
    /// Kafka: `group.initial.rebalance.delay.ms`. Default: 3000.
    public var groupInitialRebalanceDelayMs: Int64 = 3000
    /// Kafka: `offsets.topic.num.partitions`. Default: 50.
    public var offsetsTopicPartitions: Int32 = 50
    /// Transactions: `transaction.max.timeout.ms`, `transactional.id.expiration.ms`,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` (Kafka's defaults).
    public var transactions = TransactionSettings()
    /// Kafka: `group.min.session.timeout.ms`. Default: 6000.
    public var groupMinSessionTimeoutMs: Int32 = 6000
    /// Kafka: `group.max.session.timeout.ms`. Default: 1800000.
    public var groupMaxSessionTimeoutMs: Int32 = 1_800_000
    /// Kafka: `group.consumer.heartbeat.interval.ms` (KIP-848 groups). Default: 5000.
    public var groupConsumerHeartbeatIntervalMs: Int32 = 5000
    /// Kafka: `group.consumer.session.timeout.ms` (KIP-848 groups). Default: 45000.
    public var groupConsumerSessionTimeoutMs: Int32 = 45000
    /// Kafka: `group.consumer.assignors`; the first is the default. Default: uniform,range.
    public var groupConsumerAssignors: [String] = ["uniform", "range"]
    /// Share groups (KIP-932): `group.share.*` and `share.coordinator.state.topic.num.partitions`.
    public var shareGroups = ShareGroupSettings()
    /// Kafka: `offsets.retention.minutes`, in ms. Default: 7 days.
    public var offsetsRetentionMs: Int64 = 7 * 24 * 3_600_000
    /// Kafka: `producer.id.expiration.ms`. Default: 86400000 (1 day).
    public var producerIdExpirationMs: Int64 = 86_400_000
    /// Kafka: `log.retention.check.interval.ms`. Default: 300000.
    public var retentionCheckIntervalMs: Int64 = 300_000
    /// The log cleaner: Kafka `log.cleaner.enable`, `log.cleaner.dedupe.buffer.size`,
    /// `log.cleaner.io.buffer.size`, `log.cleaner.backoff.ms`, `log.cleaner.io.max.bytes.per.second`,
    /// `log.cleaner.threads` (accepted; Petrel runs one thread). Defaults as Kafka's.
    public var cleaner = CleanerConfiguration()
    /// Petrel: `petrel.io.engine` = `uring` (default, falls back to posix when unavailable) or `posix`.
    public var ioEngine: String = "uring"
    /// Petrel: `petrel.fetch.zero.copy` — serve fetches with sendfile (default true) or pread copies.
    public var fetchZeroCopy: Bool = true
    /// Petrel: `petrel.fetch.cold.read.offload` — before a fetch response is sendfile'd, ranges not
    /// in the page cache are read into it on a reader thread instead of blocking the event loop on
    /// disk (Kafka's KAFKA-7504), then sent by sendfile like resident ones. Default true.
    public var fetchColdReadOffload: Bool = true
    /// Petrel: `log.level` — the broker's log level (trace, debug, info, notice, warning, error,
    /// critical); nil = the `--log-level` option. Dynamic: IncrementalAlterConfigs on the BROKER
    /// resource changes it without a restart (Kafka sets log4j levels through its own API).
    public var logLevel: String?
    /// Petrel: `petrel.log.open.files.max` — the descriptor budget for segment files (Kafka has no
    /// equivalent: it keeps every segment open and mmaps every index). Each partition keeps its active
    /// segment's `.log` open; inactive segments are opened on demand and closed least recently used
    /// first; index files are never held open. CreateTopics/CreatePartitions that would not fit fail
    /// with POLICY_VIOLATION. Default (unset or 0): the soft `RLIMIT_NOFILE` (raised to the hard limit
    /// at start) minus a reserve of an eighth (at least 256) for sockets and other files.
    public var logOpenFilesMax: Int = 0
    /// Petrel: `petrel.disk.full.probe.interval.ms` — how often a partition made read-only by a full
    /// disk tries a probe write to come back online (default 2000). Kafka has no such setting: it
    /// takes the log dir offline until a restart.
    public var diskFullProbeIntervalMs: Int64 = 2000
    /// Petrel: `metrics.listen` — HOST:PORT of the Prometheus endpoint (`GET /metrics`, `GET /health`)
    /// on its own listener. Default: off (Kafka itself exposes JMX, not Prometheus); the production
    /// configuration in README sets `127.0.0.1:9404`. `off` or empty disables it.
    public var metricsListen: (host: String, port: Int)?
    /// Kafka: `max.connections` — client connections the broker accepts at once; more are closed
    /// right after accept. Default: 2147483647 (unlimited), as Kafka.
    public var maxConnections: Int = Int(Int32.max)
    /// Kafka: `max.connections.per.ip` — connections from one IP address at once; more are closed
    /// right after accept. Default: 2147483647, as Kafka.
    public var maxConnectionsPerIp: Int = Int(Int32.max)
    /// Kafka: `max.connections.per.ip.overrides` — `host:count,host:count`.
    public var maxConnectionsPerIpOverrides: [String: Int] = [:]
    /// Kafka: `connections.max.idle.ms` — a connection with no request or response for this long is
    /// closed. Default: 600000 (10 minutes), as Kafka.
    public var connectionsMaxIdleMs: Int64 = 600_000
    /// Kafka: `max.incremental.fetch.session.cache.slots` — KIP-227 fetch sessions kept at once
    /// (0: no sessions, every fetch is a full fetch). Default: 1000.
    public var maxIncrementalFetchSessionCacheSlots: Int = 1000
    /// Kafka: `quota.window.num` / `quota.window.size.seconds` — client quota rates are measured over
    /// this many samples of this length. Defaults: 11 and 1.
    public var quotaWindowNum: Int = 11
    public var quotaWindowSizeSeconds: Int = 1
    /// Petrel: `petrel.health.log.interval.ms` — how often `petrel serve` logs its health line
    /// (throughput, connections, largest consumer lag) at info level. Default: 60000.
    public var healthLogIntervalMs: Int64 = 60_000

    /// Every static key=value given (file and `--set`), including topic-default synonyms such as
    /// `log.retention.hours`; used to resolve topic config defaults and for DescribeConfigs(BROKER).
    public private(set) var staticConfigs: [String: String] = [:]
    /// Dynamic broker configs (AlterConfigs on BROKER resources), per broker and cluster-wide
    /// default; they override the static ones (Kafka's DYNAMIC_BROKER_CONFIG and
    /// DYNAMIC_DEFAULT_BROKER_CONFIG). See `DynamicBrokerConfig`.
    public private(set) var dynamicBrokerConfigs: [String: String] = [:]
    public private(set) var dynamicDefaultConfigs: [String: String] = [:]

    public init() {}

    public var advertisedAddress: (host: String, port: Int) {
        (advertisedHost ?? (listenHost == "0.0.0.0" || listenHost == "::" ? "127.0.0.1" : listenHost), advertisedPort ?? listenPort)
    }

    /// Applies one broker config; unknown keys are kept (Kafka warns and ignores them) unless the
    /// value is invalid for a key we know.
    public mutating func apply(key: String, value: String) throws(ConfigurationError) {
        func int<T: FixedWidthInteger>(_ type: T.Type) throws(ConfigurationError) -> T {
            guard let number = T(value) else { throw ConfigurationError("invalid value '\(value)' for \(key): expected an integer") }
            return number
        }
        func bool() throws(ConfigurationError) -> Bool {
            switch value.lowercased() {
            case "true": return true
            case "false": return false
            default: throw ConfigurationError("invalid value '\(value)' for \(key): expected true or false")
            }
        }
        switch key {
        case "listeners", "listen":
            let (host, port) = try Self.parseListener(value)
            listenHost = host
            listenPort = port
        case "advertised.listeners":
            let (host, port) = try Self.parseListener(value)
            advertisedHost = host
            advertisedPort = port
        case "log.dirs", "log.dir":
            guard let first = value.split(separator: ",").first else { throw ConfigurationError("\(key) is empty") }
            dataDirectory = String(first)
        case "node.id", "broker.id": nodeId = try int(Int32.self)
        case "num.partitions":
            numPartitions = try int(Int32.self)
            guard numPartitions >= 1 else { throw ConfigurationError("num.partitions must be at least 1") }
        case "default.replication.factor":
            defaultReplicationFactor = try int(Int16.self)
            guard defaultReplicationFactor == 1 else { throw ConfigurationError("default.replication.factor must be 1 on a single node") }
        case "auto.create.topics.enable": autoCreateTopics = try bool()
        case "delete.topic.enable": deleteTopicEnable = try bool()
        case "message.max.bytes":
            messageMaxBytes = try int(Int.self)
            guard messageMaxBytes > 0 else { throw ConfigurationError("message.max.bytes must be positive") }
        case "socket.request.max.bytes":
            socketRequestMaxBytes = try int(Int.self)
            guard socketRequestMaxBytes > 0 else { throw ConfigurationError("socket.request.max.bytes must be positive") }
        case "petrel.legacy.message.formats.enable": legacyMessageFormats = try bool()
        case "petrel.batch.decompressed.max.bytes":
            decompressedBatchBytesMax = try int(Int.self)
            guard decompressedBatchBytesMax > 0 else { throw ConfigurationError("petrel.batch.decompressed.max.bytes must be positive") }
        case "group.initial.rebalance.delay.ms": groupInitialRebalanceDelayMs = try int(Int64.self)
        case "max.partitions.per.request":
            maxPartitionsPerRequest = try int(Int.self)
            guard maxPartitionsPerRequest >= 1 else { throw ConfigurationError("max.partitions.per.request must be at least 1") }
        case "max.broker.partitions":
            maxBrokerPartitions = try int(Int.self)
            guard maxBrokerPartitions >= 1 else { throw ConfigurationError("max.broker.partitions must be at least 1") }
        case "queued.max.request.bytes":
            let bytes = try int(Int.self)
            guard bytes == -1 || bytes > 0 else { throw ConfigurationError("queued.max.request.bytes must be positive or -1 (unbounded)") }
            queuedMaxRequestBytes = bytes == -1 ? Int.max : bytes
        case "request.read.timeout.ms":
            requestReadTimeoutMs = try int(Int64.self)
            guard requestReadTimeoutMs >= 1 else { throw ConfigurationError("request.read.timeout.ms must be at least 1") }
        case "log.retention.check.interval.ms":
            retentionCheckIntervalMs = try int(Int64.self)
            guard retentionCheckIntervalMs >= 1 else { throw ConfigurationError("log.retention.check.interval.ms must be at least 1") }
        case "log.cleaner.enable": cleaner.enabled = try bool()
        case "log.cleaner.dedupe.buffer.size":
            cleaner.dedupeBufferBytes = try int(Int.self)
            guard cleaner.dedupeBufferBytes >= 24 * 2 else { throw ConfigurationError("log.cleaner.dedupe.buffer.size is too small") }
        case "log.cleaner.io.buffer.size":
            cleaner.ioBufferBytes = try int(Int.self)
            guard cleaner.ioBufferBytes > 0 else { throw ConfigurationError("log.cleaner.io.buffer.size must be positive") }
        case "log.cleaner.backoff.ms":
            cleaner.backoffMs = try int(Int64.self)
            guard cleaner.backoffMs >= 0 else { throw ConfigurationError("log.cleaner.backoff.ms must not be negative") }
        case "log.cleaner.io.max.bytes.per.second":
            guard let rate = Double(value), rate > 0 else { throw ConfigurationError("invalid value '\(value)' for \(key): expected a positive number") }
            cleaner.ioMaxBytesPerSecond = rate
        case "log.cleaner.threads":
            guard try int(Int.self) >= 1 else { throw ConfigurationError("log.cleaner.threads must be at least 1") }
        case "transaction.max.timeout.ms", "transactional.id.expiration.ms", "transaction.state.log.num.partitions",
            "transaction.abort.timed.out.transaction.cleanup.interval.ms", "transaction.remove.expired.transaction.cleanup.interval.ms":
            try transactions.set(key, try int(Int64.self))
        case "offsets.topic.num.partitions":
            offsetsTopicPartitions = try int(Int32.self)
            guard offsetsTopicPartitions >= 1 else { throw ConfigurationError("offsets.topic.num.partitions must be at least 1") }
        case "producer.id.expiration.ms":
            producerIdExpirationMs = try int(Int64.self)
            guard producerIdExpirationMs >= 1 else { throw ConfigurationError("producer.id.expiration.ms must be positive") }
        case "group.min.session.timeout.ms": groupMinSessionTimeoutMs = try int(Int32.self)
        case "group.max.session.timeout.ms": groupMaxSessionTimeoutMs = try int(Int32.self)
        case "group.consumer.heartbeat.interval.ms":
            groupConsumerHeartbeatIntervalMs = try int(Int32.self)
            guard groupConsumerHeartbeatIntervalMs >= 1 else { throw ConfigurationError("group.consumer.heartbeat.interval.ms must be positive") }
        case "group.consumer.session.timeout.ms":
            groupConsumerSessionTimeoutMs = try int(Int32.self)
            guard groupConsumerSessionTimeoutMs >= 1 else { throw ConfigurationError("group.consumer.session.timeout.ms must be positive") }
        case "group.consumer.assignors":
            let names = value.split(separator: ",").map { String($0.filter { $0 != " " }).lowercased() }.filter { !$0.isEmpty }
            let known = ["uniform", "range"]
            guard !names.isEmpty, names.allSatisfy({ known.contains($0) || $0.hasSuffix("uniformassignor") || $0.hasSuffix("rangeassignor") }) else {
                throw ConfigurationError("group.consumer.assignors must list uniform and/or range")
            }
            groupConsumerAssignors = names.map { $0.hasSuffix("uniformassignor") ? "uniform" : $0.hasSuffix("rangeassignor") ? "range" : $0 }
        case "offsets.retention.minutes": offsetsRetentionMs = try int(Int64.self) * 60_000
        case "petrel.io.engine":
            guard ["uring", "posix"].contains(value) else { throw ConfigurationError("petrel.io.engine must be uring or posix") }
            ioEngine = value
        case "petrel.fetch.zero.copy": fetchZeroCopy = try bool()
        case "petrel.fetch.cold.read.offload": fetchColdReadOffload = try bool()
        case "petrel.log.open.files.max":
            logOpenFilesMax = try int(Int.self)
            guard logOpenFilesMax >= 0 else { throw ConfigurationError("petrel.log.open.files.max must be 0 (derived) or positive") }
        case "petrel.disk.full.probe.interval.ms":
            diskFullProbeIntervalMs = try int(Int64.self)
            guard diskFullProbeIntervalMs >= 1 else { throw ConfigurationError("petrel.disk.full.probe.interval.ms must be at least 1") }
        case "metrics.listen":
            if value.isEmpty || value == "off" {
                metricsListen = nil
            } else {
                let (host, port) = try Self.parseListener(value)
                metricsListen = (host, port)
            }
        case "log.level":
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(value) else {
                throw ConfigurationError("log.level must be one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = value
        case "max.connections":
            maxConnections = try int(Int.self)
            guard maxConnections >= 0 else { throw ConfigurationError("max.connections must not be negative") }
        case "max.connections.per.ip":
            maxConnectionsPerIp = try int(Int.self)
            guard maxConnectionsPerIp >= 0 else { throw ConfigurationError("max.connections.per.ip must not be negative") }
        case "max.connections.per.ip.overrides":
            var overrides: [String: Int] = [:]
            for entry in value.split(separator: ",") {
                let parts = entry.split(separator: ":").map { String($0.filter { $0 != " " }) }
                guard parts.count == 2, let count = Int(parts[1]), count >= 0 else {
                    throw ConfigurationError("invalid entry '\(entry)' in max.connections.per.ip.overrides: expected host:count")
                }
                overrides[parts[0]] = count
            }
            maxConnectionsPerIpOverrides = overrides
        case "petrel.health.log.interval.ms":
            healthLogIntervalMs = try int(Int64.self)
            guard healthLogIntervalMs >= 100 else { throw ConfigurationError("petrel.health.log.interval.ms must be at least 100") }
        case "quota.window.num":
            quotaWindowNum = try int(Int.self)
            guard quotaWindowNum >= 2 else { throw ConfigurationError("quota.window.num must be at least 2") }
        case "quota.window.size.seconds":
            quotaWindowSizeSeconds = try int(Int.self)
            guard quotaWindowSizeSeconds >= 1 else { throw ConfigurationError("quota.window.size.seconds must be at least 1") }
        case "max.incremental.fetch.session.cache.slots":
            maxIncrementalFetchSessionCacheSlots = try int(Int.self)
            guard maxIncrementalFetchSessionCacheSlots >= 0 else { throw ConfigurationError("max.incremental.fetch.session.cache.slots must not be negative") }
        case _ where ShareGroupSettings.keys.contains(key): try shareGroups.set(key, value)
        case "connections.max.idle.ms":
            connectionsMaxIdleMs = try int(Int64.self)
            guard connectionsMaxIdleMs >= 1 else { throw ConfigurationError("connections.max.idle.ms must be at least 1") }
        default:
            // Topic-default synonyms are validated with the topic config they feed.
            for definition in TopicConfigs.all where definition.brokerSynonyms.contains(where: { $0.name == key }) {
                let factor = definition.brokerSynonyms.first { $0.name == key }!.factor
                let checked = factor == 1 ? value : (Int64(value).map { String($0 * factor) } ?? value)
                if let reason = definition.validate(checked) {
                    throw ConfigurationError("invalid value '\(value)' for \(key): \(reason)")
                }
            }
        }
        staticConfigs[key] = value
    }

    /// Accepts `HOST:PORT`, `PLAINTEXT://HOST:PORT` and `[v6]:PORT`.
    public static func parseListener(_ text: String) throws(ConfigurationError) -> (String, Int) {
        var rest = Substring(text.split(separator: ",").first ?? "")
        if let scheme = text.split(separator: ",").first, let marker = scheme.firstRange(of: "://") { rest = scheme[marker.upperBound...] }
        guard let colon = rest.lastIndex(of: ":") else { throw ConfigurationError("expected HOST:PORT, got '\(text)'") }
        var host = String(rest[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "0.0.0.0" }
        guard let port = Int(rest[rest.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError("invalid port in '\(text)'")
        }
        return (host, port)
    }
}

extension BrokerConfiguration {
    /// Applies a dynamic broker config (validated like a static one) without counting it as static.
    public mutating func applyDynamic(key: String, value: String, clusterDefault: Bool) throws(ConfigurationError) {
        let previous = staticConfigs[key]
        try apply(key: key, value: value)
        staticConfigs[key] = previous
        if clusterDefault { dynamicDefaultConfigs[key] = value } else { dynamicBrokerConfigs[key] = value }
    }

    /// The segment-file descriptor budget for an open-file limit of `fileLimit`: the configured
    /// `petrel.log.open.files.max`, or the limit minus a reserve (an eighth, at least 256) for
    /// client sockets, checkpoints and the like.
    public func segmentFilesBudget(fileLimit: Int) -> Int {
        if logOpenFilesMax > 0 { return logOpenFilesMax }
        guard fileLimit > 0, fileLimit != .max else { return .max }
        return max(64, fileLimit - max(256, fileLimit / 8))
    }
}

/// Transaction coordinator settings with Kafka's names and defaults.
public struct TransactionSettings: Sendable, Equatable {
    /// Kafka: `transaction.max.timeout.ms`. Default: 900000.
    public var maxTimeoutMs: Int64 = 900_000
    /// Kafka: `transactional.id.expiration.ms`. Default: 604800000 (7 days).
    public var transactionalIdExpirationMs: Int64 = 604_800_000
    /// Kafka: `transaction.abort.timed.out.transaction.cleanup.interval.ms`. Default: 10000.
    public var abortTimedOutCleanupIntervalMs: Int64 = 10_000
    /// Kafka: `transaction.remove.expired.transaction.cleanup.interval.ms`. Default: 3600000.
    public var removeExpiredCleanupIntervalMs: Int64 = 3_600_000
    /// Kafka: `transaction.state.log.num.partitions`. Default: 50.
    public var stateLogPartitions: Int32 = 50

    public init() {}

    mutating func set(_ key: String, _ value: Int64) throws(ConfigurationError) {
        guard value >= 1 else { throw ConfigurationError("\(key) must be at least 1") }
        switch key {
        case "transaction.max.timeout.ms":
            guard value <= Int64(Int32.max) else { throw ConfigurationError("\(key) is too large") }
            maxTimeoutMs = value
        case "transactional.id.expiration.ms": transactionalIdExpirationMs = value
        case "transaction.abort.timed.out.transaction.cleanup.interval.ms": abortTimedOutCleanupIntervalMs = value
        case "transaction.remove.expired.transaction.cleanup.interval.ms": removeExpiredCleanupIntervalMs = value
        default:
            guard value <= 10_000 else { throw ConfigurationError("\(key) is too large") }
            stateLogPartitions = Int32(value)
        }
    }
}
