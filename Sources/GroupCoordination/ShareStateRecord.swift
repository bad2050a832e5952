public import KafkaWire
public import NIOCore

/// The records of `__share_group_state` in Kafka's formats: a ShareSnapshotKey (key version 0) with
/// a ShareSnapshotValue per share-partition (the whole state; compaction keeps the last), a null
/// value deleting it. ShareUpdate records (key version 1) are read and applied onto the snapshot.
public enum ShareStateRecord {
    public static let snapshotKeyVersion: Int16 = 0
    public static let updateKeyVersion: Int16 = 1

    /// Kafka's share coordinator key `groupId:topicId:partition`, hashed like a group id.
    public static func statePartition(for key: SharePartitionKey, partitionCount: Int32) -> Int32 {
        CoordinatorRecord.offsetsPartition(for: "\(key.groupId):\(key.topicId):\(key.partition)", partitionCount: partitionCount)
    }

    public static func encode(_ snapshot: SharePartitionSnapshot, writeTimestamp: Int64 = 0) -> (key: ByteBuffer, value: ByteBuffer) {
        let key = ShareSnapshotKey(groupId: snapshot.key.groupId, topicId: snapshot.key.topicId, partition: snapshot.key.partition)
        let value = ShareSnapshotValue(
            snapshotEpoch: 0, stateEpoch: snapshot.stateEpoch, leaderEpoch: 0, startOffset: snapshot.startOffset,
            stateBatches: snapshot.batches.map {
                .init(firstOffset: $0.firstOffset, lastOffset: $0.lastOffset, deliveryState: $0.state.rawValue, deliveryCount: $0.deliveryCount)
            })
        return (encode(key, version: snapshotKeyVersion, as: snapshotKeyVersion), encode(value, version: 0, as: 0))
    }

    public static func encodeTombstoneKey(_ key: SharePartitionKey) -> ByteBuffer {
        encode(ShareSnapshotKey(groupId: key.groupId, topicId: key.topicId, partition: key.partition), version: snapshotKeyVersion, as: snapshotKeyVersion)
    }

    private static func encode(_ message: some KafkaMessage, version: Int16, as prefix: Int16) -> ByteBuffer {
        var writer = WireWriter(initialCapacity: 64)
        writer.buffer.writeWireInt16(prefix)
        do {
            try message.write(to: &writer, version: version)
        } catch {
            preconditionFailure("cannot encode share state record: \(error)")
        }
        guard let buffer = writer.finishSingleBuffer() else { preconditionFailure("share state record has file chunks") }
        return buffer
    }

    public enum Decoded: Sendable, Equatable {
        case snapshot(SharePartitionSnapshot)
        /// A ShareUpdate: changed batches (and the start offset unless -1) to apply onto the snapshot.
        case update(SharePartitionSnapshot)
        case deleted(SharePartitionKey)
    }

    /// Decodes one record; nil for keys of other record types.
    public static func decode(key: ByteBuffer, value: ByteBuffer?) throws(WireError) -> Decoded? {
        var keyBuffer = key
        let type = try keyBuffer.readWireInt16()
        let partitionKey: SharePartitionKey
        switch type {
        case snapshotKeyVersion:
            let k = try ShareSnapshotKey(from: &keyBuffer, version: 0)
            partitionKey = SharePartitionKey(groupId: k.groupId, topicId: k.topicId, partition: k.partition)
        case updateKeyVersion:
            let k = try ShareUpdateKey(from: &keyBuffer, version: 1)
            partitionKey = SharePartitionKey(groupId: k.groupId, topicId: k.topicId, partition: k.partition)
        default:
            return nil
        }
        guard var valueBuffer = value else { return .deleted(partitionKey) }
        let valueVersion = try valueBuffer.readWireInt16()
        guard valueVersion == 0 else { throw WireError.unsupportedVersion(apiKey: -1, version: valueVersion) }
        func batches(_ raw: [(Int64, Int64, Int8, Int16)]) -> [SharePartition.StateBatch] {
            raw.compactMap { first, last, state, count in
                guard last >= first, let state = SharePartition.RecordState(rawValue: state) else { return nil }
                return SharePartition.StateBatch(firstOffset: first, lastOffset: last, state: state, deliveryCount: count)
            }
        }
        if type == snapshotKeyVersion {
            let v = try ShareSnapshotValue(from: &valueBuffer, version: 0)
            return .snapshot(SharePartitionSnapshot(
                key: partitionKey, stateEpoch: v.stateEpoch, startOffset: v.startOffset,
                batches: batches(v.stateBatches.map { ($0.firstOffset, $0.lastOffset, $0.deliveryState, $0.deliveryCount) })))
        }
        let v = try ShareUpdateValue(from: &valueBuffer, version: 0)
        return .update(SharePartitionSnapshot(
            key: partitionKey, stateEpoch: 0, startOffset: v.startOffset,
            batches: batches(v.stateBatches.map { ($0.firstOffset, $0.lastOffset, $0.deliveryState, $0.deliveryCount) })))
    }

    /// Replays decoded records in log order into the last state per share-partition.
    public static func replay(_ records: [Decoded]) -> [SharePartitionSnapshot] {
        var states: [SharePartitionKey: SharePartitionSnapshot] = [:]
        for record in records {
            switch record {
            case .snapshot(let snapshot): states[snapshot.key] = snapshot
            case .deleted(let key): states[key] = nil
            case .update(let update):
                guard var state = states[update.key] else { continue }
                if update.startOffset >= 0 { state.startOffset = max(state.startOffset, update.startOffset) }
                // Later batches override earlier ones offset by offset.
                var byOffset: [Int64: SharePartition.StateBatch] = [:]
                for batch in state.batches + update.batches where batch.lastOffset - batch.firstOffset < SharePartition.maxRestoredWindow {
                    for offset in batch.firstOffset...batch.lastOffset where offset >= state.startOffset {
                        byOffset[offset] = .init(firstOffset: offset, lastOffset: offset, state: batch.state, deliveryCount: batch.deliveryCount)
                    }
                }
                state.batches = byOffset.keys.sorted().map { byOffset[$0]! }
                states[update.key] = state
            }
        }
        return Array(states.values)
    }
}
