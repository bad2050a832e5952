/// Which timestamp a topic's batches carry. Kafka: `message.timestamp.type`.
public enum TimestampType: Sendable, Equatable {
    /// The producer's timestamps are kept (`CreateTime`).
    case createTime
    /// The broker stamps each batch with its append time (`LogAppendTime`).
    case logAppendTime
}
