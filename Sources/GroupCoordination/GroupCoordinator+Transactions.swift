public import KafkaWire
import Logging
public import NIOCore

/// Offsets committed inside transactions (TxnOffsetCommit, KIP-98/KIP-447).
///
/// The records go to `__consumer_offsets` as a transactional batch of the producer and are held
/// here per producer id; they become the group's committed offsets only when the transaction's
/// COMMIT marker is written to that partition (`completeTransaction`), and are dropped on ABORT.
/// At load, records of transactions decided in the log are applied or dropped by the replay; ones
/// still open are handed back with `loadPendingTransactionalOffsets`.
extension GroupCoordinator {
    public func handleTxnOffsetCommit(
        _ request: TxnOffsetCommitRequest, version: Int16, completion: @escaping @Sendable (TxnOffsetCommitResponse) -> Void
    ) {
        withState {
            func answer(_ error: (GroupTopicPartition) -> KafkaErrorCode) -> TxnOffsetCommitResponse {
                Self.txnCommitResponse(request, error)
            }
            func failAll(_ error: KafkaErrorCode) {
                let response = answer { _ in error }
                respond { completion(response) }
            }
            if isLoading { return failAll(.coordinatorLoadInProgress) }
            if let group = groups[request.groupId] {
                if group.state == .dead { return failAll(.coordinatorNotAvailable) }
                // v3+ carries the member's identity (KIP-447); check it as OffsetCommit does.
                if version >= 3, !request.memberId.isEmpty || request.generationId >= 0 || request.groupInstanceId != nil {
                    if let error = validateCurrentMember(group, memberId: request.memberId, groupInstanceId: request.groupInstanceId) {
                        return failAll(error)
                    }
                    if request.generationId != group.generationId { return failAll(.illegalGeneration) }
                }
            }
            let now = clock.nowMilliseconds()
            var errors: [GroupTopicPartition: KafkaErrorCode] = [:]
            var accepted: [(GroupTopicPartition, CommittedOffset)] = []
            for topic in request.topics {
                for p in topic.partitions {
                    let key = GroupTopicPartition(topic: topic.name, partition: p.partitionIndex)
                    let metadata = p.committedMetadata ?? ""
                    guard metadata.utf8.count <= configuration.offsetMetadataMaxBytes else {
                        errors[key] = .offsetMetadataTooLarge
                        continue
                    }
                    accepted.append((key, CommittedOffset(
                        offset: p.committedOffset, leaderEpoch: version >= 2 ? p.committedLeaderEpoch : -1, metadata: metadata,
                        commitTimestampMs: now)))
                }
            }
            guard !accepted.isEmpty else {
                let response = answer { errors[$0] ?? .none }
                return respond { completion(response) }
            }
            let records = accepted.map { key, offset in
                CoordinatorRecord.offsetCommit(
                    group: request.groupId, topic: key.topic, partition: key.partition,
                    value: OffsetCommitValue(
                        offset: offset.offset, leaderEpoch: offset.leaderEpoch, metadata: offset.metadata,
                        commitTimestamp: offset.commitTimestampMs, expireTimestamp: -1))
            }
            let producerId = request.producerId
            let epoch = request.producerEpoch
            let groupId = request.groupId
            let acceptedOffsets = accepted
            let rejected = errors
            let store = self.store
            respond {
                store.persistTransactional(records, producerId: producerId, producerEpoch: epoch) { [weak self] ok in
                    guard let self else { return }
                    self.withState {
                        if ok {
                            for (key, offset) in acceptedOffsets {
                                self.pendingTransactionalOffsets[producerId, default: [:]][groupId, default: [:]][key] = offset
                            }
                        }
                        let response = Self.txnCommitResponse(request) { rejected[$0] ?? (ok ? .none : .coordinatorNotAvailable) }
                        self.respond { completion(response) }
                    }
                }
            }
        }
    }

    static func txnCommitResponse(_ request: TxnOffsetCommitRequest, _ error: (GroupTopicPartition) -> KafkaErrorCode) -> TxnOffsetCommitResponse {
        TxnOffsetCommitResponse(topics: request.topics.map { topic in
            .init(name: topic.name, partitions: topic.partitions.map { p in
                .init(partitionIndex: p.partitionIndex, errorCode: error(GroupTopicPartition(topic: topic.name, partition: p.partitionIndex)).rawValue)
            })
        })
    }

    /// The transaction of `producerId` was decided and its marker is in `__consumer_offsets`:
    /// its offsets become committed (`commit`) or are dropped.
    public func completeTransaction(producerId: Int64, commit: Bool) {
        withState {
            guard let byGroup = pendingTransactionalOffsets.removeValue(forKey: producerId), commit else { return }
            for (groupId, offsets) in byGroup {
                let group: ClassicGroup
                if let existing = groups[groupId] {
                    group = existing
                } else {
                    group = ClassicGroup(groupId: groupId)
                    groups[groupId] = group
                }
                for (key, offset) in offsets { group.offsets[key] = offset }
            }
        }
    }

    /// After `load`: offsets of transactions still open in the log.
    public func loadPendingTransactionalOffsets(producerId: Int64, records: [(key: ByteBuffer, value: ByteBuffer?)]) {
        withState {
            for record in records {
                guard case .offsetCommit(let key)? = try? CoordinatorRecord.decodeKey(record.key), let bytes = record.value,
                    let value = try? CoordinatorRecord.decodeOffsetCommitValue(bytes)
                else { continue }
                pendingTransactionalOffsets[producerId, default: [:]][key.group, default: [:]][
                    GroupTopicPartition(topic: key.topic, partition: key.partition)] = CommittedOffset(
                        offset: value.offset, leaderEpoch: value.leaderEpoch, metadata: value.metadata, commitTimestampMs: value.commitTimestamp)
            }
        }
    }

    /// Whether a partition of the group has an offset in an open transaction (KIP-447 RequireStable).
    public func hasPendingTransactionalOffset(group: String) -> Bool {
        var pending = false
        withState { pending = pendingTransactionalOffsets.values.contains { $0[group] != nil } }
        return pending
    }
}
