import CommitLog
import GroupCoordination
import KafkaWire
import Logging
import RecordFormat
import Synchronization
import TransactionCoordination

/// Transaction APIs (KIP-98): InitProducerId with a transactional id, AddPartitionsToTxn (v0-3, and
/// v4's batched / verify-only form), AddOffsetsToTxn, EndTxn, TxnOffsetCommit; the state machine is
/// `TransactionCoordinator`, the IO `BrokerTransactionIO`.
extension Broker {
    /// PRODUCER_FENCED (KIP-588) is answered as INVALID_PRODUCER_EPOCH to versions older than 2,
    /// which do not know it.
    static func fencedCompatible(_ error: KafkaErrorCode, version: Int16) -> KafkaErrorCode {
        error == .producerFenced && version < 2 ? .invalidProducerEpoch : error
    }

    func handleInitProducerIdRouted(_ context: RequestContext, _ request: InitProducerIdRequest, reply: Reply<InitProducerIdResponse>) {
        guard let transactionalId = request.transactionalId, !transactionalId.isEmpty else {
            return reply.send(handleInitProducerId(context, request))
        }
        let version = context.header.apiVersion
        transactionCoordinator.initProducerId(
            transactionalId: transactionalId, transactionTimeoutMs: request.transactionTimeoutMs,
            producerId: version >= 3 ? request.producerId : -1, producerEpoch: version >= 3 ? request.producerEpoch : -1
        ) { result in
            reply.send(InitProducerIdResponse(
                errorCode: Self.fencedCompatible(result.error, version: version >= 4 ? 2 : 0).rawValue, producerId: result.producerId,
                producerEpoch: result.producerEpoch))
        }
    }

    /// Partitions that exist, or the per-partition error for those that do not.
    private func checkPartitions(_ requested: [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic]) -> [TransactionPartition: KafkaErrorCode] {
        var errors: [TransactionPartition: KafkaErrorCode] = [:]
        for topic in requested {
            let found = self.topics.topic(named: topic.name)
            for p in topic.partitions where found?.partition(p) == nil {
                errors[TransactionPartition(topic: topic.name, partition: p)] = .unknownTopicOrPartition
            }
        }
        return errors
    }

    private static func topicResults(
        _ topics: [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic], _ error: (TransactionPartition) -> KafkaErrorCode
    ) -> [AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult] {
        topics.map { topic in
            .init(name: topic.name, resultsByPartition: topic.partitions.map { p in
                .init(partitionIndex: p, partitionErrorCode: error(TransactionPartition(topic: topic.name, partition: p)).rawValue)
            })
        }
    }

    /// One transaction's AddPartitionsToTxn (or, verify-only, KIP-890's check), answered per partition.
    private func addPartitions(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, verifyOnly: Bool,
        topics: [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic], version: Int16,
        completion: @escaping @Sendable ([AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult]) -> Void
    ) {
        let partitions = topics.flatMap { topic in topic.partitions.map { TransactionPartition(topic: topic.name, partition: $0) } }
        if verifyOnly {
            return completion(Self.topicResults(topics) { partition in
                transactionCoordinator.verifyPartition(
                    transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch, partition: partition)
            })
        }
        let missing = checkPartitions(topics)
        guard missing.isEmpty else {
            // Kafka: the unknown ones fail, the rest are not attempted.
            return completion(Self.topicResults(topics) { missing[$0] ?? .operationNotAttempted })
        }
        transactionCoordinator.addPartitions(
            transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch, partitions: partitions
        ) { error in
            let mapped = Self.fencedCompatible(error, version: version)
            completion(Self.topicResults(topics) { _ in mapped })
        }
    }

    func handleAddPartitionsToTxn(_ context: RequestContext, _ request: AddPartitionsToTxnRequest, reply: Reply<AddPartitionsToTxnResponse>) {
        let version = context.header.apiVersion
        if version <= 3 {
            return addPartitions(
                transactionalId: request.v3AndBelowTransactionalId, producerId: request.v3AndBelowProducerId,
                producerEpoch: request.v3AndBelowProducerEpoch, verifyOnly: false, topics: request.v3AndBelowTopics, version: version
            ) { results in reply.send(AddPartitionsToTxnResponse(resultsByTopicV3AndBelow: results)) }
        }
        // v4+: batched, from brokers (KIP-890); each transaction answered on its own.
        let transactions = request.transactions
        guard !transactions.isEmpty else { return reply.send(AddPartitionsToTxnResponse()) }
        let results = Mutex((left: transactions.count, byIndex: [Int: AddPartitionsToTxnResponse.AddPartitionsToTxnResult]()))
        for (index, txn) in transactions.enumerated() {
            addPartitions(
                transactionalId: txn.transactionalId, producerId: txn.producerId, producerEpoch: txn.producerEpoch,
                verifyOnly: txn.verifyOnly, topics: txn.topics, version: version
            ) { topicResults in
                let done: [AddPartitionsToTxnResponse.AddPartitionsToTxnResult]? = results.withLock { state in
                    state.byIndex[index] = .init(transactionalId: txn.transactionalId, topicResults: topicResults)
                    state.left -= 1
                    return state.left == 0 ? (0..<transactions.count).map { state.byIndex[$0]! } : nil
                }
                if let done { reply.send(AddPartitionsToTxnResponse(resultsByTransaction: done)) }
            }
        }
    }

    func handleAddOffsetsToTxn(_ context: RequestContext, _ request: AddOffsetsToTxnRequest, reply: Reply<AddOffsetsToTxnResponse>) {
        let version = context.header.apiVersion
        let topic: Topic
        do { topic = try ensureOffsetsTopic() } catch {
            return reply.send(AddOffsetsToTxnResponse(errorCode: KafkaErrorCode.coordinatorNotAvailable.rawValue))
        }
        let partition = CoordinatorRecord.offsetsPartition(for: request.groupId, partitionCount: Int32(topic.partitions.count))
        transactionCoordinator.addPartitions(
            transactionalId: request.transactionalId, producerId: request.producerId, producerEpoch: request.producerEpoch,
            partitions: [TransactionPartition(topic: OffsetsTopicStore.topicName, partition: partition)]
        ) { error in
            reply.send(AddOffsetsToTxnResponse(errorCode: Self.fencedCompatible(error, version: version).rawValue))
        }
    }

    func handleEndTxn(_ context: RequestContext, _ request: EndTxnRequest, reply: Reply<EndTxnResponse>) {
        let version = context.header.apiVersion
        transactionCoordinator.endTransaction(
            transactionalId: request.transactionalId, producerId: request.producerId, producerEpoch: request.producerEpoch,
            commit: request.committed
        ) { error in
            reply.send(EndTxnResponse(errorCode: Self.fencedCompatible(error, version: version).rawValue))
        }
    }

    /// TxnOffsetCommit: the group's `__consumer_offsets` partition must be in the producer's
    /// transaction (AddOffsetsToTxn first), then the group coordinator holds the offsets until the
    /// transaction is decided.
    func handleTxnOffsetCommit(_ context: RequestContext, _ request: TxnOffsetCommitRequest, reply: Reply<TxnOffsetCommitResponse>) {
        let version = context.header.apiVersion
        func failAll(_ error: KafkaErrorCode) -> TxnOffsetCommitResponse {
            TxnOffsetCommitResponse(topics: request.topics.map { topic in
                .init(name: topic.name, partitions: topic.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: error.rawValue) })
            })
        }
        guard let topic = try? ensureOffsetsTopic() else { return reply.send(failAll(.coordinatorNotAvailable)) }
        let partition = CoordinatorRecord.offsetsPartition(for: request.groupId, partitionCount: Int32(topic.partitions.count))
        let verified = transactionCoordinator.verifyPartition(
            transactionalId: request.transactionalId, producerId: request.producerId, producerEpoch: request.producerEpoch,
            partition: TransactionPartition(topic: OffsetsTopicStore.topicName, partition: partition))
        if verified != .none {
            let error: KafkaErrorCode = verified == .invalidProducerEpoch ? (version >= 2 ? .producerFenced : .invalidProducerEpoch) : verified
            return reply.send(failAll(error))
        }
        groupCoordinator.handleTxnOffsetCommit(request, version: version, completion: reply.send)
    }
}

extension Broker {
    /// KIP-890 part 1: a transactional batch is accepted only from the producer's current epoch, and
    /// only for a partition its Ongoing transaction includes (AddPartitionsToTxn came first).
    func transactionalRefusal(_ transactionalId: String?, _ header: RecordBatchHeader, topic: String, partition: Int32) -> KafkaErrorCode? {
        guard let transactionalId, !transactionalId.isEmpty else { return .transactionalIdNotFound }
        let verdict = transactionCoordinator.verifyPartition(
            transactionalId: transactionalId, producerId: header.producerId, producerEpoch: header.producerEpoch,
            partition: TransactionPartition(topic: topic, partition: partition))
        switch verdict {
        case .none: return nil
        case .invalidProducerIdMapping: return .invalidProducerIdMapping
        default: return verdict
        }
    }
}
