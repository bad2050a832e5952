import CommitLog
import GroupCoordination
import KafkaWire
import Logging
import NIOCore
import RecordFormat
import Synchronization
import TransactionCoordination

/// The transaction coordinator's IO: its records in `__transaction_state` (compacted,
/// `transaction.state.log.num.partitions` partitions, Kafka's record formats) and its COMMIT/ABORT
/// markers, appended through the same commit log as everything else.
final class BrokerTransactionIO: TransactionLogStore, TransactionMarkerWriter, @unchecked Sendable {
    static let topicName = "__transaction_state"
    /// Set once in `Broker.init`, before any request is served.
    weak var broker: Broker?

    func persist(transactionalId: String, value: TransactionLogValue?, completion: @escaping @Sendable (Bool) -> Void) {
        guard let broker else { return completion(false) }
        let topic: Topic
        do { topic = try broker.ensureTransactionStateTopic() } catch {
            broker.logger.error("cannot create __transaction_state", metadata: ["error": "\(error)"])
            return completion(false)
        }
        let partition = CoordinatorRecord.offsetsPartition(for: transactionalId, partitionCount: Int32(topic.partitions.count))
        guard let log = topic.partition(partition) else { return completion(false) }
        var builder = RecordBatchBuilder()
        builder.append(
            key: Array(buffer: TransactionCoordinator.encodeKey(transactionalId)),
            value: value.map { Array(buffer: TransactionCoordinator.encodeValue($0)) }, timestamp: broker.clock.wallMilliseconds())
        broker.logManager.appender.append(builder.build(), to: log) { result in
            if case .failure(let error) = result {
                broker.logger.warning("persisting transaction state failed", metadata: ["transactionalId": "\(transactionalId)", "error": "\(error)"])
            }
            completion((try? result.get()) != nil)
        }
    }

    func writeMarkers(
        producerId: Int64, producerEpoch: Int16, commit: Bool, partitions: [TransactionPartition],
        completion: @escaping @Sendable (Bool) -> Void
    ) {
        guard let broker else { return completion(false) }
        let now = broker.clock.wallMilliseconds()
        let type: ControlRecordType = commit ? .commit : .abort
        var targets: [(TransactionPartition, PartitionLog)] = []
        for partition in partitions {
            // A deleted topic has nothing left to mark.
            guard let log = broker.topics.topic(named: partition.topic)?.partition(partition.partition) else { continue }
            targets.append((partition, log))
        }
        guard !targets.isEmpty else { return completion(true) }
        let remaining = Mutex((count: targets.count, ok: true))
        for (partition, log) in targets {
            let batch = type.markerBatch(producerId: producerId, producerEpoch: producerEpoch, coordinatorEpoch: 0, timestamp: now)
            broker.logManager.appender.append(batch, to: log) { result in
                var ok = true
                switch result {
                case .success:
                    if partition.topic == OffsetsTopicStore.topicName {
                        broker.groupCoordinator.completeTransaction(producerId: producerId, commit: commit)
                    }
                case .failure(let error):
                    // A fenced marker (older epoch than the partition knows) has nothing to close.
                    ok = error.kind == .invalidProducerEpoch
                    broker.logger.warning(
                        "writing a transaction marker failed", metadata: ["partition": "\(partition.topic)-\(partition.partition)", "error": "\(error)"])
                }
                let done: (Bool, Bool) = remaining.withLock { state in
                    if !ok { state.ok = false }
                    state.count -= 1
                    return (state.count == 0, state.ok)
                }
                if done.0 { completion(done.1) }
            }
        }
    }
}

struct TransactionWallClock: TransactionClock {
    let clock: any LogClock
    func nowMilliseconds() -> Int64 { clock.wallMilliseconds() }
}

extension OffsetsTopicStore {
    /// TxnOffsetCommit records: one transactional batch of the producer (no sequence: written by the
    /// coordinator), so the partition's producer state tracks the open transaction and its marker.
    func persistTransactional(
        _ records: [CoordinatorRecord], producerId: Int64, producerEpoch: Int16, completion: @escaping @Sendable (Bool) -> Void
    ) {
        guard let first = records.first, let topic = try? ensureTopic() else { return completion(false) }
        let partition = CoordinatorRecord.offsetsPartition(for: first.groupId, partitionCount: Int32(topic.partitions.count))
        guard let log = topic.partition(partition) else { return completion(false) }
        var builder = RecordBatchBuilder(producerId: producerId, producerEpoch: producerEpoch, baseSequence: -1, isTransactional: true)
        let now = clock.wallMilliseconds()
        for record in records {
            builder.append(key: Array(buffer: record.key), value: record.value.map { Array(buffer: $0) }, headers: [], timestamp: now)
        }
        logManager.appender.append(builder.build(), to: log) { result in completion((try? result.get()) != nil) }
    }
}

extension Broker {
    /// `__transaction_state`, created on first use as Kafka does.
    @discardableResult
    func ensureTransactionStateTopic() throws(TopicError) -> Topic {
        try ensureInternalTopic(BrokerTransactionIO.topicName, partitions: configuration.transactions.stateLogPartitions)
    }

    /// Replays `__transaction_state` into the coordinator, then starts its timer.
    func loadTransactions() throws {
        var records: [(key: ByteBuffer, value: ByteBuffer?)] = []
        if let topic = topics.topic(named: BrokerTransactionIO.topicName) {
            for log in topic.partitions {
                try Self.replay(log) { header, record in
                    if !header.isControl, let key = record.key { records.append((key, record.value)) }
                }
            }
        }
        transactionCoordinator.load(records)
        logger.info("loaded transactions", metadata: ["records": "\(records.count)", "transactionalIds": "\(transactionCoordinator.describeAll().count)"])
        scheduleTransactionTick()
    }

    func scheduleTransactionTick() {
        let interval = configuration.transactions.abortTimedOutCleanupIntervalMs
        _ = groupScheduler.schedule(after: interval) { [weak self] in
            guard let self, !self.isShuttingDown.load(ordering: .acquiring) else { return }
            self.transactionCoordinator.tick()
            self.scheduleTransactionTick()
        }
    }

    /// Calls `body` for every record of `log` below its high watermark, in offset order, with its
    /// batch header (control batches included).
    static func replay(_ log: PartitionLog, _ body: (RecordBatchHeader, Record) throws -> Void) throws {
        var offset = log.logStartOffset
        while offset < log.highWatermark {
            let read = try log.read(from: Offset(offset), maxBytes: 4 << 20)
            guard read.byteCount > 0 else { break }
            var bytes = ByteBuffer()
            for slice in read.slices { try slice.read(appendingTo: &bytes) }
            var next = offset
            while bytes.readableBytes >= RecordBatchHeader.byteCount {
                let header = try RecordBatch.validateFraming(bytes, requireExactLength: false)
                guard let batch = bytes.readSlice(length: header.totalByteCount) else { break }
                next = header.nextOffset
                for record in try RecordBatch.records(in: batch) where header.baseOffset + Int64(record.offsetDelta) >= offset {
                    try body(header, record)
                }
            }
            guard next > offset else { break }
            offset = next
        }
    }
}
