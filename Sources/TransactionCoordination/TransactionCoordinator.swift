public import KafkaWire
public import Logging
public import NIOCore
import Synchronization

/// The transaction coordinator (KIP-98, Kafka `TransactionCoordinator`): one state machine per
/// transactional id, persisted in `__transaction_state` through `TransactionLogStore`, markers
/// written through `TransactionMarkerWriter`. No IO and no timers of its own: the broker calls
/// `tick()` every `abortTimedOutTransactionCleanupIntervalMs`.
///
/// Transitions (each persisted before it is answered):
/// - InitProducerId: Empty/Complete* → Empty with epoch + 1 (a new producer id when the epoch is
///   exhausted); Ongoing → the old epoch is fenced: epoch + 1, PrepareAbort, markers, CompleteAbort,
///   and the caller gets CONCURRENT_TRANSACTIONS to retry.
/// - AddPartitionsToTxn / AddOffsetsToTxn: → Ongoing with the partitions added.
/// - EndTxn: Ongoing → PrepareCommit/PrepareAbort (answered), markers, → CompleteCommit/CompleteAbort.
/// - timeout: Ongoing past `timeoutMs` → fenced and aborted like above.
///
/// Crash points: a Prepare* state found at load has its markers (re)written by the next `tick()`;
/// writing a marker twice is harmless (the second closes no transaction). An Ongoing state is
/// aborted when its timeout passes.
public final class TransactionCoordinator: Sendable {
    public let configuration: TransactionCoordinatorConfiguration
    let clock: any TransactionClock
    let store: any TransactionLogStore
    let markers: any TransactionMarkerWriter
    let allocateProducerId: @Sendable () throws -> Int64
    let logger: Logger

    struct State {
        var transactions: [String: TransactionMetadata] = [:]
        var loading = true
        var lastExpirationCheckMs: Int64 = 0
    }

    let state = Mutex(State())

    public init(
        configuration: TransactionCoordinatorConfiguration, clock: any TransactionClock, store: any TransactionLogStore,
        markers: any TransactionMarkerWriter, allocateProducerId: @escaping @Sendable () throws -> Int64, logger: Logger
    ) {
        self.configuration = configuration
        self.clock = clock
        self.store = store
        self.markers = markers
        self.allocateProducerId = allocateProducerId
        self.logger = logger
    }

    // MARK: Loading

    /// Replays `__transaction_state` records (key and value with their int16 version prefix; nil
    /// value = tombstone), last write per id wins. Undecodable records are skipped.
    public func load(_ records: [(key: ByteBuffer, value: ByteBuffer?)]) {
        var transactions: [String: TransactionMetadata] = [:]
        for record in records {
            guard let id = Self.decodeKey(record.key) else { continue }
            guard let valueBytes = record.value else {
                transactions[id] = nil
                continue
            }
            guard let value = Self.decodeValue(valueBytes), let status = TransactionState(rawValue: value.transactionStatus) else { continue }
            var partitions = Set<TransactionPartition>()
            for topic in value.transactionPartitions ?? [] {
                for p in topic.partitionIds { partitions.insert(TransactionPartition(topic: topic.topic, partition: p)) }
            }
            transactions[id] = TransactionMetadata(
                transactionalId: id, producerId: value.producerId, producerEpoch: value.producerEpoch,
                timeoutMs: value.transactionTimeoutMs, state: status, partitions: partitions,
                startTimestampMs: value.transactionStartTimestampMs, lastUpdateTimestampMs: value.transactionLastUpdateTimestampMs)
            if status == .dead { transactions[id] = nil }
        }
        let now = clock.nowMilliseconds()
        state.withLock {
            $0.transactions = transactions
            $0.loading = false
            $0.lastExpirationCheckMs = now
        }
        // Prepared transactions complete now rather than one tick later.
        tick()
    }

    // MARK: Record formats

    /// `int16 version 0` + `TransactionLogKey`.
    public static func encodeKey(_ transactionalId: String) -> ByteBuffer {
        encode(TransactionLogKey(transactionalId: transactionalId), version: 0)
    }

    /// `int16 version 0` + `TransactionLogValue`.
    public static func encodeValue(_ value: TransactionLogValue) -> ByteBuffer { encode(value, version: 0) }

    static func encode(_ message: some KafkaMessage, version: Int16) -> ByteBuffer {
        var writer = WireWriter(initialCapacity: 64)
        writer.buffer.writeWireInt16(version)
        do { try message.write(to: &writer, version: version) } catch {
            preconditionFailure("cannot encode a transaction log record: \(error)")
        }
        guard let buffer = writer.finishSingleBuffer() else { preconditionFailure("transaction log record has file chunks") }
        return buffer
    }

    public static func decodeKey(_ key: ByteBuffer) -> String? {
        var buffer = key
        guard let version = try? buffer.readWireInt16(), version == 0 else { return nil }
        return (try? TransactionLogKey(from: &buffer, version: 0))?.transactionalId
    }

    public static func decodeValue(_ value: ByteBuffer) -> TransactionLogValue? {
        var buffer = value
        guard let version = try? buffer.readWireInt16(), version >= 0, version <= 1 else { return nil }
        return try? TransactionLogValue(from: &buffer, version: version)
    }

    // MARK: InitProducerId

    public struct ProducerIdAndEpoch: Sendable, Equatable {
        public var error: KafkaErrorCode
        public var producerId: Int64
        public var producerEpoch: Int16

        public init(error: KafkaErrorCode, producerId: Int64 = -1, producerEpoch: Int16 = -1) {
            self.error = error
            self.producerId = producerId
            self.producerEpoch = producerEpoch
        }
    }

    /// InitProducerId with a transactional id. `producerId`/`producerEpoch` are the caller's current
    /// ones (KIP-360; -1 when it has none).
    public func initProducerId(
        transactionalId: String, transactionTimeoutMs: Int32, producerId: Int64, producerEpoch: Int16,
        completion: @escaping @Sendable (ProducerIdAndEpoch) -> Void
    ) {
        guard transactionTimeoutMs > 0, transactionTimeoutMs <= configuration.transactionMaxTimeoutMs else {
            return completion(ProducerIdAndEpoch(error: .invalidTransactionTimeout))
        }
        let now = clock.nowMilliseconds()
        enum Step {
            case reply(ProducerIdAndEpoch)
            case persist(TransactionMetadata)
            case fence(TransactionMetadata)
        }
        let step: Step = state.withLock { s in
            if s.loading { return .reply(ProducerIdAndEpoch(error: .coordinatorLoadInProgress)) }
            guard var meta = s.transactions[transactionalId] else {
                let id: Int64
                do { id = try allocateProducerId() } catch {
                    return .reply(ProducerIdAndEpoch(error: .coordinatorNotAvailable))
                }
                var meta = TransactionMetadata(
                    transactionalId: transactionalId, producerId: id, producerEpoch: 0, timeoutMs: transactionTimeoutMs,
                    state: .empty, partitions: [], startTimestampMs: -1, lastUpdateTimestampMs: now)
                meta.pending = true
                s.transactions[transactionalId] = meta
                return .persist(meta)
            }
            if meta.pending { return .reply(ProducerIdAndEpoch(error: .concurrentTransactions)) }
            if producerId >= 0, producerId != meta.producerId || producerEpoch != meta.producerEpoch {
                // KIP-360: only the current producer may bump its own epoch.
                return .reply(ProducerIdAndEpoch(error: .producerFenced))
            }
            switch meta.state {
            case .prepareCommit, .prepareAbort, .prepareEpochFence:
                return .reply(ProducerIdAndEpoch(error: .concurrentTransactions))
            case .ongoing:
                meta.pending = true
                s.transactions[transactionalId] = meta
                return .fence(meta)
            case .empty, .completeCommit, .completeAbort, .dead:
                if meta.producerEpoch >= Int16.max - 1 {
                    do { meta.producerId = try allocateProducerId() } catch {
                        return .reply(ProducerIdAndEpoch(error: .coordinatorNotAvailable))
                    }
                    meta.producerEpoch = 0
                } else {
                    meta.producerEpoch += 1
                }
                meta.state = .empty
                meta.partitions = []
                meta.timeoutMs = transactionTimeoutMs
                meta.startTimestampMs = -1
                meta.lastUpdateTimestampMs = now
                meta.pending = true
                let previous = s.transactions[transactionalId]!
                s.transactions[transactionalId] = previous.withPending(true)
                return .persist(meta)
            }
        }
        switch step {
        case .reply(let result):
            completion(result)
        case .persist(let meta):
            store.persist(transactionalId: transactionalId, value: meta.logValue()) { [self] ok in
                state.withLock { s in
                    if ok {
                        s.transactions[transactionalId] = meta.withPending(false)
                    } else if s.transactions[transactionalId]?.producerEpoch == 0, meta.producerEpoch == 0, meta.state == .empty {
                        s.transactions[transactionalId] = nil
                    } else {
                        s.transactions[transactionalId]?.pending = false
                    }
                }
                completion(ok ? ProducerIdAndEpoch(error: .none, producerId: meta.producerId, producerEpoch: meta.producerEpoch) : ProducerIdAndEpoch(error: .coordinatorNotAvailable))
            }
        case .fence(let meta):
            logger.info("fencing the open transaction of a new producer instance", metadata: ["transactionalId": "\(transactionalId)"])
            fenceAndAbort(meta, now: now)
            completion(ProducerIdAndEpoch(error: .concurrentTransactions))
        }
    }

    /// Bumps the epoch of an Ongoing transaction and aborts it with the new epoch (the old producer
    /// is then fenced everywhere). `meta` is already marked pending.
    private func fenceAndAbort(_ meta: TransactionMetadata, now: Int64) {
        var next = meta
        if next.producerEpoch < Int16.max - 1 { next.producerEpoch += 1 }
        next.state = .prepareAbort
        next.lastUpdateTimestampMs = now
        persistPrepare(next, completion: nil)
    }

    // MARK: AddPartitionsToTxn / AddOffsetsToTxn

    /// Adds partitions to the transaction (starting one). Answers one error for all of them.
    public func addPartitions(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, partitions: [TransactionPartition],
        completion: @escaping @Sendable (KafkaErrorCode) -> Void
    ) {
        let now = clock.nowMilliseconds()
        let next: TransactionMetadata? = state.withLock { s -> TransactionMetadata? in
            if s.loading { completion(.coordinatorLoadInProgress); return nil }
            guard var meta = s.transactions[transactionalId], meta.producerId == producerId else {
                completion(.invalidProducerIdMapping)
                return nil
            }
            guard meta.producerEpoch == producerEpoch else { completion(.producerFenced); return nil }
            if meta.pending { completion(.concurrentTransactions); return nil }
            switch meta.state {
            case .prepareCommit, .prepareAbort, .prepareEpochFence:
                completion(.concurrentTransactions)
                return nil
            case .dead:
                completion(.invalidTxnState)
                return nil
            case .ongoing where partitions.allSatisfy(meta.partitions.contains):
                completion(.none)
                return nil
            default:
                break
            }
            if meta.state != .ongoing {
                meta.startTimestampMs = now
                meta.partitions = []
            }
            meta.state = .ongoing
            meta.partitions.formUnion(partitions)
            meta.lastUpdateTimestampMs = now
            s.transactions[transactionalId]!.pending = true
            return meta
        }
        guard let next else { return }
        store.persist(transactionalId: transactionalId, value: next.logValue()) { [self] ok in
            state.withLock { s in
                if ok { s.transactions[transactionalId] = next } else { s.transactions[transactionalId]?.pending = false }
            }
            completion(ok ? .none : .coordinatorNotAvailable)
        }
    }

    /// KIP-890 part 1: may `producerId`/`producerEpoch` write transactional data to `partition`?
    /// (`.none` only when its transaction is Ongoing and includes the partition.)
    public func verifyPartition(transactionalId: String, producerId: Int64, producerEpoch: Int16, partition: TransactionPartition) -> KafkaErrorCode {
        state.withLock { s in
            guard let meta = s.transactions[transactionalId], meta.producerId == producerId else { return .invalidProducerIdMapping }
            guard meta.producerEpoch == producerEpoch else { return .invalidProducerEpoch }
            guard meta.state == .ongoing, meta.partitions.contains(partition) else { return .invalidTxnState }
            return .none
        }
    }

    // MARK: EndTxn

    /// EndTxn: commits or aborts. Answered once PrepareCommit/PrepareAbort is durable; markers and
    /// the Complete state follow.
    public func endTransaction(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, commit: Bool,
        completion: @escaping @Sendable (KafkaErrorCode) -> Void
    ) {
        let now = clock.nowMilliseconds()
        let next: TransactionMetadata? = state.withLock { s -> TransactionMetadata? in
            if s.loading { completion(.coordinatorLoadInProgress); return nil }
            guard var meta = s.transactions[transactionalId], meta.producerId == producerId else {
                completion(.invalidProducerIdMapping)
                return nil
            }
            guard meta.producerEpoch == producerEpoch else { completion(.producerFenced); return nil }
            if meta.pending { completion(.concurrentTransactions); return nil }
            switch meta.state {
            case .ongoing:
                meta.state = commit ? .prepareCommit : .prepareAbort
                meta.lastUpdateTimestampMs = now
                s.transactions[transactionalId]!.pending = true
                return meta
            case .completeCommit where commit, .completeAbort where !commit:
                completion(.none)  // a retry of an EndTxn that already completed
            case .prepareCommit where commit, .prepareAbort where !commit:
                completion(.concurrentTransactions)
            default:
                completion(.invalidTxnState)
            }
            return nil
        }
        guard let next else { return }
        persistPrepare(next, completion: completion)
    }

    /// Persists a Prepare* state, answers, then writes the markers and the Complete* state.
    private func persistPrepare(_ meta: TransactionMetadata, completion: (@Sendable (KafkaErrorCode) -> Void)?) {
        store.persist(transactionalId: meta.transactionalId, value: meta.logValue()) { [self] ok in
            guard ok else {
                state.withLock { $0.transactions[meta.transactionalId]?.pending = false }
                completion?(.coordinatorNotAvailable)
                return
            }
            state.withLock { $0.transactions[meta.transactionalId] = meta.withPending(true) }
            completion?(.none)
            writeMarkersAndComplete(meta)
        }
    }

    private func writeMarkersAndComplete(_ meta: TransactionMetadata) {
        let commit = meta.state == .prepareCommit
        markers.writeMarkers(
            producerId: meta.producerId, producerEpoch: meta.producerEpoch, commit: commit, partitions: meta.partitions.sorted()
        ) { [self] ok in
            guard ok else {
                // Left in Prepare*: the next tick retries.
                logger.warning("writing transaction markers failed; retrying later", metadata: ["transactionalId": "\(meta.transactionalId)"])
                state.withLock { $0.transactions[meta.transactionalId]?.pending = false }
                return
            }
            var completed = meta
            completed.state = commit ? .completeCommit : .completeAbort
            completed.lastUpdateTimestampMs = clock.nowMilliseconds()
            let done = completed
            store.persist(transactionalId: meta.transactionalId, value: done.logValue()) { [self] ok in
                state.withLock { s in
                    if ok { s.transactions[meta.transactionalId] = done.withPending(false) } else { s.transactions[meta.transactionalId]?.pending = false }
                }
            }
        }
    }

    // MARK: Timers

    /// Aborts transactions past their timeout, retries marker writes of Prepare* states, and (every
    /// `removeExpiredTransactionalIdCleanupIntervalMs`) forgets ids idle past
    /// `transactionalIdExpirationMs`. Call every `abortTimedOutTransactionCleanupIntervalMs`.
    public func tick() {
        let now = clock.nowMilliseconds()
        var toAbort: [TransactionMetadata] = []
        var toRetry: [TransactionMetadata] = []
        var toExpire: [String] = []
        state.withLock { s in
            guard !s.loading else { return }
            let checkExpiry = now - s.lastExpirationCheckMs >= configuration.removeExpiredTransactionalIdCleanupIntervalMs
            if checkExpiry { s.lastExpirationCheckMs = now }
            for (id, meta) in s.transactions where !meta.pending {
                switch meta.state {
                case .ongoing where meta.startTimestampMs + Int64(meta.timeoutMs) <= now:
                    s.transactions[id]!.pending = true
                    toAbort.append(meta)
                case .prepareCommit, .prepareAbort:
                    s.transactions[id]!.pending = true
                    toRetry.append(meta)
                case .empty, .completeCommit, .completeAbort:
                    if checkExpiry, now - meta.lastUpdateTimestampMs >= configuration.transactionalIdExpirationMs {
                        s.transactions[id]!.pending = true
                        toExpire.append(id)
                    }
                default:
                    break
                }
            }
        }
        for meta in toAbort {
            logger.info("aborting a transaction past its timeout", metadata: ["transactionalId": "\(meta.transactionalId)", "timeoutMs": "\(meta.timeoutMs)"])
            fenceAndAbort(meta, now: now)
        }
        for meta in toRetry { writeMarkersAndComplete(meta) }
        for id in toExpire {
            store.persist(transactionalId: id, value: nil) { [self] ok in
                state.withLock { s in
                    if ok { s.transactions[id] = nil } else { s.transactions[id]?.pending = false }
                }
            }
        }
    }

    // MARK: Admin

    /// Every known transactional id's state.
    public func describeAll() -> [TransactionMetadata] {
        state.withLock { Array($0.transactions.values) }.sorted { $0.transactionalId < $1.transactionalId }
    }

    public func describe(_ transactionalId: String) -> TransactionMetadata? {
        state.withLock { $0.transactions[transactionalId] }
    }

    public var isLoading: Bool { state.withLock { $0.loading } }
}

extension TransactionMetadata {
    func withPending(_ pending: Bool) -> TransactionMetadata {
        var copy = self
        copy.pending = pending
        return copy
    }
}
