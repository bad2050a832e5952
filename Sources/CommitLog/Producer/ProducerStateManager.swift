/// One partition's idempotent-producer state (Kafka `ProducerStateManager`, non-transactional part).
///
/// Owned by the partition's writer: `LogAppender` checks and updates it at offset-assignment time,
/// batch by batch in append order, so pipelined batches of one producer — even several in one append
/// group — see each other. `LogLoader` rebuilds it from the newest producer snapshot plus the batch
/// headers after it; `LogManager` snapshots it at shutdown and `PartitionLog.roll` at each roll.
///
/// Rules (Kafka `ProducerAppendInfo.checkProducerEpoch` / `checkSequence` and the duplicate check of
/// `UnifiedLog.analyzeAndValidateProducerState`), checked in this order for a client batch with a
/// producer id:
/// 1. same epoch and the sequence range of one of the last 5 batches: a duplicate — not written,
///    answered with the original offsets;
/// 2. epoch below the stored one: `.invalidProducerEpoch`;
/// 3. epoch above the stored one (a bump): the base sequence must be 0, else `.outOfOrderSequence`;
/// 4. same epoch: the base sequence must follow the last one (0 after `Int32.max`), else
///    `.outOfOrderSequence`;
/// 5. no state for the producer (new id, expired, or removed with the log head): any sequence.
///
/// After a restart only the last batch per producer is known (Kafka's snapshot keeps one), so the
/// duplicate window is then one batch until the producer writes again — as in Kafka.
struct ProducerStateManager: Sendable, Equatable {
    /// What `check` decided for a batch.
    enum Decision: Sendable, Equatable {
        /// Append it (then call `update`).
        case append
        /// Already in the log: answer with this batch's offsets, write nothing.
        case duplicate(ProducerBatchMetadata)
    }

    private(set) var entries: [Int64: ProducerStateEntry] = [:]
    /// Producers with a transaction open on this partition → the first offset it wrote here
    /// (mirrors `currentTxnFirstOffset`; small, so the last stable offset is cheap to compute).
    private(set) var ongoingTransactions: [Int64: Int64] = [:]

    init() {}

    init(entries: [ProducerStateEntry]) {
        for entry in entries {
            self.entries[entry.producerId] = entry
            if entry.currentTxnFirstOffset >= 0 { ongoingTransactions[entry.producerId] = entry.currentTxnFirstOffset }
        }
    }

    /// The first offset of the earliest open transaction (the last stable offset), nil when none.
    var firstUnstableOffset: Int64? { ongoingTransactions.values.min() }

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    subscript(producerId: Int64) -> ProducerStateEntry? { entries[producerId] }

    /// Checks a client batch against the producer's state. An entry idle for `expirationMs` or more
    /// counts as absent (and is dropped).
    /// - Throws: `.invalidProducerEpoch` for a fenced epoch, `.outOfOrderSequence` for a gap.
    mutating func check(
        producerId: Int64, epoch: Int16, firstSequence: Int32, lastSequence: Int32, now: Int64, expirationMs: Int64
    ) throws(CommitLogError) -> Decision {
        guard let entry = entries[producerId] else { return .append }
        if now - entry.lastTimestamp >= expirationMs {
            entries[producerId] = nil
            return .append
        }
        if firstSequence < 0 {
            // Written by a coordinator (transactional offset commits): no sequence, only the epoch.
            guard epoch >= entry.epoch else {
                throw CommitLogError(.invalidProducerEpoch, "epoch \(epoch) of producer \(producerId) is older than the current epoch \(entry.epoch)")
            }
            return .append
        }
        if epoch == entry.epoch, let original = entry.duplicate(firstSequence: firstSequence, lastSequence: lastSequence) {
            return .duplicate(original)
        }
        if epoch < entry.epoch {
            throw CommitLogError(
                .invalidProducerEpoch,
                "epoch \(epoch) of producer \(producerId) is older than the current epoch \(entry.epoch)")
        }
        if epoch > entry.epoch {
            guard firstSequence == 0 else {
                throw CommitLogError(
                    .outOfOrderSequence,
                    "producer \(producerId) bumped its epoch \(entry.epoch) -> \(epoch) with sequence \(firstSequence); expected 0")
            }
            return .append
        }
        guard entry.batches.isEmpty || ProducerStateEntry.inSequence(last: entry.lastSequence, next: firstSequence) else {
            throw CommitLogError(
                .outOfOrderSequence,
                "out of order sequence for producer \(producerId) epoch \(epoch): \(firstSequence) (incoming batch lastSeq \(lastSequence)), last appended \(entry.lastSequence)")
        }
        return .append
    }

    /// Records an appended batch (the client path after `check` said `.append`, and replay during
    /// recovery, which trusts the log and checks nothing). A new epoch starts an empty batch cache.
    mutating func update(
        producerId: Int64, epoch: Int16, firstSequence: Int32, lastSequence: Int32, firstOffset: Int64, lastOffset: Int64,
        maxTimestamp: Int64, now: Int64, isTransactional: Bool = false
    ) {
        let batch = ProducerBatchMetadata(
            firstSequence: firstSequence, lastSequence: lastSequence, firstOffset: firstOffset, lastOffset: lastOffset,
            maxTimestamp: maxTimestamp)
        if isTransactional, ongoingTransactions[producerId] == nil { ongoingTransactions[producerId] = firstOffset }
        let txnFirstOffset = ongoingTransactions[producerId] ?? -1
        guard var entry = entries[producerId], entry.epoch == epoch else {
            entries[producerId] = ProducerStateEntry(
                producerId: producerId, epoch: epoch, batches: [batch], lastTimestamp: now, currentTxnFirstOffset: txnFirstOffset)
            return
        }
        entry.currentTxnFirstOffset = txnFirstOffset
        if entry.batches.count >= ProducerStateEntry.retainedBatchesMax {
            entry.batches.removeFirst(entry.batches.count - ProducerStateEntry.retainedBatchesMax + 1)
        }
        entry.batches.append(batch)
        entry.lastTimestamp = max(entry.lastTimestamp, now)
        entries[producerId] = entry
    }

    /// Checks a transaction marker (a control batch written by the transaction coordinator): its
    /// epoch may not be older than the producer's.
    /// - Throws: `.invalidProducerEpoch` for a fenced epoch.
    func checkMarker(producerId: Int64, epoch: Int16) throws(CommitLogError) {
        if let entry = entries[producerId], epoch < entry.epoch {
            throw CommitLogError(.invalidProducerEpoch, "marker epoch \(epoch) of producer \(producerId) is older than \(entry.epoch)")
        }
    }

    /// Ends the producer's open transaction at a marker (Kafka `completeTxn`): the epoch becomes
    /// the marker's, the sequence cache starts over when it changed. Returns the first offset of
    /// the transaction it closed, nil when none was open here.
    mutating func completeTransaction(producerId: Int64, epoch: Int16, now: Int64) -> Int64? {
        let first = ongoingTransactions.removeValue(forKey: producerId)
        if var entry = entries[producerId] {
            if entry.epoch != epoch {
                entry.epoch = epoch
                entry.batches = []
            }
            entry.currentTxnFirstOffset = -1
            entry.lastTimestamp = max(entry.lastTimestamp, now)
            entries[producerId] = entry
        } else {
            entries[producerId] = ProducerStateEntry(producerId: producerId, epoch: epoch, batches: [], lastTimestamp: now)
        }
        return first
    }

    /// Drops producers idle for `expirationMs` or more (Kafka `removeExpiredProducers`), except
    /// those with an open transaction. Returns how many were dropped.
    @discardableResult
    mutating func removeExpired(now: Int64, expirationMs: Int64) -> Int {
        let before = entries.count
        entries = entries.filter { now - $0.value.lastTimestamp < expirationMs || ongoingTransactions[$0.key] != nil }
        return before - entries.count
    }

    /// Drops producers whose last batch lies below `offset` (Kafka `truncateHead`): their batches
    /// were deleted with the log head.
    mutating func removeProducers(lastOffsetBelow offset: Int64) {
        entries = entries.filter { $0.value.lastOffset >= offset || ongoingTransactions[$0.key] != nil }
    }

    /// Entries in producer-id order (for snapshots and tests).
    var sortedEntries: [ProducerStateEntry] { entries.values.sorted { $0.producerId < $1.producerId } }
}
