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
/// Transactions v2 (KIP-890 part 2, Kafka 4.0's `transaction.version=2`): EndTxn v5 bumps the epoch
/// with every commit or abort (markers carry the bumped epoch, so a late write of the ended
/// transaction is fenced everywhere) and answers the producer id and epoch of the next transaction
/// (a new producer id once the epoch is exhausted); partitions join implicitly through Produce v12
/// and TxnOffsetCommit v5 (`addPartitionImplicitly`).
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

    /// What a request does to a transaction's state.
    enum Step {
        /// Answer this error, change nothing.
        case refuse(KafkaErrorCode)
        /// Nothing to change (already so): answer success.
        case unchanged
        /// Persist this state (marked pending until it is durable), then answer.
        case persist(TransactionMetadata)
    }

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
            var meta = TransactionMetadata(
                transactionalId: id, producerId: value.producerId, producerEpoch: value.producerEpoch,
                timeoutMs: value.transactionTimeoutMs, state: status, partitions: partitions,
                startTimestampMs: value.transactionStartTimestampMs, lastUpdateTimestampMs: value.transactionLastUpdateTimestampMs)
            meta.previousProducerId = value.previousProducerId
            meta.nextProducerId = value.nextProducerId
            meta.clientTransactionVersion = value.clientTransactionVersion
            transactions[id] = meta
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

    /// `int16 version` + `TransactionLogValue`: version 0 (Kafka 3's layout) unless the value
    /// carries transactions v2 state, which only version 1's tagged fields hold.
    public static func encodeValue(_ value: TransactionLogValue) -> ByteBuffer {
        let v2 = value.clientTransactionVersion >= 2 || value.previousProducerId >= 0 || value.nextProducerId >= 0
        return encode(value, version: v2 ? 1 : 0)
    }

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

    /// `body` applied to the transaction of `transactionalId` when `producerId`/`producerEpoch` are
    /// its current producer and nothing is in flight for it; else the error to answer.
    private static func current(
        _ s: State, _ transactionalId: String, producerId: Int64, producerEpoch: Int16, then body: (TransactionMetadata) -> Step
    ) -> Step {
        if s.loading { return .refuse(.coordinatorLoadInProgress) }
        guard let meta = s.transactions[transactionalId], meta.producerId == producerId else { return .refuse(.invalidProducerIdMapping) }
        guard meta.producerEpoch == producerEpoch else { return .refuse(.producerFenced) }
        if meta.pending { return .refuse(.concurrentTransactions) }
        return body(meta)
    }

    /// The state with `partitions` added: Ongoing, a new transaction (of `transactionVersion`) when
    /// none was; unchanged when they are all in the Ongoing transaction already; refused in states
    /// that take no partitions.
    private static func adding(
        _ partitions: some Collection<TransactionPartition>, to meta: TransactionMetadata, transactionVersion: Int16, now: Int64
    ) -> Step {
        switch meta.state {
        case .prepareCommit, .prepareAbort, .prepareEpochFence:
            return .refuse(.concurrentTransactions)
        case .dead:
            return .refuse(.invalidTxnState)
        case .ongoing where partitions.allSatisfy(meta.partitions.contains):
            return .unchanged
        default:
            var next = meta
            if next.state != .ongoing {
                next.startTimestampMs = now
                next.partitions = []
                next.clientTransactionVersion = transactionVersion
            }
            next.state = .ongoing
            next.partitions.formUnion(partitions)
            next.lastUpdateTimestampMs = now
            return .persist(next)
        }
    }

    /// Adds partitions to the transaction (starting one). Answers one error for all of them.
    public func addPartitions(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, partitions: [TransactionPartition],
        completion: @escaping @Sendable (KafkaErrorCode) -> Void
    ) {
        let now = clock.nowMilliseconds()
        let step: Step = state.withLock { s in
            let step = Self.current(s, transactionalId, producerId: producerId, producerEpoch: producerEpoch) {
                Self.adding(partitions, to: $0, transactionVersion: 0, now: now)
            }
            if case .persist = step { s.transactions[transactionalId]!.pending = true }
            return step
        }
        switch step {
        case .refuse(let error): completion(error)
        case .unchanged: completion(.none)
        case .persist(let next):
            store.persist(transactionalId: transactionalId, value: next.logValue()) { [self] ok in
                state.withLock { s in
                    if ok { s.transactions[transactionalId] = next } else { s.transactions[transactionalId]?.pending = false }
                }
                completion(ok ? .none : .coordinatorNotAvailable)
            }
        }
    }

    /// Transactions v2 (Produce v12, TxnOffsetCommit v5): `partition` joins the producer's
    /// transaction — starting one when none is open — without an AddPartitionsToTxn from the
    /// client. `write` runs once the partition is durably part of the transaction and before any
    /// other request can see it there, so writes of one producer keep their arrival order;
    /// otherwise `refuse` gets the error (the state's, or COORDINATOR_NOT_AVAILABLE when the
    /// state could not be persisted).
    public func addPartitionImplicitly(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, partition: TransactionPartition,
        write: @escaping @Sendable () -> Void, refuse: @escaping @Sendable (KafkaErrorCode) -> Void
    ) {
        let now = clock.nowMilliseconds()
        let step: Step = state.withLock { s in
            let step = Self.current(s, transactionalId, producerId: producerId, producerEpoch: producerEpoch) {
                Self.adding(CollectionOfOne(partition), to: $0, transactionVersion: 2, now: now)
            }
            if case .persist = step { s.transactions[transactionalId]!.pending = true }
            return step
        }
        switch step {
        case .refuse(let error): refuse(error)
        case .unchanged: write()
        case .persist(let next):
            store.persist(transactionalId: transactionalId, value: next.logValue()) { [self] ok in
                if ok { write() }
                state.withLock { s in
                    if ok { s.transactions[transactionalId] = next } else { s.transactions[transactionalId]?.pending = false }
                }
                if !ok { refuse(.coordinatorNotAvailable) }
            }
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
    /// the Complete state follow. `transactionVersion` 2 (EndTxn v5) bumps the epoch and answers
    /// the producer id and epoch of the next transaction; below 2 they are answered as -1.
    public func endTransaction(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, commit: Bool, transactionVersion: Int16 = 0,
        completion: @escaping @Sendable (ProducerIdAndEpoch) -> Void
    ) {
        let now = clock.nowMilliseconds()
        let (step, identity): (Step, ProducerIdAndEpoch) = state.withLock { s in
            let step: Step
            if transactionVersion >= 2 {
                step = endingV2(s, transactionalId, producerId: producerId, producerEpoch: producerEpoch, commit: commit, now: now)
            } else {
                step = Self.current(s, transactionalId, producerId: producerId, producerEpoch: producerEpoch) { meta in
                    Self.endingV1(meta, commit: commit, now: now)
                }
            }
            if case .persist = step { s.transactions[transactionalId]!.pending = true }
            let meta = s.transactions[transactionalId]
            return (step, ProducerIdAndEpoch(error: .none, producerId: meta?.producerId ?? -1, producerEpoch: meta?.producerEpoch ?? -1))
        }
        switch step {
        case .refuse(let error):
            completion(ProducerIdAndEpoch(error: error))
        case .unchanged:
            // A retry of an EndTxn that already completed: v2 answers the current identity again.
            completion(transactionVersion >= 2 ? identity : ProducerIdAndEpoch(error: .none))
        case .persist(let next):
            persistPrepare(next) { error in
                guard error == .none, transactionVersion >= 2 else { return completion(ProducerIdAndEpoch(error: error)) }
                // The identity of the next transaction: the bumped epoch, or the new producer id
                // when the epoch ran out.
                completion(next.nextProducerId >= 0
                    ? ProducerIdAndEpoch(error: .none, producerId: next.nextProducerId, producerEpoch: 0)
                    : ProducerIdAndEpoch(error: .none, producerId: next.producerId, producerEpoch: next.producerEpoch))
            }
        }
    }

    /// EndTxn v0-4 (Kafka's `endTransactionWithTV1`): Ongoing → Prepare*; unchanged for a retry of
    /// a completed EndTxn.
    private static func endingV1(_ meta: TransactionMetadata, commit: Bool, now: Int64) -> Step {
        switch meta.state {
        case .ongoing:
            var next = meta
            next.state = commit ? .prepareCommit : .prepareAbort
            next.lastUpdateTimestampMs = now
            return .persist(next)
        case .completeCommit where commit, .completeAbort where !commit:
            return .unchanged
        case .prepareCommit where commit, .prepareAbort where !commit:
            return .refuse(.concurrentTransactions)
        default:
            return .refuse(.invalidTxnState)
        }
    }

    /// EndTxn v5 (Kafka's transactions v2 `endTransaction`): every end bumps the epoch, so a retry
    /// is recognised by the epoch one below the current one (or the old producer id right after
    /// the epoch ran out). An abort is also taken in Empty/Complete* (the producer may not know
    /// whether its last write opened a transaction): it bumps the epoch and marks nothing.
    private func endingV2(
        _ s: State, _ transactionalId: String, producerId: Int64, producerEpoch: Int16, commit: Bool, now: Int64
    ) -> Step {
        if s.loading { return .refuse(.coordinatorLoadInProgress) }
        guard let meta = s.transactions[transactionalId] else { return .refuse(.invalidProducerIdMapping) }
        let retryOnOverflow = meta.previousProducerId == producerId && producerEpoch == Int16.max - 1 && meta.producerEpoch == 0
        let retryOnEpochBump = meta.producerId == producerId && Int32(meta.producerEpoch) == Int32(producerEpoch) + 1
        guard meta.producerId == producerId || retryOnOverflow else { return .refuse(.invalidProducerIdMapping) }
        let validEpoch: Bool
        switch meta.state {
        case .ongoing, .empty, .dead, .prepareEpochFence: validEpoch = producerEpoch == meta.producerEpoch
        case .prepareCommit, .prepareAbort: validEpoch = retryOnEpochBump
        case .completeCommit, .completeAbort: validEpoch = retryOnEpochBump || retryOnOverflow || producerEpoch == meta.producerEpoch
        }
        guard validEpoch else { return .refuse(.producerFenced) }
        if meta.pending { return .refuse(.concurrentTransactions) }
        let isRetry = retryOnEpochBump || retryOnOverflow
        let abort: TransactionState = .prepareAbort
        switch meta.state {
        case .ongoing:
            return bumped(meta, to: commit ? .prepareCommit : abort, noPartitionAdded: false, now: now)
        case .completeCommit:
            if commit { return isRetry ? .unchanged : .refuse(.invalidTxnState) }
            return isRetry ? .refuse(.invalidTxnState) : bumped(meta, to: abort, noPartitionAdded: true, now: now)
        case .completeAbort:
            if commit { return .refuse(.invalidTxnState) }
            return isRetry ? .unchanged : bumped(meta, to: abort, noPartitionAdded: true, now: now)
        case .empty:
            return commit ? .refuse(.invalidTxnState) : bumped(meta, to: abort, noPartitionAdded: true, now: now)
        case .prepareCommit:
            return .refuse(commit ? .concurrentTransactions : .invalidTxnState)
        case .prepareAbort:
            return .refuse(commit ? .invalidTxnState : .concurrentTransactions)
        case .dead, .prepareEpochFence:
            return .refuse(.invalidTxnState)
        }
    }

    /// Prepare* with the epoch bumped (transactions v2); a new producer id is taken for the
    /// transaction after this one when the epoch is exhausted.
    private func bumped(
        _ meta: TransactionMetadata, to prepared: TransactionState, noPartitionAdded: Bool, now: Int64
    ) -> Step {
        var next = meta
        if meta.producerEpoch >= Int16.max - 1 {
            do { next.nextProducerId = try allocateProducerId() } catch { return .refuse(KafkaErrorCode.coordinatorNotAvailable) }
        }
        next.producerEpoch = meta.producerEpoch + 1
        next.state = prepared
        next.clientTransactionVersion = 2
        next.lastUpdateTimestampMs = now
        if noPartitionAdded {
            next.partitions = []
            next.startTimestampMs = now
        }
        return .persist(next)
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
        // A transactions v2 abort of nothing (an epoch bump only) has no partition to mark.
        guard !meta.partitions.isEmpty else { return complete(meta, commit: commit) }
        markers.writeMarkers(
            producerId: meta.producerId, producerEpoch: meta.producerEpoch, commit: commit, partitions: meta.partitions.sorted()
        ) { [self] ok in
            guard ok else {
                // Left in Prepare*: the next tick retries.
                logger.warning("writing transaction markers failed; retrying later", metadata: ["transactionalId": "\(meta.transactionalId)"])
                state.withLock { $0.transactions[meta.transactionalId]?.pending = false }
                return
            }
            complete(meta, commit: commit)
        }
    }

    /// Persists CompleteCommit/CompleteAbort once the markers are written.
    private func complete(_ meta: TransactionMetadata, commit: Bool) {
        var completed = meta
        completed.state = commit ? .completeCommit : .completeAbort
        completed.lastUpdateTimestampMs = clock.nowMilliseconds()
        if completed.nextProducerId >= 0 {
            // Transactions v2, epoch exhausted: the next transaction runs under the new id.
            completed.previousProducerId = completed.producerId
            completed.producerId = completed.nextProducerId
            completed.producerEpoch = 0
            completed.nextProducerId = -1
        }
        let done = completed
        store.persist(transactionalId: meta.transactionalId, value: done.logValue()) { [self] ok in
            state.withLock { s in
                if ok { s.transactions[meta.transactionalId] = done.withPending(false) } else { s.transactions[meta.transactionalId]?.pending = false }
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
