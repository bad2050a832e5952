public import KafkaWire

/// Wall-clock milliseconds for the transaction coordinator; injected so tests drive time.
public protocol TransactionClock: Sendable {
    func nowMilliseconds() -> Int64
}

/// Where the coordinator's state goes: the broker appends one `__transaction_state` record per
/// call (`value` nil: a tombstone) and calls `completion(true)` once it is durable.
/// `completion` may run on any thread, also synchronously inside `persist`.
public protocol TransactionLogStore: Sendable {
    func persist(transactionalId: String, value: TransactionLogValue?, completion: @escaping @Sendable (Bool) -> Void)
}

/// Writes COMMIT/ABORT control batches to every partition of a transaction and calls
/// `completion(true)` once all are durable (and, for `__consumer_offsets`, applied to the groups).
public protocol TransactionMarkerWriter: Sendable {
    func writeMarkers(
        producerId: Int64, producerEpoch: Int16, commit: Bool, partitions: [TransactionPartition],
        completion: @escaping @Sendable (Bool) -> Void)
}

/// A partition taking part in a transaction.
public struct TransactionPartition: Sendable, Hashable, Comparable {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
}

/// Kafka's `TransactionState`, with its on-disk byte (`TransactionLogValue.TransactionStatus`).
public enum TransactionState: Int8, Sendable {
    case empty = 0
    case ongoing = 1
    case prepareCommit = 2
    case prepareAbort = 3
    case completeCommit = 4
    case completeAbort = 5
    case dead = 6
    case prepareEpochFence = 7

    /// The name Kafka's tools print (DescribeTransactions / ListTransactions).
    public var name: String {
        switch self {
        case .empty: "Empty"
        case .ongoing: "Ongoing"
        case .prepareCommit: "PrepareCommit"
        case .prepareAbort: "PrepareAbort"
        case .completeCommit: "CompleteCommit"
        case .completeAbort: "CompleteAbort"
        case .dead: "Dead"
        case .prepareEpochFence: "PrepareEpochFence"
        }
    }
}

/// One transactional id's state (Kafka `TransactionMetadata`).
public struct TransactionMetadata: Sendable, Equatable {
    public var transactionalId: String
    public var producerId: Int64
    public var producerEpoch: Int16
    public var timeoutMs: Int32
    public var state: TransactionState
    public var partitions: Set<TransactionPartition>
    /// When the current transaction started (-1: none).
    public var startTimestampMs: Int64
    public var lastUpdateTimestampMs: Int64
    /// Transactions v2: the producer id before the last rotation (-1: none).
    public var previousProducerId: Int64 = -1
    /// Transactions v2: the producer id the next transaction runs under, once the prepared one
    /// completes (set when the epoch ran out; -1 otherwise).
    public var nextProducerId: Int64 = -1
    /// The transaction protocol the current (or last) transaction uses: 2 for transactions v2.
    public var clientTransactionVersion: Int16 = 0
    /// A persist or marker write is in flight: other requests get CONCURRENT_TRANSACTIONS.
    var pending = false

    /// `__transaction_state` value of this state.
    func logValue() -> TransactionLogValue {
        let byTopic = Dictionary(grouping: partitions, by: \.topic)
        var value = TransactionLogValue(
            producerId: producerId, producerEpoch: producerEpoch, transactionTimeoutMs: timeoutMs, transactionStatus: state.rawValue,
            transactionPartitions: state == .empty || state == .completeCommit || state == .completeAbort
                ? nil
                : byTopic.keys.sorted().map { topic in
                    TransactionLogValue.PartitionsSchema(topic: topic, partitionIds: byTopic[topic]!.map(\.partition).sorted())
                },
            transactionLastUpdateTimestampMs: lastUpdateTimestampMs, transactionStartTimestampMs: startTimestampMs)
        value.previousProducerId = previousProducerId
        value.nextProducerId = nextProducerId
        value.clientTransactionVersion = clientTransactionVersion
        return value
    }
}
