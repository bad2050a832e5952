public import KafkaWire
import Logging
import NIOCore

/// What a JoinGroup answers; turned into a `JoinGroupResponse` for the request's version.
struct JoinResult {
    var error: KafkaErrorCode = .none
    var memberId: String
    var generationId: Int32 = -1
    var protocolType: String?
    var protocolName: String?
    var leaderId: String = ""
    var members: [JoinGroupResponse.JoinGroupResponseMember] = []

    func response(version: Int16) -> JoinGroupResponse {
        JoinGroupResponse(
            errorCode: error.rawValue,
            generationId: generationId,
            protocolType: version >= 7 ? protocolType : nil,
            // Non-nullable before v7.
            protocolName: version >= 7 ? protocolName : (protocolName ?? ""),
            leader: leaderId,
            memberId: memberId,
            members: members
        )
    }
}

extension GroupCoordinator {
    // MARK: JoinGroup

    /// JoinGroup (v0-9). Parks until the rebalance completes; v4+ unknown members first get
    /// MEMBER_ID_REQUIRED with their id, v0-3 join directly.
    /// - Parameters:
    ///   - request: the decoded request.
    ///   - version: its API version.
    ///   - client: the connection's client id and host, recorded on the member.
    ///   - completion: called once, possibly much later, possibly on another thread.
    public func handleJoinGroup(
        _ request: JoinGroupRequest, version: Int16, client: GroupClientInfo = GroupClientInfo(),
        completion: @escaping @Sendable (JoinGroupResponse) -> Void
    ) {
        withState {
            let waiter = JoinWaiter(version: version, completion: completion)
            func fail(_ error: KafkaErrorCode, memberId: String = request.memberId) {
                complete(waiter, JoinResult(error: error, memberId: memberId))
            }
            if isLoading { return fail(.coordinatorLoadInProgress) }
            guard !request.groupId.isEmpty else { return fail(.invalidGroupId) }
            guard (configuration.minSessionTimeoutMs...configuration.maxSessionTimeoutMs).contains(request.sessionTimeoutMs) else {
                return fail(.invalidSessionTimeout)
            }
            let isUnknownMember = request.memberId.isEmpty
            let group: ClassicGroup
            if let existing = groups[request.groupId] {
                if let consumer = existing.consumer {
                    // A consumer-protocol (KIP-848) group: classic members join it as hosted
                    // members while it has members, and take it over once it is empty.
                    if !consumer.members.isEmpty {
                        return complete(waiter, classicJoinInConsumerGroup(existing, consumer, request, client: client))
                    }
                    existing.consumer = nil
                    markConsumerGroupChanged(request.groupId)
                    existing.protocolType = nil
                    existing.protocolName = nil
                }
                group = existing
            } else {
                guard isUnknownMember else { return fail(.unknownMemberId) }
                group = ClassicGroup(groupId: request.groupId)
                groups[request.groupId] = group
            }
            if let maxGroupSize = configuration.maxGroupSize,
               group.members[request.memberId] == nil, group.pendingMembers[request.memberId] == nil,
               group.members.count + group.pendingMembers.count >= maxGroupSize {
                fail(.groupMaxSizeReached)
                removeIfVacant(group)
                return
            }
            let join = JoinRequest(request: request, version: version, client: client, waiter: waiter)
            if isUnknownMember {
                newMemberJoin(group, join)
            } else {
                currentMemberJoin(group, join)
            }
            if group.state == .preparingRebalance {
                tryCompleteJoin(group)
            }
            removeIfVacant(group)
        }
    }

    struct JoinRequest {
        let request: JoinGroupRequest
        let version: Int16
        let client: GroupClientInfo
        let waiter: JoinWaiter

        var protocols: [MemberProtocol] { request.protocols.map { MemberProtocol(name: $0.name, metadata: $0.metadata) } }
        /// v0 has no rebalance timeout; Kafka uses the session timeout.
        var rebalanceTimeoutMs: Int32 { version == 0 ? request.sessionTimeoutMs : request.rebalanceTimeoutMs }
        var groupInstanceId: String? { version >= 5 ? request.groupInstanceId : nil }
    }

    private func newMemberJoin(_ group: ClassicGroup, _ join: JoinRequest) {
        guard group.state != .dead else {
            return complete(join.waiter, JoinResult(error: .coordinatorNotAvailable, memberId: ""))
        }
        guard group.supportsProtocols(type: join.request.protocolType, names: join.request.protocols.map(\.name)) else {
            return complete(join.waiter, JoinResult(error: .inconsistentGroupProtocol, memberId: ""))
        }
        let newMemberId = makeMemberId(prefix: join.groupInstanceId ?? join.client.clientId)
        if let instanceId = join.groupInstanceId {
            if let oldMemberId = group.staticMembers[instanceId], let member = group.members[oldMemberId] {
                replaceStaticMember(group, member, newMemberId: newMemberId, join)
            } else {
                addMemberAndRebalance(group, memberId: newMemberId, join)
            }
        } else if join.version >= 4 {
            // KIP-394: hand out the id and wait for the member to rejoin with it.
            // Member ids are unique, so a timer can only ever find its own pending entry.
            group.pendingMembers[newMemberId] = scheduleLocked(after: Int64(join.request.sessionTimeoutMs)) { [weak self] in
                self?.expirePendingMember(group, memberId: newMemberId)
            }
            logger.debug("member id required", metadata: ["group": "\(group.groupId)", "member": "\(newMemberId)"])
            complete(join.waiter, JoinResult(error: .memberIdRequired, memberId: newMemberId))
        } else {
            addMemberAndRebalance(group, memberId: newMemberId, join)
        }
    }

    private func currentMemberJoin(_ group: ClassicGroup, _ join: JoinRequest) {
        let memberId = join.request.memberId
        guard group.state != .dead else {
            return complete(join.waiter, JoinResult(error: .coordinatorNotAvailable, memberId: memberId))
        }
        guard group.supportsProtocols(type: join.request.protocolType, names: join.request.protocols.map(\.name)) else {
            return complete(join.waiter, JoinResult(error: .inconsistentGroupProtocol, memberId: memberId))
        }
        if group.pendingMembers[memberId] != nil {
            guard join.groupInstanceId == nil else {
                return complete(join.waiter, JoinResult(error: .unknownMemberId, memberId: memberId))
            }
            return addMemberAndRebalance(group, memberId: memberId, join)
        }
        if let error = validateCurrentMember(group, memberId: memberId, groupInstanceId: join.groupInstanceId) {
            return complete(join.waiter, JoinResult(error: error, memberId: memberId))
        }
        guard let member = group.members[memberId] else { preconditionFailure("validated member missing") }
        switch group.state {
        case .preparingRebalance:
            updateMemberAndRebalance(group, member, join)
        case .completingRebalance:
            if member.matches(join.protocols) {
                // A retried JoinGroup: answer with the current generation.
                scheduleSessionExpiry(group, member)
                complete(join.waiter, currentJoinResult(group, for: member, includeMembers: group.isLeader(memberId)))
            } else {
                updateMemberAndRebalance(group, member, join)
            }
        case .stable:
            if group.isLeader(memberId) || !member.matches(join.protocols) {
                updateMemberAndRebalance(group, member, join)
            } else {
                scheduleSessionExpiry(group, member)
                complete(join.waiter, currentJoinResult(group, for: member, includeMembers: false))
            }
        case .empty, .dead:
            complete(join.waiter, JoinResult(error: .unknownMemberId, memberId: memberId))
        }
    }

    private func addMemberAndRebalance(_ group: ClassicGroup, memberId: String, _ join: JoinRequest) {
        let member = GroupMember(
            memberId: memberId,
            groupInstanceId: join.groupInstanceId,
            clientId: join.client.clientId,
            clientHost: join.client.clientHost,
            rebalanceTimeoutMs: join.rebalanceTimeoutMs,
            sessionTimeoutMs: join.request.sessionTimeoutMs,
            protocolType: join.request.protocolType,
            protocols: join.protocols
        )
        member.isNew = true
        member.joinWaiter = join.waiter
        if group.state == .preparingRebalance, group.initialDelayRemainingMs != nil {
            group.newMemberAdded = true
        }
        group.add(member)
        // New members cannot heartbeat while parked in JoinGroup; bound how long they may wait.
        scheduleSessionExpiry(group, member, timeoutMs: configuration.newMemberJoinTimeoutMs)
        logger.info("member joined", metadata: ["group": "\(group.groupId)", "member": "\(memberId)"])
        maybePrepareRebalance(group, reason: "member \(memberId) joined")
    }

    private func updateMemberAndRebalance(_ group: ClassicGroup, _ member: GroupMember, _ join: JoinRequest) {
        member.protocols = join.protocols
        member.rebalanceTimeoutMs = join.rebalanceTimeoutMs
        member.sessionTimeoutMs = join.request.sessionTimeoutMs
        member.clientId = join.client.clientId
        member.clientHost = join.client.clientHost
        setJoinWaiter(member, join.waiter)
        maybePrepareRebalance(group, reason: "member \(member.memberId) rejoined")
    }

    /// A duplicate JoinGroup replaces the parked one, which is told to retry.
    private func setJoinWaiter(_ member: GroupMember, _ waiter: JoinWaiter) {
        if let old = member.joinWaiter {
            complete(old, JoinResult(error: .rebalanceInProgress, memberId: member.memberId))
        }
        member.joinWaiter = waiter
    }

    /// KIP-345: a known `group.instance.id` rejoined with an empty member id. The old member id is
    /// fenced; in a Stable group whose selected protocol stays the same there is no rebalance.
    private func replaceStaticMember(_ group: ClassicGroup, _ member: GroupMember, newMemberId: String, _ join: JoinRequest) {
        let oldMemberId = member.memberId
        let oldProtocols = member.protocols
        let oldRebalanceTimeoutMs = member.rebalanceTimeoutMs
        let oldSessionTimeoutMs = member.sessionTimeoutMs
        let currentLeader = group.leaderId
        if let waiter = member.joinWaiter {
            member.joinWaiter = nil
            complete(waiter, JoinResult(error: .fencedInstanceId, memberId: oldMemberId))
        }
        if let waiter = member.syncWaiter {
            member.syncWaiter = nil
            completeSync(waiter, error: .fencedInstanceId)
        }
        group.replaceMemberId(member, with: newMemberId)
        member.protocols = join.protocols
        member.rebalanceTimeoutMs = join.rebalanceTimeoutMs
        member.sessionTimeoutMs = join.request.sessionTimeoutMs
        member.joinWaiter = join.waiter
        scheduleSessionExpiry(group, member)
        logger.info("static member replaced", metadata: [
            "group": "\(group.groupId)", "instance": "\(member.groupInstanceId ?? "")",
            "old": "\(oldMemberId)", "new": "\(newMemberId)",
        ])
        switch group.state {
        case .stable:
            guard group.protocolName == group.selectProtocol() else {
                return maybePrepareRebalance(group, reason: "static member \(newMemberId) changed the selected protocol")
            }
            let generationId = group.generationId
            persist([groupMetadataRecord(group)]) { [weak self] ok in
                guard let self else { return }
                guard self.groups[group.groupId] === group, group.members[newMemberId] === member,
                      let waiter = member.joinWaiter else { return }
                member.joinWaiter = nil
                if ok {
                    // The old leader id is returned on purpose: the rejoined member must not run an
                    // assignment a Stable group would not distribute.
                    self.complete(waiter, JoinResult(
                        memberId: newMemberId, generationId: generationId,
                        protocolType: group.protocolType, protocolName: group.protocolName,
                        leaderId: currentLeader ?? ""))
                } else {
                    member.protocols = oldProtocols
                    member.rebalanceTimeoutMs = oldRebalanceTimeoutMs
                    member.sessionTimeoutMs = oldSessionTimeoutMs
                    group.replaceMemberId(member, with: oldMemberId)
                    self.scheduleSessionExpiry(group, member)
                    self.complete(waiter, JoinResult(error: .coordinatorNotAvailable, memberId: ""))
                }
            }
        case .completingRebalance:
            // The leader may already be assigning with the old member id.
            prepareRebalance(group, reason: "static member \(newMemberId) rejoined during CompletingRebalance")
        case .preparingRebalance:
            break
        case .empty, .dead:
            preconditionFailure("static member in a group without members")
        }
    }

    func currentJoinResult(_ group: ClassicGroup, for member: GroupMember, includeMembers: Bool) -> JoinResult {
        JoinResult(
            memberId: member.memberId,
            generationId: group.generationId,
            protocolType: group.protocolType,
            protocolName: group.protocolName,
            leaderId: group.leaderId ?? "",
            members: includeMembers ? group.orderedMembers.map { member in
                JoinGroupResponse.JoinGroupResponseMember(
                    memberId: member.memberId,
                    groupInstanceId: member.groupInstanceId,
                    metadata: member.metadata(for: group.protocolName) ?? ByteBuffer())
            } : []
        )
    }

    func complete(_ waiter: JoinWaiter, _ result: JoinResult) {
        let response = result.response(version: waiter.version)
        respond { waiter.completion(response) }
    }

    // MARK: Rebalance

    func maybePrepareRebalance(_ group: ClassicGroup, reason: String) {
        switch group.state {
        case .stable, .completingRebalance, .empty:
            prepareRebalance(group, reason: reason)
        case .preparingRebalance, .dead:
            break
        }
    }

    func prepareRebalance(_ group: ClassicGroup, reason: String) {
        if group.state == .completingRebalance {
            resetAndPropagateAssignmentError(group, .rebalanceInProgress)
        }
        cancelPendingSync(group)
        let wasEmpty = group.state == .empty
        transition(group, to: .preparingRebalance)
        logger.info("preparing rebalance", metadata: [
            "group": "\(group.groupId)", "generation": "\(group.generationId)", "reason": "\(reason)",
        ])
        let initialDelayMs = configuration.initialRebalanceDelayMs
        if wasEmpty && initialDelayMs > 0 {
            // group.initial.rebalance.delay.ms: let more members of a starting group arrive.
            group.initialDelayRemainingMs = max(group.rebalanceTimeoutMs - initialDelayMs, 0)
            group.newMemberAdded = false
            scheduleRebalanceTimer(group, after: initialDelayMs)
        } else {
            group.initialDelayRemainingMs = nil
            scheduleRebalanceTimer(group, after: group.rebalanceTimeoutMs)
            tryCompleteJoin(group)
        }
    }

    private func scheduleRebalanceTimer(_ group: ClassicGroup, after ms: Int64) {
        group.rebalanceTimer?.cancel()
        let token = nextToken()
        group.rebalanceToken = token
        group.rebalanceTimer = scheduleLocked(after: ms) { [weak self] in
            self?.rebalanceTimerFired(group, token: token)
        }
    }

    private func rebalanceTimerFired(_ group: ClassicGroup, token: UInt64) {
        guard groups[group.groupId] === group, group.rebalanceToken == token, group.state == .preparingRebalance else { return }
        group.rebalanceTimer = nil
        if let remaining = group.initialDelayRemainingMs {
            if group.newMemberAdded && remaining > 0 {
                group.newMemberAdded = false
                let delay = min(configuration.initialRebalanceDelayMs, remaining)
                group.initialDelayRemainingMs = remaining - delay
                scheduleRebalanceTimer(group, after: delay)
                return
            }
            group.initialDelayRemainingMs = nil
        }
        completeJoin(group)
    }

    /// Completes the join phase early once every member rejoined (Kafka `DelayedJoin.tryComplete`);
    /// the initial delay only ends by its timer.
    func tryCompleteJoin(_ group: ClassicGroup) {
        guard group.state == .preparingRebalance, group.initialDelayRemainingMs == nil, group.hasAllMembersJoined else { return }
        completeJoin(group)
    }

    /// Kafka `onCompleteJoin`: drop dynamic members that did not rejoin, start the next generation and
    /// answer every parked JoinGroup (the leader gets the members' metadata).
    private func completeJoin(_ group: ClassicGroup) {
        group.rebalanceTimer?.cancel()
        group.rebalanceTimer = nil
        group.rebalanceToken = nextToken()
        group.initialDelayRemainingMs = nil
        for member in group.orderedMembers where member.joinWaiter == nil && member.groupInstanceId == nil {
            logger.info("member did not rejoin", metadata: ["group": "\(group.groupId)", "member": "\(member.memberId)"])
            removeMember(group, member)
        }
        guard group.state != .dead else { return }
        if !group.maybeElectNewJoinedLeader() && !group.members.isEmpty {
            // Only static members that have not rejoined are left: wait for them or their expiry.
            logger.warning("no member rejoined", metadata: ["group": "\(group.groupId)"])
            scheduleRebalanceTimer(group, after: group.rebalanceTimeoutMs)
            return
        }
        group.generationId += 1
        group.pendingSyncMembers.removeAll()
        if group.members.isEmpty {
            group.protocolName = nil
            group.subscribedTopics = nil
            transition(group, to: .empty)
            logger.info("group is empty", metadata: ["group": "\(group.groupId)", "generation": "\(group.generationId)"])
            persist([groupMetadataRecord(group)]) { [weak self] ok in
                if !ok { self?.logger.warning("storing empty group failed", metadata: ["group": "\(group.groupId)"]) }
            }
            return
        }
        group.protocolName = group.selectProtocol()
        group.computeSubscribedTopics()
        transition(group, to: .completingRebalance)
        logger.info("group stabilized", metadata: [
            "group": "\(group.groupId)", "generation": "\(group.generationId)",
            "protocol": "\(group.protocolName ?? "")", "members": "\(group.members.count)",
        ])
        for member in group.orderedMembers {
            if let waiter = member.joinWaiter {
                member.joinWaiter = nil
                complete(waiter, currentJoinResult(group, for: member, includeMembers: group.isLeader(member.memberId)))
            }
            member.isNew = false
            scheduleSessionExpiry(group, member)
            group.pendingSyncMembers.insert(member.memberId)
        }
        schedulePendingSync(group)
    }

    /// Members that never send SyncGroup are removed after the rebalance timeout.
    private func schedulePendingSync(_ group: ClassicGroup) {
        group.pendingSyncTimer?.cancel()
        let token = nextToken()
        group.pendingSyncToken = token
        let generationId = group.generationId
        group.pendingSyncTimer = scheduleLocked(after: group.rebalanceTimeoutMs) { [weak self] in
            guard let self, self.groups[group.groupId] === group, group.pendingSyncToken == token,
                  group.generationId == generationId,
                  group.state == .completingRebalance || group.state == .stable,
                  !group.pendingSyncMembers.isEmpty else { return }
            let missing = group.pendingSyncMembers
            self.logger.info("members did not sync", metadata: ["group": "\(group.groupId)", "members": "\(missing.sorted())"])
            for memberId in missing {
                if let member = group.members[memberId] { self.removeMember(group, member) }
            }
            self.prepareRebalance(group, reason: "pending SyncGroup expired")
        }
    }

    private func cancelPendingSync(_ group: ClassicGroup) {
        group.pendingSyncTimer?.cancel()
        group.pendingSyncTimer = nil
        group.pendingSyncToken = nextToken()
        group.pendingSyncMembers.removeAll()
    }

    /// Removes a member without touching the group state (answers its parked requests).
    private func removeMember(_ group: ClassicGroup, _ member: GroupMember) {
        if let waiter = member.joinWaiter {
            member.joinWaiter = nil
            complete(waiter, JoinResult(error: .unknownMemberId, memberId: ""))
        }
        if let waiter = member.syncWaiter {
            member.syncWaiter = nil
            completeSync(waiter, error: .unknownMemberId)
        }
        group.remove(member.memberId)
    }

    /// Kafka `removeMemberAndUpdateGroup`: a member left or expired.
    func removeMemberAndUpdateGroup(_ group: ClassicGroup, _ member: GroupMember, reason: String) {
        removeMember(group, member)
        switch group.state {
        case .dead, .empty:
            break
        case .stable, .completingRebalance:
            maybePrepareRebalance(group, reason: reason)
        case .preparingRebalance:
            tryCompleteJoin(group)
        }
    }

    // MARK: Sessions

    /// Restarts a member's session timer (any heartbeat, join or sync does).
    func scheduleSessionExpiry(_ group: ClassicGroup, _ member: GroupMember, timeoutMs: Int64? = nil) {
        member.sessionTimer?.cancel()
        let token = nextToken()
        member.sessionToken = token
        member.sessionTimer = scheduleLocked(after: timeoutMs ?? Int64(member.sessionTimeoutMs)) { [weak self] in
            self?.sessionExpired(group, member, token: token)
        }
    }

    private func sessionExpired(_ group: ClassicGroup, _ member: GroupMember, token: UInt64) {
        guard groups[group.groupId] === group, group.members[member.memberId] === member, member.sessionToken == token else { return }
        if !member.isNew && (member.joinWaiter != nil || member.syncWaiter != nil) {
            // Parked in JoinGroup/SyncGroup: the member is waiting on us, not gone.
            return scheduleSessionExpiry(group, member)
        }
        logger.info("member session expired", metadata: ["group": "\(group.groupId)", "member": "\(member.memberId)"])
        removeMemberAndUpdateGroup(group, member, reason: "member \(member.memberId) session expired")
    }

    private func expirePendingMember(_ group: ClassicGroup, memberId: String) {
        guard groups[group.groupId] === group, group.pendingMembers.removeValue(forKey: memberId) != nil else { return }
        logger.debug("pending member expired", metadata: ["group": "\(group.groupId)", "member": "\(memberId)"])
        if group.state == .preparingRebalance {
            tryCompleteJoin(group)
        }
        removeIfVacant(group)
    }

    // MARK: SyncGroup

    /// SyncGroup (v0-5). The leader's request carries every member's assignment; it is persisted,
    /// then every parked SyncGroup of the generation is answered.
    public func handleSyncGroup(_ request: SyncGroupRequest, version: Int16, completion: @escaping @Sendable (SyncGroupResponse) -> Void) {
        withState {
            let waiter = SyncWaiter(version: version, completion: completion)
            func fail(_ error: KafkaErrorCode) { completeSync(waiter, error: error) }
            if isLoading { return fail(.coordinatorLoadInProgress) }
            guard !request.groupId.isEmpty else { return fail(.invalidGroupId) }
            guard let group = groups[request.groupId] else { return fail(.unknownMemberId) }
            if let consumer = group.consumer {
                let response = classicSyncInConsumerGroup(consumer, request, version: version)
                return respond { completion(response) }
            }
            guard group.state != .dead else { return fail(.coordinatorNotAvailable) }
            let instanceId = version >= 3 ? request.groupInstanceId : nil
            if let error = validateCurrentMember(group, memberId: request.memberId, groupInstanceId: instanceId) { return fail(error) }
            guard request.generationId == group.generationId else { return fail(.illegalGeneration) }
            if let protocolType = request.protocolType, protocolType != group.protocolType { return fail(.inconsistentGroupProtocol) }
            if let protocolName = request.protocolName, protocolName != group.protocolName { return fail(.inconsistentGroupProtocol) }
            guard let member = group.members[request.memberId] else { preconditionFailure("validated member missing") }
            switch group.state {
            case .empty:
                fail(.unknownMemberId)
            case .preparingRebalance:
                fail(.rebalanceInProgress)
            case .completingRebalance:
                if let old = member.syncWaiter {
                    completeSync(old, error: .rebalanceInProgress)
                }
                member.syncWaiter = waiter
                markSynced(group, member)
                if group.isLeader(member.memberId) {
                    storeAssignment(group, request.assignments)
                }
            case .stable:
                markSynced(group, member)
                completeSync(waiter, group: group, assignment: member.assignment)
            case .dead:
                fail(.coordinatorNotAvailable)
            }
        }
    }

    private func markSynced(_ group: ClassicGroup, _ member: GroupMember) {
        group.pendingSyncMembers.remove(member.memberId)
        if group.pendingSyncMembers.isEmpty {
            group.pendingSyncTimer?.cancel()
            group.pendingSyncTimer = nil
        }
        scheduleSessionExpiry(group, member)
    }

    private func storeAssignment(_ group: ClassicGroup, _ assignments: [SyncGroupRequest.SyncGroupRequestAssignment]) {
        var byMember: [String: ByteBuffer] = [:]
        for assignment in assignments where group.members[assignment.memberId] != nil {
            byMember[assignment.memberId] = assignment.assignment
        }
        let generationId = group.generationId
        let stored = byMember
        persist([groupMetadataRecord(group, assignments: stored)]) { [weak self] ok in
            guard let self, self.groups[group.groupId] === group, group.state == .completingRebalance,
                  group.generationId == generationId else { return }
            if ok {
                for member in group.orderedMembers {
                    member.assignment = stored[member.memberId] ?? ByteBuffer()
                }
                self.transition(group, to: .stable)
                for member in group.orderedMembers {
                    if let waiter = member.syncWaiter {
                        member.syncWaiter = nil
                        self.completeSync(waiter, group: group, assignment: member.assignment)
                        self.scheduleSessionExpiry(group, member)
                    }
                }
                self.logger.info("assignment stored", metadata: ["group": "\(group.groupId)", "generation": "\(generationId)"])
            } else {
                self.logger.warning("storing assignment failed", metadata: ["group": "\(group.groupId)"])
                self.resetAndPropagateAssignmentError(group, .coordinatorNotAvailable)
                self.prepareRebalance(group, reason: "storing the assignment failed")
            }
        }
    }

    func resetAndPropagateAssignmentError(_ group: ClassicGroup, _ error: KafkaErrorCode) {
        for member in group.orderedMembers {
            member.assignment = ByteBuffer()
            if let waiter = member.syncWaiter {
                member.syncWaiter = nil
                completeSync(waiter, error: error)
            }
        }
    }

    func completeSync(_ waiter: SyncWaiter, error: KafkaErrorCode) {
        let response = SyncGroupResponse(errorCode: error.rawValue, protocolType: nil, protocolName: nil, assignment: ByteBuffer())
        respond { waiter.completion(response) }
    }

    private func completeSync(_ waiter: SyncWaiter, group: ClassicGroup, assignment: ByteBuffer) {
        let response = SyncGroupResponse(
            errorCode: KafkaErrorCode.none.rawValue,
            protocolType: waiter.version >= 5 ? group.protocolType : nil,
            protocolName: waiter.version >= 5 ? group.protocolName : nil,
            assignment: assignment)
        respond { waiter.completion(response) }
    }

    // MARK: Heartbeat

    /// Heartbeat (v0-4): resets the session; REBALANCE_IN_PROGRESS tells the member to rejoin.
    public func handleHeartbeat(_ request: HeartbeatRequest, version: Int16, completion: @escaping @Sendable (HeartbeatResponse) -> Void) {
        withState {
            let error = heartbeat(request, version: version)
            let response = HeartbeatResponse(errorCode: error.rawValue)
            respond { completion(response) }
        }
    }

    private func heartbeat(_ request: HeartbeatRequest, version: Int16) -> KafkaErrorCode {
        if isLoading { return .coordinatorLoadInProgress }
        guard !request.groupId.isEmpty else { return .invalidGroupId }
        guard let group = groups[request.groupId] else { return .unknownMemberId }
        if let consumer = group.consumer { return classicHeartbeatInConsumerGroup(group, consumer, request) }
        guard group.state != .dead else { return .coordinatorNotAvailable }
        let instanceId = version >= 3 ? request.groupInstanceId : nil
        if let error = validateCurrentMember(group, memberId: request.memberId, groupInstanceId: instanceId) { return error }
        guard let member = group.members[request.memberId] else { return .unknownMemberId }
        switch group.state {
        case .empty:
            return .unknownMemberId
        case .preparingRebalance:
            scheduleSessionExpiry(group, member)
            return .rebalanceInProgress
        case .completingRebalance, .stable:
            guard request.generationId == group.generationId else { return .illegalGeneration }
            scheduleSessionExpiry(group, member)
            return .none
        case .dead:
            return .coordinatorNotAvailable
        }
    }

    // MARK: LeaveGroup

    /// LeaveGroup (v0-5; v3+ carries a batch of members, possibly by instance id only).
    public func handleLeaveGroup(_ request: LeaveGroupRequest, version: Int16, completion: @escaping @Sendable (LeaveGroupResponse) -> Void) {
        withState {
            let identities = version >= 3
                ? request.members
                : [LeaveGroupRequest.MemberIdentity(memberId: request.memberId, groupInstanceId: nil, reason: nil)]
            var topLevel = KafkaErrorCode.none
            var results: [(LeaveGroupRequest.MemberIdentity, KafkaErrorCode)] = []
            if isLoading {
                topLevel = .coordinatorLoadInProgress
            } else if request.groupId.isEmpty {
                topLevel = .invalidGroupId
            } else if let group = groups[request.groupId] {
                if group.state == .dead {
                    topLevel = .coordinatorNotAvailable
                } else {
                    results = identities.map { ($0, leave(group, $0)) }
                    removeIfVacant(group)
                }
            } else {
                results = identities.map { ($0, .unknownMemberId) }
            }
            var response = LeaveGroupResponse(errorCode: topLevel.rawValue)
            if version >= 3 {
                if topLevel == .none {
                    response.members = results.map { identity, error in
                        LeaveGroupResponse.MemberResponse(memberId: identity.memberId, groupInstanceId: identity.groupInstanceId, errorCode: error.rawValue)
                    }
                }
            } else if topLevel == .none, let first = results.first {
                response.errorCode = first.1.rawValue
            }
            let reply = response
            respond { completion(reply) }
        }
    }

    private func leave(_ group: ClassicGroup, _ identity: LeaveGroupRequest.MemberIdentity) -> KafkaErrorCode {
        if let consumer = group.consumer { return classicLeaveInConsumerGroup(group, consumer, identity) }
        let reason = "member \(identity.memberId) left" + (identity.reason.map { ": \($0)" } ?? "")
        if identity.memberId.isEmpty {
            // Administrative removal by group.instance.id.
            guard let instanceId = identity.groupInstanceId, let memberId = group.staticMembers[instanceId],
                  let member = group.members[memberId] else { return .unknownMemberId }
            removeMemberAndUpdateGroup(group, member, reason: reason)
            return .none
        }
        if let timer = group.pendingMembers.removeValue(forKey: identity.memberId) {
            timer.cancel()
            if group.state == .preparingRebalance { tryCompleteJoin(group) }
            return .none
        }
        if let error = validateCurrentMember(group, memberId: identity.memberId, groupInstanceId: identity.groupInstanceId) {
            return error
        }
        guard let member = group.members[identity.memberId] else { return .unknownMemberId }
        logger.info("member leaving", metadata: ["group": "\(group.groupId)", "member": "\(member.memberId)"])
        removeMemberAndUpdateGroup(group, member, reason: reason)
        return .none
    }
}
