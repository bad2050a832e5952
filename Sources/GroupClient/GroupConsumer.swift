import Foundation
public import KafkaWire
import NIOCore
public import WireClient

/// A classic-protocol consumer group member (protocol type `consumer`, assignor `range`) for one
/// topic, on the bootstrap broker (which must be the group coordinator); `petrel consume --group`.
/// What it does with fetched records is the caller's (`Deliver`); when to stop early too
/// (`shouldStop`, e.g. set by SIGINT/SIGTERM).
///
/// One task does everything in turn: fetch (long-poll ≤ 500 ms), heartbeat every ~3 s, commit
/// every ~5 s. A heartbeat or commit answered with REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION or
/// UNKNOWN_MEMBER_ID commits what it can and rejoins (eager protocol: positions are re-read from
/// the committed offsets after every assignment). At exit (max messages, timeout, SIGINT/SIGTERM,
/// error) it commits and sends LeaveGroup.
public struct GroupConsumer {
    public struct Options: Sendable {
        public var group: String
        public var topic: String
        /// Without a committed offset: start at the log start (else the log end), Kafka's
        /// `auto.offset.reset` earliest / latest.
        public var fromBeginning: Bool
        /// Stop after this many records.
        public var maxMessages: Int?
        /// Stop after this long without a record.
        public var timeoutMs: Int?
        public var sessionTimeoutMs: Int32 = 10_000
        public var rebalanceTimeoutMs: Int32 = 30_000
        public var heartbeatInterval: Duration = .seconds(3)
        public var commitInterval: Duration = .seconds(5)

        public init(group: String, topic: String, fromBeginning: Bool, maxMessages: Int? = nil, timeoutMs: Int? = nil) {
            self.group = group
            self.topic = topic
            self.fromBeginning = fromBeginning
            self.maxMessages = maxMessages
            self.timeoutMs = timeoutMs
        }
    }

    /// Consumes the records of one fetch response at or past `positions` (only partitions that have
    /// a position), advancing the positions past what it consumed and stopping after `limit`
    /// records; calls `partitionError` for a partition answered with an error (throw to stop).
    /// Returns the number of records consumed.
    public typealias Deliver = (
        _ response: FetchResponse, _ positions: inout [Int32: Int64], _ limit: Int?,
        _ partitionError: (_ partition: Int32, _ code: Int16, _ position: Int64) throws -> Void
    ) throws -> Int

    static let protocolType = "consumer"
    static let assignor = "range"

    let client: KafkaClient
    let options: Options
    let shouldStop: @Sendable () -> Bool
    let deliver: Deliver

    private(set) var memberId = ""
    private(set) var generationId: Int32 = -1
    /// Assigned partitions of `options.topic` and their fetch positions.
    private(set) var positions: [Int32: Int64] = [:]
    /// What this member last committed (so unchanged positions are not committed again).
    private var committed: [Int32: Int64] = [:]
    private var lastHeartbeat = ContinuousClock.now
    private var lastCommit = ContinuousClock.now
    private var inGroup = false

    public init(client: KafkaClient, options: Options, shouldStop: @escaping @Sendable () -> Bool = { false }, deliver: @escaping Deliver) {
        self.client = client
        self.options = options
        self.shouldStop = shouldStop
        self.deliver = deliver
    }

    private var connection: KafkaConnection { client.connection }
    private var stopRequested: Bool { shouldStop() }

    /// The member id the coordinator gave this member ("" before the first join).
    public var currentMemberId: String { memberId }
    /// The assigned partitions of the topic (after a join).
    public var assignedPartitions: [Int32] { positions.keys.sorted() }

    /// Joins, consumes until done, commits and leaves.
    public mutating func run() async throws {
        guard try await client.topic(options.topic) != nil else {
            throw ClientError(.invalidArgument, "topic \(options.topic) does not exist")
        }
        try await checkCoordinator()
        do {
            try await join()
            try await consume()
        } catch {
            // Best effort: keep what was printed, free the partitions for the others at once.
            if inGroup {
                _ = try? await commit()
                await leave()
            }
            throw error
        }
        if inGroup {
            try await commit()
            await leave()
        }
    }

    // MARK: - Coordinator

    /// FindCoordinator: the coordinator must be the broker we are connected to.
    private func checkCoordinator() async throws {
        let version = try connection.version(for: FindCoordinatorRequest.self)
        var request = FindCoordinatorRequest(key: "", keyType: 0, coordinatorKeys: [])
        if version >= 4 { request.coordinatorKeys = [options.group] } else { request.key = options.group }
        let deadline = ContinuousClock.now + .seconds(15)
        while true {
            let response = try await connection.send(request, version: version)
            let (code, message, nodeId, host, port): (Int16, String?, Int32, String, Int32)
            if version >= 4 {
                guard let entry = response.coordinators.first(where: { $0.key == options.group }) ?? response.coordinators.first else {
                    throw ClientError(.protocolViolation, "FindCoordinator response is empty")
                }
                (code, message, nodeId, host, port) = (entry.errorCode, entry.errorMessage, entry.nodeId, entry.host, entry.port)
            } else {
                (code, message, nodeId, host, port) = (response.errorCode, response.errorMessage, response.nodeId, response.host, response.port)
            }
            let error = KafkaErrorCode(rawValue: code)
            if (error == .coordinatorNotAvailable || error == .coordinatorLoadInProgress) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                continue
            }
            try ClientError.check(code, "find the coordinator of group \(options.group)", message: message)
            if host == connection.address.host && Int(port) == connection.address.port { return }
            // Advertised names may differ from the bootstrap spelling: accept the node id of a
            // single-broker cluster, which is necessarily the broker we talk to.
            let brokers = try await client.metadata(topics: []).brokers
            if brokers.count == 1, brokers[0].nodeId == nodeId { return }
            throw ClientError(
                .invalidArgument,
                "the coordinator of group \(options.group) is broker \(nodeId) at \(host):\(port), not the bootstrap broker \(connection.address); petrel consume --group talks to a single broker")
        }
    }

    // MARK: - Membership

    /// JoinGroup + SyncGroup (as leader, computing the range assignment) until this member has an
    /// assignment for the current generation; then positions from OffsetFetch.
    private mutating func join() async throws {
        let subscription = Self.encode(ConsumerProtocolSubscription(topics: [options.topic]), version: 0)
        let deadline = ContinuousClock.now + .milliseconds(Int(options.rebalanceTimeoutMs) + 30_000)
        var retries = 0
        func backoff() async throws {
            guard ContinuousClock.now < deadline else {
                throw ClientError(.timeout, "could not join group \(options.group) in time (last member id '\(memberId)')")
            }
            retries += 1
            try await Task.sleep(for: .milliseconds(min(1000, 50 * retries)))
        }
        inGroup = false
        while true {
            if stopRequested { return }
            let request = JoinGroupRequest(
                groupId: options.group, sessionTimeoutMs: options.sessionTimeoutMs, rebalanceTimeoutMs: options.rebalanceTimeoutMs,
                memberId: memberId, groupInstanceId: nil, protocolType: Self.protocolType,
                protocols: [.init(name: Self.assignor, metadata: subscription)], reason: nil
            )
            let joined = try await connection.send(request)
            switch KafkaErrorCode(rawValue: joined.errorCode) {
            case KafkaErrorCode(rawValue: 0):
                break
            case .memberIdRequired:
                // KIP-394: the broker hands out the id; join again with it.
                memberId = joined.memberId
                continue
            case .unknownMemberId:
                memberId = ""
                try await backoff()
                continue
            case .rebalanceInProgress, .coordinatorLoadInProgress, .coordinatorNotAvailable, .illegalGeneration:
                try await backoff()
                continue
            default:
                try ClientError.check(joined.errorCode, "join group \(options.group)")
            }
            memberId = joined.memberId
            generationId = joined.generationId
            if let name = joined.protocolName, !name.isEmpty, name != Self.assignor {
                throw ClientError(.protocolViolation, "group \(options.group) chose protocol \(name), but this member offered only \(Self.assignor)")
            }
            var assignments: [SyncGroupRequest.SyncGroupRequestAssignment] = []
            if joined.leader == memberId {
                assignments = try await leaderAssignments(joined.members)
            }
            let sync = try await connection.send(
                SyncGroupRequest(
                    groupId: options.group, generationId: generationId, memberId: memberId, groupInstanceId: nil,
                    protocolType: Self.protocolType, protocolName: Self.assignor, assignments: assignments
                ))
            switch KafkaErrorCode(rawValue: sync.errorCode) {
            case KafkaErrorCode(rawValue: 0):
                break
            case .unknownMemberId:
                memberId = ""
                try await backoff()
                continue
            case .rebalanceInProgress, .illegalGeneration, .coordinatorLoadInProgress, .coordinatorNotAvailable:
                try await backoff()
                continue
            default:
                try ClientError.check(sync.errorCode, "sync group \(options.group)")
            }
            let partitions = try Self.decodeAssignment(sync.assignment, topic: options.topic)
            inGroup = true
            lastHeartbeat = .now
            try await startPositions(partitions)
            lastCommit = .now
            return
        }
    }

    /// The leader's work: decode every member's subscription and range-assign the partitions.
    private func leaderAssignments(_ members: [JoinGroupResponse.JoinGroupResponseMember]) async throws -> [SyncGroupRequest.SyncGroupRequestAssignment] {
        var subscriptions: [String: [String]] = [:]
        for member in members {
            var bytes = member.metadata
            do {
                let version = try bytes.readWireInt16()
                guard version >= 0 else { throw WireError.malformed("negative consumer protocol version") }
                let decoded = try ConsumerProtocolSubscription(from: &bytes, version: min(version, ConsumerProtocolSubscription.highestSupportedVersion))
                subscriptions[member.memberId] = decoded.topics
            } catch {
                throw ClientError(.protocolViolation, "group \(options.group): cannot decode the subscription of member \(member.memberId): \(error)")
            }
        }
        let topics = Set(subscriptions.values.joined()).sorted()
        var partitions: [String: [Int32]] = [:]
        if !topics.isEmpty {
            for topic in try await client.metadata(topics: topics).topics where topic.errorCode == 0 {
                if let name = topic.name { partitions[name] = topic.partitions.map(\.partitionIndex) }
            }
        }
        let plan = Self.rangeAssign(subscriptions: subscriptions, partitions: partitions)
        return members.map { member in
            let owned = plan[member.memberId, default: [:]]
            let assignment = ConsumerProtocolAssignment(
                assignedPartitions: owned.keys.sorted().map { .init(topic: $0, partitions: owned[$0]!) }, userData: nil)
            return .init(memberId: member.memberId, assignment: Self.encode(assignment, version: 0))
        }
    }

    /// Kafka's RangeAssignor: per topic, the members subscribed to it sorted by member id each get
    /// a contiguous range of the sorted partitions; the first `count % members` get one extra.
    public static func rangeAssign(subscriptions: [String: [String]], partitions: [String: [Int32]]) -> [String: [String: [Int32]]] {
        var plan: [String: [String: [Int32]]] = [:]
        for member in subscriptions.keys { plan[member] = [:] }
        for (topic, topicPartitions) in partitions {
            let sorted = topicPartitions.sorted()
            let consumers = subscriptions.filter { $0.value.contains(topic) }.map(\.key).sorted()
            guard !consumers.isEmpty else { continue }
            let each = sorted.count / consumers.count
            let extra = sorted.count % consumers.count
            for (index, member) in consumers.enumerated() {
                let start = each * index + min(index, extra)
                let count = each + (index < extra ? 1 : 0)
                if count > 0 { plan[member]![topic] = Array(sorted[start..<start + count]) }
            }
        }
        return plan
    }

    /// This member's partitions of `topic` from a SyncGroup assignment (empty bytes: none).
    static func decodeAssignment(_ bytes: ByteBuffer, topic: String) throws(ClientError) -> [Int32] {
        guard bytes.readableBytes > 0 else { return [] }
        var buffer = bytes
        do {
            let version = try buffer.readWireInt16()
            guard version >= 0 else { throw WireError.malformed("negative consumer protocol version") }
            let assignment = try ConsumerProtocolAssignment(from: &buffer, version: min(version, ConsumerProtocolAssignment.highestSupportedVersion))
            return assignment.assignedPartitions.filter { $0.topic == topic }.flatMap(\.partitions).sorted()
        } catch {
            throw ClientError(.protocolViolation, "cannot decode the group assignment: \(error)")
        }
    }

    static func encode(_ message: some KafkaMessage, version: Int16) -> ByteBuffer {
        var writer = WireWriter(initialCapacity: 64)
        writer.buffer.writeWireInt16(version)
        do {
            try message.write(to: &writer, version: version)
        } catch {
            preconditionFailure("cannot encode \(type(of: message)): \(error)")
        }
        guard let buffer = writer.finishSingleBuffer() else { preconditionFailure("consumer protocol data has file chunks") }
        return buffer
    }

    // MARK: - Offsets

    /// Positions for a new assignment: the committed offset, else the log start (--from-beginning)
    /// or end (Kafka's auto.offset.reset = earliest / latest).
    private mutating func startPositions(_ partitions: [Int32]) async throws {
        positions = [:]
        committed = [:]
        guard !partitions.isEmpty else { return }
        let version = try connection.version(for: OffsetFetchRequest.self, cap: 7)
        let deadline = ContinuousClock.now + .seconds(30)
        var response: OffsetFetchResponse
        while true {
            response = try await connection.send(
                OffsetFetchRequest(groupId: options.group, topics: [.init(name: options.topic, partitionIndexes: partitions)], requireStable: true),
                version: version)
            let code = KafkaErrorCode(rawValue: response.errorCode)
            let partitionCodes = response.topics.flatMap(\.partitions).map { KafkaErrorCode(rawValue: $0.errorCode) }
            let retriable: Set<KafkaErrorCode> = [.unstableOffsetCommit, .coordinatorLoadInProgress]
            if (retriable.contains(code) || partitionCodes.contains(where: retriable.contains)) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                continue
            }
            try ClientError.check(response.errorCode, "fetch committed offsets of group \(options.group)")
            break
        }
        for topic in response.topics where topic.name == options.topic {
            for partition in topic.partitions where partitions.contains(partition.partitionIndex) {
                try ClientError.check(partition.errorCode, "fetch the committed offset of \(options.topic)-\(partition.partitionIndex) for group \(options.group)")
                if partition.committedOffset >= 0 {
                    positions[partition.partitionIndex] = partition.committedOffset
                    committed[partition.partitionIndex] = partition.committedOffset
                }
            }
        }
        let missing = partitions.filter { positions[$0] == nil }
        if !missing.isEmpty {
            try await reset(missing)
        }
    }

    /// auto.offset.reset for partitions without a (valid) position.
    private mutating func reset(_ partitions: [Int32]) async throws {
        let offsets = try await client.listOffsets(
            options.topic, partitions: partitions, timestamp: options.fromBeginning ? KafkaClient.earliest : KafkaClient.latest)
        for partition in partitions {
            guard let offset = offsets[partition] else {
                throw ClientError(.protocolViolation, "ListOffsets response does not mention \(options.topic)-\(partition)")
            }
            positions[partition] = offset
        }
    }

    /// Commits the positions that moved since the last commit.
    ///
    /// - Returns: false when the group is rebalancing or has fenced this member (a rejoin is due).
    @discardableResult
    private mutating func commit() async throws -> Bool {
        let changed = positions.filter { committed[$0.key] != $0.value }.sorted { $0.key < $1.key }
        lastCommit = .now
        guard !changed.isEmpty else { return true }
        let version = try connection.version(for: OffsetCommitRequest.self, cap: 8)
        let request = OffsetCommitRequest(
            groupId: options.group, generationIdOrMemberEpoch: generationId, memberId: memberId, groupInstanceId: nil,
            retentionTimeMs: -1,
            topics: [.init(name: options.topic, partitions: changed.map {
                .init(partitionIndex: $0.key, committedOffset: $0.value, committedLeaderEpoch: -1, commitTimestamp: -1, committedMetadata: "")
            })])
        let response = try await connection.send(request, version: version)
        var rejoin = false
        for topic in response.topics {
            for partition in topic.partitions {
                switch KafkaErrorCode(rawValue: partition.errorCode) {
                case KafkaErrorCode(rawValue: 0):
                    if let offset = positions[partition.partitionIndex] { committed[partition.partitionIndex] = offset }
                case .rebalanceInProgress, .illegalGeneration, .unknownMemberId:
                    rejoin = true
                default:
                    try ClientError.check(partition.errorCode, "commit the offset of \(options.topic)-\(partition.partitionIndex) for group \(options.group)")
                }
            }
        }
        return !rejoin
    }

    /// Heartbeat; false when a rejoin is due.
    private mutating func heartbeat() async throws -> Bool {
        lastHeartbeat = .now
        let response = try await connection.send(
            HeartbeatRequest(groupId: options.group, generationId: generationId, memberId: memberId, groupInstanceId: nil))
        switch KafkaErrorCode(rawValue: response.errorCode) {
        case KafkaErrorCode(rawValue: 0):
            return true
        case .rebalanceInProgress, .illegalGeneration:
            return false
        case .unknownMemberId:
            memberId = ""
            return false
        default:
            try ClientError.check(response.errorCode, "heartbeat to group \(options.group)")
            return true
        }
    }

    /// LeaveGroup (best effort: the session timeout removes the member anyway).
    private mutating func leave() async {
        guard inGroup, !memberId.isEmpty else { return }
        inGroup = false
        do {
            let version = try connection.version(for: LeaveGroupRequest.self)
            var request = LeaveGroupRequest(groupId: options.group)
            if version >= 3 {
                request.members = [.init(memberId: memberId, groupInstanceId: nil, reason: "petrel consume exiting")]
            } else {
                request.memberId = memberId
            }
            _ = try await connection.send(request, version: version)
        } catch {
            FileHandle.standardError.write(Data("warning: leave group \(options.group): \(error)\n".utf8))
        }
    }

    // MARK: - Fetch loop

    private mutating func consume() async throws {
        var printed = 0
        var lastProgress = ContinuousClock.now
        let maxWait = Int32(min(500, options.timeoutMs ?? 500))
        while !stopRequested {
            if ContinuousClock.now - lastHeartbeat >= options.heartbeatInterval {
                if try await !heartbeat() {
                    try await rejoin()
                    continue
                }
            }
            if ContinuousClock.now - lastCommit >= options.commitInterval {
                if try await !commit() {
                    try await rejoin()
                    continue
                }
            }
            if positions.isEmpty {
                // No partitions for this member (more members than partitions): stay in the group.
                try await Task.sleep(for: .milliseconds(Int(maxWait)))
            } else {
                let partitions = positions.keys.sorted().map { ($0, positions[$0]!) }
                let response = try await client.fetch(topic: options.topic, partitions: partitions, maxWaitMs: maxWait)
                var outOfRange: [Int32] = []
                let topic = options.topic
                let delivered = try deliver(response, &positions, options.maxMessages.map { $0 - printed }) { partition, code, position in
                    if KafkaErrorCode(rawValue: code) == .offsetOutOfRange {
                        outOfRange.append(partition)
                    } else {
                        try ClientError.check(code, "fetch from \(topic)-\(partition) at offset \(position)")
                    }
                }
                printed += delivered
                if !outOfRange.isEmpty { try await reset(outOfRange) }
                if delivered > 0 { lastProgress = .now }
                if let maxMessages = options.maxMessages, printed >= maxMessages { return }
            }
            if let timeoutMs = options.timeoutMs, ContinuousClock.now - lastProgress >= .milliseconds(timeoutMs) { return }
        }
    }

    /// Eager rebalance: commit what was consumed (accepted while the group prepares to rebalance),
    /// then join again and restart from the committed offsets of the new assignment.
    private mutating func rejoin() async throws {
        if !memberId.isEmpty { _ = try? await commit() }
        try await join()
    }
}
