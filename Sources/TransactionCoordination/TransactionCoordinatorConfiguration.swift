/// Transaction coordinator settings (Kafka broker config names).
public struct TransactionCoordinatorConfiguration: Sendable {
    /// Largest `transaction.timeout.ms` a producer may ask for; more is INVALID_TRANSACTION_TIMEOUT.
    /// Kafka: `transaction.max.timeout.ms`. Default: 900000 (15 minutes).
    public var transactionMaxTimeoutMs: Int32 = 900_000
    /// A transactional id idle (no transaction) this long is forgotten.
    /// Kafka: `transactional.id.expiration.ms`. Default: 604800000 (7 days).
    public var transactionalIdExpirationMs: Int64 = 604_800_000
    /// How often transactions past their timeout are aborted (and failed marker writes retried).
    /// Kafka: `transaction.abort.timed.out.transaction.cleanup.interval.ms`. Default: 10000.
    public var abortTimedOutTransactionCleanupIntervalMs: Int64 = 10_000
    /// How often expired transactional ids are removed.
    /// Kafka: `transaction.remove.expired.transaction.cleanup.interval.ms`. Default: 3600000.
    public var removeExpiredTransactionalIdCleanupIntervalMs: Int64 = 3_600_000

    public init() {}
}
