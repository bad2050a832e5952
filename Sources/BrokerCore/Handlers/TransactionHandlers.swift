import CommitLog
import GroupCoordination
import KafkaWire
import Logging
import RecordFormat
import Security
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
        guard authorized(context, .write, .transactionalId, transactionalId) else {
            return reply.send(InitProducerIdResponse(
                errorCode: KafkaErrorCode.transactionalIdAuthorizationFailed.rawValue, producerId: -1, producerEpoch: -1))
        }
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

    static func topicResults(
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
            // Kafka's ACLs: WRITE on the transactional id, then WRITE on every topic (the others
            // are not attempted when one is refused).
            let topics = request.v3AndBelowTopics
            guard authorized(context, .write, .transactionalId, request.v3AndBelowTransactionalId) else {
                return reply.send(AddPartitionsToTxnResponse(resultsByTopicV3AndBelow: Self.topicResults(topics) { _ in .transactionalIdAuthorizationFailed }))
            }
            let refused = Set(topics.map(\.name).filter { !authorized(context, .write, .topic, $0) })
            guard refused.isEmpty else {
                return reply.send(AddPartitionsToTxnResponse(resultsByTopicV3AndBelow: Self.topicResults(topics) {
                    refused.contains($0.topic) ? .topicAuthorizationFailed : .operationNotAttempted
                }))
            }
            return addPartitions(
                transactionalId: request.v3AndBelowTransactionalId, producerId: request.v3AndBelowProducerId,
                producerEpoch: request.v3AndBelowProducerEpoch, verifyOnly: false, topics: request.v3AndBelowTopics, version: version
            ) { results in reply.send(AddPartitionsToTxnResponse(resultsByTopicV3AndBelow: results)) }
        }
        // v4+: batched, from brokers (KIP-890); each transaction answered on its own.
        guard authorized(context, .clusterAction, .cluster, Self.clusterName) else {
            var refused = AddPartitionsToTxnResponse()
            refused.errorCode = KafkaErrorCode.clusterAuthorizationFailed.rawValue
            return reply.send(refused)
        }
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
        guard authorized(context, .write, .transactionalId, request.transactionalId) else {
            return reply.send(AddOffsetsToTxnResponse(errorCode: KafkaErrorCode.transactionalIdAuthorizationFailed.rawValue))
        }
        guard authorized(context, .read, .group, request.groupId) else {
            return reply.send(AddOffsetsToTxnResponse(errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue))
        }
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

    /// EndTxn; v5 is transactions v2 (KIP-890 part 2): the epoch is bumped with every end and the
    /// answer carries the producer id and epoch of the next transaction.
    func handleEndTxn(_ context: RequestContext, _ request: EndTxnRequest, reply: Reply<EndTxnResponse>) {
        let version = context.header.apiVersion
        guard authorized(context, .write, .transactionalId, request.transactionalId) else {
            return reply.send(EndTxnResponse(errorCode: KafkaErrorCode.transactionalIdAuthorizationFailed.rawValue))
        }
        transactionCoordinator.endTransaction(
            transactionalId: request.transactionalId, producerId: request.producerId, producerEpoch: request.producerEpoch,
            commit: request.committed, transactionVersion: version >= 5 ? 2 : 0
        ) { result in
            reply.send(EndTxnResponse(
                errorCode: Self.fencedCompatible(result.error, version: version).rawValue, producerId: result.producerId,
                producerEpoch: result.producerEpoch))
        }
    }

    /// TxnOffsetCommit: the group's `__consumer_offsets` partition must be in the producer's
    /// transaction (AddOffsetsToTxn first), then the group coordinator holds the offsets until the
    /// transaction is decided.
    func handleTxnOffsetCommit(_ context: RequestContext, _ request: TxnOffsetCommitRequest, reply: Reply<TxnOffsetCommitResponse>) {
        let version = context.header.apiVersion
        let failAll: @Sendable (KafkaErrorCode) -> TxnOffsetCommitResponse = { error in
            TxnOffsetCommitResponse(topics: request.topics.map { topic in
                .init(name: topic.name, partitions: topic.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: error.rawValue) })
            })
        }
        // Kafka's ACLs: WRITE on the transactional id, READ on the group, READ on each topic.
        guard authorized(context, .write, .transactionalId, request.transactionalId) else {
            return reply.send(failAll(.transactionalIdAuthorizationFailed))
        }
        guard authorized(context, .read, .group, request.groupId) else { return reply.send(failAll(.groupAuthorizationFailed)) }
        let unreadable = Set(request.topics.map(\.name).filter { !authorized(context, .read, .topic, $0) })
        guard unreadable.isEmpty else {
            return reply.send(TxnOffsetCommitResponse(topics: request.topics.map { topic in
                let error: KafkaErrorCode = unreadable.contains(topic.name) ? .topicAuthorizationFailed : .operationNotAttempted
                return .init(name: topic.name, partitions: topic.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: error.rawValue) })
            }))
        }
        guard let topic = try? ensureOffsetsTopic() else { return reply.send(failAll(.coordinatorNotAvailable)) }
        let partition = CoordinatorRecord.offsetsPartition(for: request.groupId, partitionCount: Int32(topic.partitions.count))
        if version >= 5 {
            // Transactions v2: no AddOffsetsToTxn; the group's partition joins the transaction here.
            let groupCoordinator = self.groupCoordinator
            return transactionCoordinator.addPartitionImplicitly(
                transactionalId: request.transactionalId, producerId: request.producerId, producerEpoch: request.producerEpoch,
                partition: TransactionPartition(topic: OffsetsTopicStore.topicName, partition: partition),
                write: { groupCoordinator.handleTxnOffsetCommit(request, version: version, completion: reply.send) },
                refuse: { reply.send(failAll($0)) })
        }
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
    /// The `transaction.version` level served: 2 is transactions v2 (KIP-890 part 2, EndTxn v5,
    /// Produce v12, TxnOffsetCommit v5), which Kafka 4 clients use only when the cluster finalizes it.
    static let transactionVersion: Int16 = 2

    /// ApiVersions v3+ features (KIP-584): `transaction.version` supported 0-2 and finalized at 2,
    /// consistent with the EndTxn/Produce/TxnOffsetCommit versions advertised. The feature epoch
    /// never changes (features are not updatable here).
    static func advertiseFeatures(_ response: inout ApiVersionsResponse) {
        response.supportedFeatures = [.init(name: "transaction.version", minVersion: 0, maxVersion: transactionVersion)]
        response.finalizedFeaturesEpoch = 1
        response.finalizedFeatures = [.init(name: "transaction.version", maxVersionLevel: transactionVersion, minVersionLevel: transactionVersion)]
    }

    /// KIP-890 part 1: a transactional batch is accepted only from the producer's current epoch, and
    /// only for a partition its Ongoing transaction includes (AddPartitionsToTxn came first).
    func transactionalRefusal(_ transactionalId: String?, _ header: RecordBatchHeader, partition: TransactionPartition) -> KafkaErrorCode? {
        guard let transactionalId, !transactionalId.isEmpty else { return .transactionalIdNotFound }
        let verdict = transactionCoordinator.verifyPartition(
            transactionalId: transactionalId, producerId: header.producerId, producerEpoch: header.producerEpoch, partition: partition)
        switch verdict {
        case .none: return nil
        case .invalidProducerIdMapping: return .invalidProducerIdMapping
        default: return verdict
        }
    }
}
