import KafkaWire
public import Logging
import NIOCore
import SeededRandom
import Synchronization

/// Kafka's classic group coordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup, committed offsets,
/// group admin) as a sans-IO state machine. Time comes from `clock`, timers from `scheduler`, and
/// durability from `store`, which appends `CoordinatorRecord`s to `__consumer_offsets`; at startup
/// the broker replays that topic through `load(_:)`.
///
/// Thread safety: all state sits behind one lock. Responses and `store.persist` calls are queued
/// while the lock is held and run after it is released, in the order they were queued, so
/// completions may re-enter the coordinator and records reach the store in mutation order.
public final class GroupCoordinator: @unchecked Sendable {
    let configuration: GroupCoordinatorConfiguration
    let clock: any CoordinatorClock
    let scheduler: any CoordinatorScheduler
    let store: any GroupStore
    let logger: Logger

    private let mutex = Mutex(())

    // Everything below is guarded by `mutex`.
    var groups: [String: ClassicGroup] = [:]
    /// While true, group requests answer COORDINATOR_LOAD_IN_PROGRESS.
    var isLoading = false
    private var outbox: [Effect] = []
    private var outboxHead = 0
    private var draining = false
    private var tokenCounter: UInt64 = 0
    private var random: SplitMix64
    var retentionTimer: (any CancellableTimer)?
    /// Topic names, ids and partition counts for consumer-protocol (KIP-848) groups.
    var topicMetadata: (any GroupTopicMetadata)?
    /// Offsets committed in open transactions: producer id → group → partition (GroupCoordinator+Transactions).
    var pendingTransactionalOffsets: [Int64: [String: [GroupTopicPartition: CommittedOffset]]] = [:]
    /// KIP-848 groups: the record values last written per group, and what changed since
    /// (GroupCoordinator+ConsumerPersistence).
    var consumerRecordImages: [String: [ConsumerRecordSlot: ByteBuffer]] = [:]
    var dirtyConsumerGroups: [String: ConsumerGroupChanges] = [:]
    /// `groups.count` when deleted consumer groups were last looked for.
    var consumerScanGroupCount = 0

    enum Effect: Sendable {
        case persist([CoordinatorRecord], @Sendable (Bool) -> Void)
        case run(@Sendable () -> Void)
    }

    /// - Parameters:
    ///   - configuration: Kafka `group.*` / `offsets.*` settings; must pass `validate()`.
    ///   - clock: wall clock for timestamps.
    ///   - scheduler: runs session, rebalance and retention timers.
    ///   - store: appends records to `__consumer_offsets`.
    ///   - logger: diagnostics.
    ///   - randomSeed: seeds member-id generation (tests); nil = from the system generator.
    public init(
        configuration: GroupCoordinatorConfiguration = GroupCoordinatorConfiguration(),
        clock: any CoordinatorClock,
        scheduler: any CoordinatorScheduler,
        store: any GroupStore,
        logger: Logger = Logger(label: "petrel.groups"),
        randomSeed: UInt64? = nil
    ) {
        precondition((try? configuration.validate()) != nil, "invalid group coordinator configuration")
        self.configuration = configuration
        self.clock = clock
        self.scheduler = scheduler
        self.store = store
        self.logger = logger
        var system = SystemRandomNumberGenerator()
        self.random = SplitMix64(seed: randomSeed ?? system.next())
        if configuration.offsetsRetentionCheckIntervalMs > 0 {
            withState { scheduleRetentionCheck() }
        }
    }

    deinit {
        retentionTimer?.cancel()
    }

    /// Cancels every timer (offset retention, sessions, rebalances) while the scheduler's event
    /// loop still runs; call before shutting the loops down. Parked requests are not answered.
    public func shutdown() {
        withState {
            retentionTimer?.cancel()
            retentionTimer = nil
            for group in groups.values {
                group.rebalanceTimer?.cancel()
                group.rebalanceTimer = nil
                group.pendingSyncTimer?.cancel()
                group.pendingSyncTimer = nil
                for timer in group.pendingMembers.values { timer.cancel() }
                for member in group.orderedMembers {
                    member.sessionTimer?.cancel()
                    member.sessionTimer = nil
                }
                for member in group.consumer.map({ Array($0.members.values) }) ?? [] { member.cancelTimers() }
            }
        }
    }

    /// Where consumer-protocol groups look up topics (the broker's topic registry); without it
    /// every subscribed topic counts as missing.
    public func setTopicMetadata(_ metadata: any GroupTopicMetadata) {
        withState { topicMetadata = metadata }
    }

    /// Makes group requests answer COORDINATOR_LOAD_IN_PROGRESS until `load(_:)` finishes; call it
    /// before serving requests if `__consumer_offsets` is replayed after the listener is up.
    public func beginLoading() {
        withState { isLoading = true }
    }

    // MARK: Lock and effects

    /// Runs `body` under the lock, then carries out the effects it queued.
    func withState(_ body: () -> Void) {
        mutex.withLock { _ in
            body()
            flushConsumerRecordsLocked()
        }
        drainOutbox()
    }

    /// Queues a response callback (under the lock).
    func respond(_ body: @escaping @Sendable () -> Void) {
        outbox.append(.run(body))
    }

    /// Queues records for the store (under the lock); `then` runs under the lock with the outcome.
    func persist(_ records: [CoordinatorRecord], then: @escaping @Sendable (Bool) -> Void) {
        outbox.append(.persist(records) { [weak self] ok in
            guard let self else { return }
            self.withState { then(ok) }
        })
    }

    /// Schedules `body` to run under the lock (call under the lock).
    func scheduleLocked(after ms: Int64, _ body: @escaping @Sendable () -> Void) -> any CancellableTimer {
        scheduler.schedule(after: max(ms, 0)) { [weak self] in
            guard let self else { return }
            self.withState { body() }
        }
    }

    func nextToken() -> UInt64 {
        tokenCounter += 1
        return tokenCounter
    }

    private func drainOutbox() {
        var shouldDrain = false
        mutex.withLock { _ in
            if !draining && outboxHead < outbox.count {
                draining = true
                shouldDrain = true
            }
        }
        guard shouldDrain else { return }
        while true {
            var next: Effect?
            mutex.withLock { _ in
                if outboxHead < outbox.count {
                    next = outbox[outboxHead]
                    outboxHead += 1
                } else {
                    outbox.removeAll(keepingCapacity: true)
                    outboxHead = 0
                    draining = false
                }
            }
            guard let effect = next else { return }
            switch effect {
            case .persist(let records, let completion):
                store.persist(records, completion: completion)
            case .run(let body):
                body()
            }
        }
    }

    // MARK: Helpers

    /// `<prefix>-<uuid v4>`, as Kafka builds member ids.
    func makeMemberId(prefix: String) -> String {
        let high = random.next()
        let low = random.next()
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * i))
            bytes[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * i))
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = bytes.map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
        }
        let uuid = hex[0..<4].joined() + "-" + hex[4..<6].joined() + "-" + hex[6..<8].joined() + "-"
            + hex[8..<10].joined() + "-" + hex[10..<16].joined()
        return prefix + "-" + uuid
    }

    func transition(_ group: ClassicGroup, to state: GroupState) {
        group.state = state
        group.stateTimestampMs = clock.nowMilliseconds()
    }

    /// Drops a group object that holds nothing (never persisted, so no tombstone is needed).
    func removeIfVacant(_ group: ClassicGroup) {
        if group.isVacant, group.generationId == 0, groups[group.groupId] === group {
            groups[group.groupId] = nil
        }
    }

    /// Kafka `validateCurrentMember`: the instance id, if given, must map to `memberId`
    /// (else FENCED_INSTANCE_ID), and the member must exist (else UNKNOWN_MEMBER_ID).
    func validateCurrentMember(_ group: ClassicGroup, memberId: String, groupInstanceId: String?) -> KafkaErrorCode? {
        if let groupInstanceId {
            guard let current = group.staticMembers[groupInstanceId] else { return .unknownMemberId }
            return current == memberId ? nil : .fencedInstanceId
        }
        return group.members[memberId] == nil ? .unknownMemberId : nil
    }

    /// The group-metadata record for `group`, with `assignments` overriding members' current ones.
    func groupMetadataRecord(_ group: ClassicGroup, assignments: [String: ByteBuffer]? = nil) -> CoordinatorRecord {
        let value = GroupMetadataValue(
            protocolType: group.protocolType ?? "",
            generation: group.generationId,
            protocol: group.protocolName,
            leader: group.leaderId,
            currentStateTimestamp: group.stateTimestampMs ?? -1,
            members: group.orderedMembers.map { member in
                GroupMetadataValue.MemberMetadata(
                    memberId: member.memberId,
                    groupInstanceId: member.groupInstanceId,
                    clientId: member.clientId,
                    clientHost: member.clientHost,
                    rebalanceTimeout: member.rebalanceTimeoutMs,
                    sessionTimeout: member.sessionTimeoutMs,
                    subscription: member.metadata(for: group.protocolName) ?? ByteBuffer(),
                    assignment: assignments.map { $0[member.memberId] ?? ByteBuffer() } ?? member.assignment
                )
            }
        )
        return .groupMetadata(group: group.groupId, value: value)
    }

    /// Decodes consumer-protocol subscription metadata (`int16 version` + struct); newer versions
    /// are read as the newest known one, as Kafka's `ConsumerProtocol` does.
    static func decodeSubscription(_ metadata: ByteBuffer) throws(WireError) -> ConsumerProtocolSubscription {
        var buffer = metadata
        let version = try buffer.readWireInt16()
        guard version >= 0 else { throw .malformed("negative consumer protocol version") }
        return try ConsumerProtocolSubscription(
            from: &buffer, version: min(version, ConsumerProtocolSubscription.highestSupportedVersion))
    }
}
