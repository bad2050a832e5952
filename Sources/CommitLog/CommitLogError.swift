public import DiskIO

/// A storage failure: what kind (the broker maps it to a Kafka error code), a message with context,
/// and the disk error behind it when there is one.
public struct CommitLogError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Bytes failed their CRC or do not parse as a batch (`CORRUPT_MESSAGE`).
        case corruptBatch
        /// A batch that parses but breaks a rule (`INVALID_RECORD`).
        case invalidBatch
        /// Larger than `max.message.bytes` (`MESSAGE_TOO_LARGE`).
        case messageTooLarge
        /// Below the log start offset or above the high watermark (`OFFSET_OUT_OF_RANGE`).
        case offsetOutOfRange
        /// A disk error; `diskError` says which (`KAFKA_STORAGE_ERROR`).
        case storage
        /// The partition went offline after an earlier disk error (`KAFKA_STORAGE_ERROR`).
        case offline
        /// The partition is read-only because the disk is full; a periodic probe brings it back
        /// (`KAFKA_STORAGE_ERROR`, retriable).
        case readOnly
        /// No such partition log (`UNKNOWN_TOPIC_OR_PARTITION`).
        case notFound
        /// The partition log exists already (`TOPIC_ALREADY_EXISTS`).
        case alreadyExists
        /// The appender has stopped (`NOT_LEADER_OR_FOLLOWER` / retriable).
        case shuttingDown
        /// An idempotent batch whose base sequence does not follow the producer's last one, or a
        /// bumped epoch not starting at 0 (`OUT_OF_ORDER_SEQUENCE_NUMBER`).
        case outOfOrderSequence
        /// An idempotent batch from an older (fenced) producer epoch (`INVALID_PRODUCER_EPOCH`).
        case invalidProducerEpoch
        /// A transactional batch: there is no transaction coordinator (Kafka answers
        /// `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` to transactional records without an authorized id).
        case transactionsUnsupported
        /// Creating the partitions would exceed the descriptor budget (`petrel.log.open.files.max`); nothing
        /// was created (`POLICY_VIOLATION`).
        case openFilesBudgetExceeded
    }

    public var kind: Kind
    public var message: String
    public var diskError: DiskError?

    public init(_ kind: Kind, _ message: String, diskError: DiskError? = nil) {
        self.kind = kind
        self.message = message
        self.diskError = diskError
    }

    static func storage(_ error: DiskError, _ context: String) -> CommitLogError {
        CommitLogError(.storage, "\(context): \(error)", diskError: error)
    }

    public var description: String { "\(kind): \(message)" }
}
