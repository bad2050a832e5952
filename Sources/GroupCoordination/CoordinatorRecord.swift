public import KafkaWire
public import NIOCore

/// One record for the compacted topic `__consumer_offsets`, in Kafka's formats: key = `int16 version`
/// + `OffsetCommitKey` (version 1) or `GroupMetadataKey` (version 2); value = `int16 version` +
/// `OffsetCommitValue` (version 3, or 1 when it carries an expire timestamp) or `GroupMetadataValue`
/// (version 3), as Kafka 3.9 writes them, and the KIP-848 consumer-group records (key versions 3-8,
/// `ConsumerGroupRecords.swift`). A nil value is a tombstone.
public struct CoordinatorRecord: Sendable, Equatable {
    /// The group the record belongs to; the broker picks the `__consumer_offsets` partition from it
    /// (`CoordinatorRecord.offsetsPartition(for:partitionCount:)`).
    public var groupId: String
    public var key: ByteBuffer
    public var value: ByteBuffer?

    public init(groupId: String, key: ByteBuffer, value: ByteBuffer?) {
        self.groupId = groupId
        self.key = key
        self.value = value
    }

    /// Key version Kafka writes for committed offsets.
    public static let offsetCommitKeyVersion: Int16 = 1
    /// Key version Kafka writes for group metadata.
    public static let groupMetadataKeyVersion: Int16 = 2
    /// Value version Kafka 3.9 writes for committed offsets without an expire timestamp.
    public static let offsetCommitValueVersion: Int16 = 3
    /// Value version Kafka writes for committed offsets with an explicit expire timestamp.
    public static let offsetCommitValueVersionWithExpiry: Int16 = 1
    /// Value version Kafka 3.9 writes for group metadata.
    public static let groupMetadataValueVersion: Int16 = 3

    /// The `__consumer_offsets` partition of a group: `abs(javaHashCode(groupId)) % partitionCount`,
    /// with Kafka's `Utils.abs` (INT32_MIN maps to 0).
    public static func offsetsPartition(for groupId: String, partitionCount: Int32) -> Int32 {
        precondition(partitionCount > 0, "partition count must be positive")
        var hash: Int32 = 0
        for unit in groupId.utf16 {
            hash = hash &* 31 &+ Int32(unit)
        }
        let positive = hash == .min ? 0 : abs(hash)
        return positive % partitionCount
    }

    // MARK: Encoding

    /// A committed-offset record.
    public static func offsetCommit(group: String, topic: String, partition: Int32, value: OffsetCommitValue?) -> CoordinatorRecord {
        let key = encode(OffsetCommitKey(group: group, topic: topic, partition: partition), version: offsetCommitKeyVersion)
        let encodedValue = value.map { value in
            encode(value, version: value.expireTimestamp >= 0 ? offsetCommitValueVersionWithExpiry : offsetCommitValueVersion)
        }
        return CoordinatorRecord(groupId: group, key: key, value: encodedValue)
    }

    /// A group-metadata record (nil value = the group was deleted).
    public static func groupMetadata(group: String, value: GroupMetadataValue?) -> CoordinatorRecord {
        let key = encode(GroupMetadataKey(group: group), version: groupMetadataKeyVersion)
        return CoordinatorRecord(groupId: group, key: key, value: value.map { encode($0, version: groupMetadataValueVersion) })
    }

    static func encode(_ message: some KafkaMessage, version: Int16) -> ByteBuffer {
        var writer = WireWriter(initialCapacity: 64)
        writer.buffer.writeWireInt16(version)
        do {
            try message.write(to: &writer, version: version)
        } catch {
            // Only strings longer than Int16.max can fail here, and group ids / topics / metadata are
            // bounded before they reach a record.
            preconditionFailure("cannot encode coordinator record: \(error)")
        }
        guard let buffer = writer.finishSingleBuffer() else { preconditionFailure("coordinator record has file chunks") }
        return buffer
    }

    // MARK: Decoding

    /// A decoded record key.
    public enum Key: Sendable, Equatable {
        case offsetCommit(OffsetCommitKey)
        case groupMetadata(GroupMetadataKey)
        /// A KIP-848 consumer-group record (key versions 3-8, `ConsumerGroupRecords.swift`).
        case consumerGroup(ConsumerGroupRecordKey)
        /// A key version this coordinator does not use; skipped on load.
        case other(version: Int16)
    }

    /// Decodes a record key.
    /// - Throws: `WireError` for truncated or malformed keys.
    public static func decodeKey(_ key: ByteBuffer) throws(WireError) -> Key {
        var buffer = key
        let version = try buffer.readWireInt16()
        switch version {
        case 0, 1:
            return .offsetCommit(try OffsetCommitKey(from: &buffer, version: version))
        case 2:
            return .groupMetadata(try GroupMetadataKey(from: &buffer, version: version))
        case ConsumerGroupRecordKey.Kind.metadata.rawValue...ConsumerGroupRecordKey.Kind.currentMemberAssignment.rawValue:
            return .consumerGroup(try ConsumerGroupRecordKey(from: &buffer, version: version))
        default:
            return .other(version: version)
        }
    }

    /// Decodes an `int16 version` + `OffsetCommitValue` record value.
    /// - Throws: `WireError` for truncated or malformed values and unknown versions.
    public static func decodeOffsetCommitValue(_ value: ByteBuffer) throws(WireError) -> OffsetCommitValue {
        var buffer = value
        let version = try buffer.readWireInt16()
        return try OffsetCommitValue(from: &buffer, version: version)
    }

    /// Decodes an `int16 version` + `GroupMetadataValue` record value.
    /// - Throws: `WireError` for truncated or malformed values and unknown versions.
    public static func decodeGroupMetadataValue(_ value: ByteBuffer) throws(WireError) -> GroupMetadataValue {
        var buffer = value
        let version = try buffer.readWireInt16()
        return try GroupMetadataValue(from: &buffer, version: version)
    }
}
