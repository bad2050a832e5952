import KafkaWire
import Logging
import NIOCore

/// What changed in a consumer-protocol group since its records were last written.
enum ConsumerGroupChanges: Sendable {
    /// Anything: every record of the group is compared.
    case all
    /// Only these members (plus the group-level records; a changed group-level record widens the
    /// comparison to every member).
    case members(Set<String>)
}

/// KIP-848 membership persistence, as Kafka's group coordinator does it: the group epoch
/// (`ConsumerGroupMetadata`), the subscribed topics (`ConsumerGroupPartitionMetadata`), each
/// member's subscription (`ConsumerGroupMemberMetadata`), the target assignment
/// (`ConsumerGroupTargetAssignmentMetadata` + `...Member`) and each member's current assignment
/// (`ConsumerGroupCurrentMemberAssignment`) go to `__consumer_offsets` when they change;
/// tombstones when a member leaves or the group goes away. Replay (`load(_:)`) rebuilds the
/// groups, so members continue with their epochs and assignments after a restart, and their
/// session timeouts start over at load.
///
/// Changes are found by comparing each record's encoded value with the one last written (kept per
/// group in `consumerRecordImages`), so every mutation path only marks its group as changed.
extension GroupCoordinator {
    /// Records that `groupId`'s consumer state changed (call under the lock). `member` nil = the
    /// whole group.
    func markConsumerGroupChanged(_ groupId: String, member: String? = nil) {
        guard let member else {
            dirtyConsumerGroups[groupId] = .all
            return
        }
        switch dirtyConsumerGroups[groupId] {
        case .all?: break
        case .members(var members)?:
            members.insert(member)
            dirtyConsumerGroups[groupId] = .members(members)
        case nil:
            dirtyConsumerGroups[groupId] = .members([member])
        }
    }

    /// Writes the records of every changed group, and tombstones for groups that stopped being
    /// consumer-protocol groups (converted to classic: marked where that happens; deleted or
    /// expired: found when the number of groups changed). Runs at the end of every locked section.
    func flushConsumerRecordsLocked() {
        if groups.count != consumerScanGroupCount {
            consumerScanGroupCount = groups.count
            for groupId in consumerRecordImages.keys where groups[groupId]?.consumer == nil && dirtyConsumerGroups[groupId] == nil {
                dirtyConsumerGroups[groupId] = .all
            }
        }
        guard !dirtyConsumerGroups.isEmpty else { return }
        var records: [CoordinatorRecord] = []
        var written: [String] = []
        for groupId in dirtyConsumerGroups.keys.sorted() {
            let groupRecords = consumerRecordsLocked(for: groupId)
            if !groupRecords.isEmpty {
                records += groupRecords
                written.append(groupId)
            }
        }
        guard !records.isEmpty else { return }
        let writtenGroups = written
        persist(records) { [weak self] ok in self?.consumerRecordsWritten(ok, groups: writtenGroups) }
    }

    /// After a failed write the group's records are rewritten in full at its next change.
    func consumerRecordsWritten(_ ok: Bool, groups groupIds: [String]) {
        guard !ok else { return }
        for groupId in groupIds where consumerRecordImages[groupId] != nil {
            consumerRecordImages[groupId] = [:]
        }
        logger.warning("could not write consumer group records", metadata: ["groups": "\(groupIds)"])
    }

    /// The records that bring `groupId`'s stored state up to date (call under the lock); clears
    /// its change mark and updates its image as if they were written.
    func consumerRecordsLocked(for groupId: String) -> [CoordinatorRecord] {
        guard let changes = dirtyConsumerGroups.removeValue(forKey: groupId) else { return [] }
        let old = consumerRecordImages[groupId] ?? [:]
        guard let state = groups[groupId]?.consumer else {
            consumerRecordImages[groupId] = nil
            return old.keys.sorted(by: Self.tombstoneOrder).map { slot in
                .consumerGroup(ConsumerGroupRecordKey(kind: slot.kind, groupId: groupId, memberId: slot.memberId), value: nil)
            }
        }
        var scope: Set<String>?
        if case .members(let members) = changes { scope = members }
        var current = ConsumerGroupCodec.image(of: state, members: scope)
        if scope != nil,
           [ConsumerRecordSlot.metadata, .partitionMetadata, .targetAssignmentMetadata].contains(where: { current[$0] != old[$0] }) {
            scope = nil
            current = ConsumerGroupCodec.image(of: state)
        }
        var image = old
        var records: [CoordinatorRecord] = []
        for slot in old.keys.sorted(by: Self.tombstoneOrder) where current[slot] == nil {
            guard scope.map({ $0.contains(slot.memberId) }) ?? true else { continue }
            image[slot] = nil
            records.append(.consumerGroup(ConsumerGroupRecordKey(kind: slot.kind, groupId: groupId, memberId: slot.memberId), value: nil))
        }
        for (slot, value) in current.sorted(by: { Self.writeOrder($0.key, $1.key) }) where old[slot] != value {
            image[slot] = value
            records.append(.consumerGroup(ConsumerGroupRecordKey(kind: slot.kind, groupId: groupId, memberId: slot.memberId), value: value))
        }
        consumerRecordImages[groupId] = image
        return records
    }

    /// Kafka's write order: member subscriptions, group epoch, topics, target assignment, then
    /// current assignments.
    private static func writeOrder(_ a: ConsumerRecordSlot, _ b: ConsumerRecordSlot) -> Bool {
        func rank(_ kind: ConsumerGroupRecordKey.Kind) -> Int {
            switch kind {
            case .memberMetadata: return 0
            case .metadata: return 1
            case .partitionMetadata: return 2
            case .targetAssignmentMember: return 3
            case .targetAssignmentMetadata: return 4
            case .currentMemberAssignment: return 5
            }
        }
        return (rank(a.kind), a.memberId) < (rank(b.kind), b.memberId)
    }

    /// Kafka's removal order: current assignment, target, subscription; the group records last.
    private static func tombstoneOrder(_ a: ConsumerRecordSlot, _ b: ConsumerRecordSlot) -> Bool {
        func rank(_ kind: ConsumerGroupRecordKey.Kind) -> Int {
            switch kind {
            case .currentMemberAssignment: return 0
            case .targetAssignmentMember: return 1
            case .memberMetadata: return 2
            case .targetAssignmentMetadata: return 3
            case .partitionMetadata: return 4
            case .metadata: return 5
            }
        }
        return (rank(a.kind), a.memberId) < (rank(b.kind), b.memberId)
    }

    // MARK: Load

    /// Attaches the replayed consumer state to the loaded groups (call under the lock from
    /// `load(_:)`): members keep their ids, epochs and assignments, and their session timeouts
    /// (and pending revocation timeouts) start at load. Returns the number of groups restored.
    func restoreConsumerGroupsLocked(_ images: [String: [ConsumerRecordSlot: ByteBuffer]]) -> Int {
        var restored = 0
        consumerRecordImages = images
        dirtyConsumerGroups = [:]
        for (groupId, image) in images.sorted(by: { $0.key < $1.key }) {
            let state: ConsumerGroupState
            do {
                guard let decoded = try ConsumerGroupCodec.restore(image) else { continue }
                state = decoded
            } catch {
                logger.warning("skipping undecodable consumer group records", metadata: ["group": "\(groupId)", "error": "\(error)"])
                continue
            }
            // `load` skipped any classic metadata of the group (left from before a conversion).
            let group = groups[groupId] ?? ClassicGroup(groupId: groupId)
            group.protocolType = Self.consumerGroupType
            group.consumer = state
            group.stateTimestampMs = clock.nowMilliseconds()
            state.assignorName = selectAssignor(state).rawValue
            groups[groupId] = group
            for member in state.members.values {
                scheduleConsumerSessionExpiry(group, state, member)
                if member.state == .unrevokedPartitions { scheduleRevocationTimeout(group, state, member) }
            }
            restored += 1
        }
        return restored
    }
}
