import CommitLog
import KafkaWire
import Security
import TransactionCoordination

/// Admin views of transactions (KIP-664): DescribeTransactions, ListTransactions, DescribeProducers.
extension Broker {
    func handleDescribeTransactions(_ context: RequestContext, _ request: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
        DescribeTransactionsResponse(transactionStates: request.transactionalIds.map { id in
            guard authorized(context, .describe, .transactionalId, id) else {
                return .init(errorCode: KafkaErrorCode.transactionalIdAuthorizationFailed.rawValue, transactionalId: id, transactionState: "",
                             transactionTimeoutMs: 0, transactionStartTimeMs: -1, producerId: -1, producerEpoch: -1, topics: [])
            }
            guard let meta = transactionCoordinator.describe(id) else {
                return .init(errorCode: KafkaErrorCode.transactionalIdNotFound.rawValue, transactionalId: id, transactionState: "", transactionTimeoutMs: 0,
                             transactionStartTimeMs: -1, producerId: -1, producerEpoch: -1, topics: [])
            }
            let byTopic = Dictionary(grouping: meta.partitions, by: \.topic)
            return .init(
                errorCode: 0, transactionalId: id, transactionState: meta.state.name, transactionTimeoutMs: meta.timeoutMs,
                transactionStartTimeMs: meta.startTimestampMs, producerId: meta.producerId, producerEpoch: meta.producerEpoch,
                topics: byTopic.keys.sorted().map { .init(topic: $0, partitions: byTopic[$0]!.map(\.partition).sorted()) })
        })
    }

    func handleListTransactions(_ context: RequestContext, _ request: ListTransactionsRequest) -> ListTransactionsResponse {
        let known = Set((0...7).compactMap { TransactionState(rawValue: Int8($0))?.name })
        let now = clock.wallMilliseconds()
        let states = Set(request.stateFilters)
        let producers = Set(request.producerIdFilters)
        let minDuration = context.header.apiVersion >= 1 ? request.durationFilter : -1
        let matching = transactionCoordinator.describeAll().filter { meta in
            authorized(context, .describe, .transactionalId, meta.transactionalId) && (states.isEmpty || states.contains(meta.state.name)) && (producers.isEmpty || producers.contains(meta.producerId))
                && (minDuration < 0 || (meta.state == .ongoing && now - meta.startTimestampMs >= minDuration))
        }
        return ListTransactionsResponse(
            errorCode: 0, unknownStateFilters: request.stateFilters.filter { !known.contains($0) },
            transactionStates: matching.map { .init(transactionalId: $0.transactionalId, producerId: $0.producerId, transactionState: $0.state.name) })
    }

    func handleDescribeProducers(_ context: RequestContext, _ request: DescribeProducersRequest) -> DescribeProducersResponse {
        DescribeProducersResponse(topics: request.topics.map { topic in
            let found = topics.topic(named: topic.name)
            return .init(name: topic.name, partitions: topic.partitionIndexes.map { index in
                guard let log = found?.partition(index) else {
                    return .init(partitionIndex: index, errorCode: KafkaErrorCode.unknownTopicOrPartition.rawValue, errorMessage: nil, activeProducers: [])
                }
                return .init(partitionIndex: index, errorCode: 0, errorMessage: nil, activeProducers: log.activeProducers(logManager.appender).map {
                    .init(producerId: $0.producerId, producerEpoch: Int32($0.producerEpoch), lastSequence: $0.lastSequence,
                          lastTimestamp: $0.lastTimestamp, coordinatorEpoch: $0.coordinatorEpoch, currentTxnStartOffset: $0.currentTxnStartOffset)
                })
            })
        })
    }
}
