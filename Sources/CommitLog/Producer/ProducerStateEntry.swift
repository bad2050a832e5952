/// One appended batch of an idempotent producer, as the duplicate check needs it
/// (Kafka `BatchMetadata`).
struct ProducerBatchMetadata: Sendable, Equatable {
    var firstSequence: Int32
    var lastSequence: Int32
    var firstOffset: Int64
    var lastOffset: Int64
    /// The batch's max timestamp as written (the append time on LogAppendTime topics).
    var maxTimestamp: Int64
}

/// What one partition knows about one producer id (Kafka `ProducerStateEntry`): its epoch and its
/// last batches, newest last.
struct ProducerStateEntry: Sendable, Equatable {
    /// Batches kept for the duplicate check (Kafka: `NUM_BATCHES_TO_RETAIN`, matching the clients'
    /// `max.in.flight.requests.per.connection` <= 5).
    static let retainedBatchesMax = 5

    var producerId: Int64
    var epoch: Int16
    /// At most `retainedBatchesMax`, oldest first; never empty once the entry exists.
    var batches: [ProducerBatchMetadata]
    /// Broker wall-clock ms of the producer's last write (expiry counts from here).
    var lastTimestamp: Int64
    /// Transactions only; kept for the snapshot layout (-1).
    var coordinatorEpoch: Int32 = -1
    /// Transactions only; kept for the snapshot layout (-1: none).
    var currentTxnFirstOffset: Int64 = -1

    var lastSequence: Int32 { batches.last?.lastSequence ?? -1 }
    var lastOffset: Int64 { batches.last?.lastOffset ?? -1 }

    /// The cached batch with exactly this sequence range, if any.
    func duplicate(firstSequence: Int32, lastSequence: Int32) -> ProducerBatchMetadata? {
        batches.first { $0.firstSequence == firstSequence && $0.lastSequence == lastSequence }
    }

    /// Kafka's `inSequence`: `next` follows `last`, wrapping from `Int32.max` to 0.
    static func inSequence(last: Int32, next: Int32) -> Bool {
        Int64(next) == Int64(last) + 1 || (next == 0 && last == .max)
    }
}
