public import RecordFormat
/// How a partition log rolls, indexes, flushes and retains. Each property documents its Kafka topic
/// config key and default; the broker fills them from topic overrides and broker defaults.
public struct LogConfiguration: Sendable, Equatable {
    /// Bytes per segment before rolling. Kafka: `segment.bytes`. Default: 1 GiB.
    public var segmentBytes: Int = 1 << 30
    /// Roll the active segment once its first batch is this old. Kafka: `segment.ms`. Default: 7 days.
    public var segmentMs: Int64 = 604_800_000
    /// Size each active index file is preallocated to; a full index forces a roll.
    /// Kafka: `segment.index.bytes`. Default: 10 MiB.
    public var segmentIndexBytes: Int = 10 << 20
    /// Bytes appended between two sparse offset-index entries. Kafka: `index.interval.bytes`. Default: 4096.
    public var indexIntervalBytes: Int = 4096
    /// fdatasync once this many messages (offsets) are unflushed; 1 makes every batch durable before
    /// its ack, done as a group commit. Kafka: `flush.messages`. Default: never (`Int64.max`).
    public var flushMessages: Int64 = .max
    /// fdatasync once the last flush is this old. Kafka: `flush.ms`. Default: never (`Int64.max`).
    public var flushMs: Int64 = .max
    /// Delete segments older than this; -1 keeps them forever. Kafka: `retention.ms`. Default: 7 days.
    public var retentionMs: Int64 = 604_800_000
    /// Per-partition size cap; -1 is off. Kafka: `retention.bytes`. Default: -1.
    public var retentionBytes: Int64 = -1
    /// Largest batch accepted (bytes, including the 12-byte log overhead). Kafka: `max.message.bytes`.
    /// Default: 1048588.
    public var maxMessageBytes: Int = 1_048_588
    /// The codec batches are stored with: nil keeps the producer's (Kafka `compression.type` =
    /// `producer`, the default); `.none` is Kafka's `uncompressed`.
    public var compressionType: CompressionCodec? = nil
    /// How far before the broker's clock a CreateTime timestamp may be. Kafka:
    /// `message.timestamp.before.max.ms`. Default: Int64.max (unchecked).
    public var messageTimestampBeforeMaxMs: Int64 = .max
    /// How far after the broker's clock a CreateTime timestamp may be. Kafka:
    /// `message.timestamp.after.max.ms`. Default: Int64.max (unchecked).
    public var messageTimestampAfterMaxMs: Int64 = .max
    /// Whether batches keep the producer's timestamps or get the broker's append time.
    /// Kafka: `message.timestamp.type`. Default: `CreateTime`.
    public var messageTimestampType: TimestampType = .createTime
    /// Wait before unlinking deleted files and directories. Kafka: `file.delete.delay.ms`. Default: 60 s.
    public var fileDeleteDelayMs: Int64 = 60_000
    /// Petrel only: start write-back (`sync_file_range`) every this many dirty bytes of a partition,
    /// so dirty pages don't pile up in the page cache; 0 turns it off. Default: 1 MiB.
    public var writeBehindBytes: Int = 1 << 20
    /// Forget an idempotent producer's state this long after its last write to the partition; a later
    /// batch of it is then accepted with any sequence. Kafka: `producer.id.expiration.ms` (a broker
    /// config). Default: 1 day.
    public var producerIdExpirationMs: Int64 = 86_400_000

    /// Whether old segments are deleted (`delete`), compacted (`compact`) or both. Kafka:
    /// `cleanup.policy`. Default: `delete`.
    public var cleanupPolicy: CleanupPolicy = .delete
    /// How long a tombstone survives after the cleaner first retained it (its batch's delete horizon).
    /// Kafka: `delete.retention.ms`. Default: 1 day.
    public var deleteRetentionMs: Int64 = 86_400_000
    /// Compact once dirty bytes / (clean + dirty bytes) exceeds this. Kafka:
    /// `min.cleanable.dirty.ratio`. Default: 0.5.
    public var minCleanableDirtyRatio: Double = 0.5
    /// Records younger than this are never compacted. Kafka: `min.compaction.lag.ms`. Default: 0.
    public var minCompactionLagMs: Int64 = 0
    /// Compact regardless of the dirty ratio once the oldest dirty record is this old. Kafka:
    /// `max.compaction.lag.ms`. Default: `Int64.max`.
    public var maxCompactionLagMs: Int64 = .max
    /// Largest random reduction of `segment.ms` per segment, so partitions do not roll together.
    /// Kafka: `segment.jitter.ms`. Default: 0.
    public var segmentJitterMs: Int64 = 0

    public init() {}

    /// Offset-index entries that fit in `segmentIndexBytes` (8 bytes each).
    var offsetIndexEntriesMax: Int { max(1, segmentIndexBytes / OffsetIndex.entryByteCount) }
    /// Time-index entries that fit in `segmentIndexBytes` (12 bytes each).
    var timeIndexEntriesMax: Int { max(2, segmentIndexBytes / TimeIndex.entryByteCount) }
    /// `segmentBytes` clamped to what a u32 index position can address (Kafka caps it at Int32.max).
    var segmentBytesClamped: Int { min(max(segmentBytes, 1), Int(Int32.max)) }
}

/// Kafka's `cleanup.policy`: a list of `delete` and/or `compact`.
public struct CleanupPolicy: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Time/size retention deletes whole old segments.
    public static let delete = CleanupPolicy(rawValue: 1)
    /// The cleaner keeps the latest record per key.
    public static let compact = CleanupPolicy(rawValue: 2)

    /// Parses Kafka's comma-separated list (`delete`, `compact`, `compact,delete`); unknown words are
    /// ignored (the broker validated the value).
    public init(kafkaValue: String) {
        var policy: CleanupPolicy = []
        for part in kafkaValue.split(separator: ",") {
            let word = part.trimmingWhitespace.lowercased()
            if word == "delete" { policy.insert(.delete) }
            if word == "compact" { policy.insert(.compact) }
        }
        self = policy
    }
}
