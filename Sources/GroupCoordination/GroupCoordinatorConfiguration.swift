/// Group coordinator settings, with Kafka's keys and defaults. Validate once with `validate()`.
public struct GroupCoordinatorConfiguration: Sendable, Hashable {
    /// Delay of the first rebalance of an empty group, extended by the same delay while new members
    /// keep joining, capped by the rebalance timeout. Kafka: `group.initial.rebalance.delay.ms`.
    /// Default: 3000.
    public var initialRebalanceDelayMs: Int64 = 3000
    /// Smallest session timeout a member may ask for. Kafka: `group.min.session.timeout.ms`. Default: 6000.
    public var minSessionTimeoutMs: Int32 = 6000
    /// Largest session timeout a member may ask for. Kafka: `group.max.session.timeout.ms`. Default: 1800000.
    public var maxSessionTimeoutMs: Int32 = 1_800_000
    /// Most members per group; nil = unbounded. Kafka: `group.max.size`. Default: unbounded.
    public var maxGroupSize: Int? = nil
    /// Largest committed-offset metadata string, in UTF-8 bytes. Kafka: `offset.metadata.max.bytes`.
    /// Default: 4096.
    public var offsetMetadataMaxBytes: Int = 4096
    /// How long a new member may wait in JoinGroup before it is dropped (Kafka's
    /// `GroupCoordinator.NewMemberJoinTimeoutMs`, not configurable there). Default: 300000.
    public var newMemberJoinTimeoutMs: Int64 = 300_000
    /// Offsets of an empty group expire this long after the group became empty (or after their
    /// commit for groups without group management). Kafka: `offsets.retention.minutes` (10080).
    /// Default: 7 days.
    public var offsetsRetentionMs: Int64 = 7 * 24 * 60 * 60 * 1000
    /// How often expired offsets are purged; 0 = never (call `purgeExpiredOffsets()` yourself).
    /// Kafka: `offsets.retention.check.interval.ms`. Default: 600000.
    public var offsetsRetentionCheckIntervalMs: Int64 = 600_000

    /// Heartbeat interval told to consumer-protocol (KIP-848) members.
    /// Kafka: `group.consumer.heartbeat.interval.ms`. Default: 5000.
    public var consumerHeartbeatIntervalMs: Int32 = 5000
    /// A consumer-protocol member that does not heartbeat for this long is removed.
    /// Kafka: `group.consumer.session.timeout.ms`. Default: 45000.
    public var consumerSessionTimeoutMs: Int32 = 45000
    /// Server-side assignors (`uniform`, `range`); the first is used when a member names none.
    /// Kafka: `group.consumer.assignors`. Default: uniform, range.
    public var consumerAssignors: [String] = ["uniform", "range"]

    public init() {}

    /// Checks the settings once at startup.
    /// - Throws: `ConfigurationError` naming the first bad setting.
    public func validate() throws(ConfigurationError) {
        guard initialRebalanceDelayMs >= 0 else { throw ConfigurationError("group.initial.rebalance.delay.ms must be >= 0") }
        guard minSessionTimeoutMs > 0, minSessionTimeoutMs <= maxSessionTimeoutMs else {
            throw ConfigurationError("group.min.session.timeout.ms must be > 0 and <= group.max.session.timeout.ms")
        }
        if let maxGroupSize, maxGroupSize < 1 { throw ConfigurationError("group.max.size must be >= 1") }
        guard offsetMetadataMaxBytes >= 0 else { throw ConfigurationError("offset.metadata.max.bytes must be >= 0") }
        guard newMemberJoinTimeoutMs > 0 else { throw ConfigurationError("newMemberJoinTimeoutMs must be > 0") }
        guard offsetsRetentionMs > 0 else { throw ConfigurationError("offsets.retention.minutes must be > 0") }
        guard consumerHeartbeatIntervalMs > 0 else { throw ConfigurationError("group.consumer.heartbeat.interval.ms must be > 0") }
        guard consumerSessionTimeoutMs > 0 else { throw ConfigurationError("group.consumer.session.timeout.ms must be > 0") }
        guard !consumerAssignors.isEmpty, consumerAssignors.allSatisfy({ ConsumerAssignor.named($0) != nil }) else {
            throw ConfigurationError("group.consumer.assignors must list uniform and/or range")
        }
        guard offsetsRetentionCheckIntervalMs >= 0 else { throw ConfigurationError("offsets.retention.check.interval.ms must be >= 0") }
    }

    /// A rejected configuration value.
    public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }
}
