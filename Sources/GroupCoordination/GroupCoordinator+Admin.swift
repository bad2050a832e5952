public import KafkaWire
import Logging
import NIOCore

extension GroupCoordinator {
    /// Group type reported by ListGroups v5+ (only classic groups exist here).
    static let classicGroupType = "classic"
    /// DescribeGroups authorized operations when asked (no ACLs: READ, DELETE, DESCRIBE).
    static let groupAuthorizedOperations: Int32 = (1 << 3) | (1 << 6) | (1 << 8)

    // MARK: FindCoordinator

    /// FindCoordinator (v0-6): groups (key type 0) are coordinated by this node; transactions (key
    /// type 1) are not served, so they get COORDINATOR_NOT_AVAILABLE. v4+ answers a batch of keys.
    public func handleFindCoordinator(
        _ request: FindCoordinatorRequest, version: Int16, node: CoordinatorNode,
        completion: @escaping @Sendable (FindCoordinatorResponse) -> Void
    ) {
        let keyType = version >= 1 ? request.keyType : 0
        func answer(_ key: String) -> FindCoordinatorResponse.Coordinator {
            let error: KafkaErrorCode
            let message: String?
            switch keyType {
            case 0, 1:
                // Groups and transactions (key type 1) are both coordinated by this node.
                return .init(key: key, nodeId: node.nodeId, host: node.host, port: node.port, errorCode: 0, errorMessage: nil)
            default:
                (error, message) = (.invalidRequest, "unknown key type \(keyType)")
            }
            return .init(key: key, nodeId: -1, host: "", port: -1, errorCode: error.rawValue, errorMessage: message)
        }
        var response = FindCoordinatorResponse()
        if version >= 4 {
            response.coordinators = request.coordinatorKeys.map(answer)
        } else {
            let coordinator = answer(request.key)
            response.errorCode = coordinator.errorCode
            response.errorMessage = version >= 1 ? coordinator.errorMessage : nil
            response.nodeId = coordinator.nodeId
            response.host = coordinator.host
            response.port = coordinator.port
        }
        completion(response)
    }

    // MARK: ListGroups

    /// ListGroups (v0-5; v4+ filters by state, v5+ by type, both case-insensitive).
    public func handleListGroups(_ request: ListGroupsRequest, version: Int16, completion: @escaping @Sendable (ListGroupsResponse) -> Void) {
        var response = ListGroupsResponse()
        withState {
            if isLoading {
                response.errorCode = KafkaErrorCode.coordinatorLoadInProgress.rawValue
                return
            }
            let states = Set((version >= 4 ? request.statesFilter : []).map { $0.lowercased() })
            let types = Set((version >= 5 ? request.typesFilter : []).map { $0.lowercased() })
            response.groups = groups.values
                .filter { types.isEmpty || types.contains($0.groupType) }
                .filter { states.isEmpty || states.contains($0.stateName.lowercased()) }
                .sorted { $0.groupId < $1.groupId }
                .map { group in
                    ListGroupsResponse.ListedGroup(
                        groupId: group.groupId,
                        protocolType: group.protocolType ?? "",
                        groupState: version >= 4 ? group.stateName : "",
                        groupType: version >= 5 ? group.groupType : "")
                }
        }
        completion(response)
    }

    // MARK: DescribeGroups

    /// DescribeGroups (v0-5). Unknown groups are described as Dead without an error, as Kafka does
    /// before v6. Member metadata and assignments are only shown for Stable groups.
    public func handleDescribeGroups(_ request: DescribeGroupsRequest, version: Int16, completion: @escaping @Sendable (DescribeGroupsResponse) -> Void) {
        var response = DescribeGroupsResponse()
        withState {
            let operations = version >= 3 && request.includeAuthorizedOperations ? Self.groupAuthorizedOperations : Int32.min
            response.groups = request.groups.map { groupId in
                var described = DescribeGroupsResponse.DescribedGroup(
                    errorCode: 0, groupId: groupId, groupState: GroupState.dead.rawValue,
                    protocolType: "", protocolData: "", members: [], authorizedOperations: operations)
                if isLoading {
                    described.errorCode = KafkaErrorCode.coordinatorLoadInProgress.rawValue
                    described.groupState = ""
                    return described
                }
                guard let group = groups[groupId] else { return described }
                if let consumer = group.consumer {
                    // A consumer-protocol group, described in the classic layout (no member metadata).
                    described.groupState = consumer.stateName
                    described.protocolType = Self.consumerGroupType
                    described.protocolData = consumer.assignorName
                    described.members = consumer.orderedMembers.map { member in
                        DescribeGroupsResponse.DescribedGroupMember(
                            memberId: member.memberId, groupInstanceId: version >= 4 ? member.instanceId : nil,
                            clientId: member.clientId, clientHost: member.clientHost,
                            memberMetadata: ByteBuffer(), memberAssignment: ByteBuffer())
                    }
                    return described
                }
                let stable = group.state == .stable
                described.groupState = group.state.rawValue
                described.protocolType = group.protocolType ?? ""
                described.protocolData = stable ? (group.protocolName ?? "") : ""
                described.members = group.orderedMembers.map { member in
                    DescribeGroupsResponse.DescribedGroupMember(
                        memberId: member.memberId,
                        groupInstanceId: version >= 4 ? member.groupInstanceId : nil,
                        clientId: member.clientId,
                        clientHost: member.clientHost,
                        memberMetadata: stable ? (member.metadata(for: group.protocolName) ?? ByteBuffer()) : ByteBuffer(),
                        memberAssignment: stable ? member.assignment : ByteBuffer())
                }
                return described
            }
        }
        completion(response)
    }

    /// Snapshots of every group, sorted by id, for tools.
    public func describeAllGroups() -> [GroupSnapshot] {
        var result: [GroupSnapshot] = []
        withState { result = groups.values.sorted { $0.groupId < $1.groupId }.map { $0.snapshot() } }
        return result
    }

    /// Snapshot of one group, nil if unknown.
    public func describeGroup(_ groupId: String) -> GroupSnapshot? {
        var result: GroupSnapshot?
        withState { result = groups[groupId]?.snapshot() }
        return result
    }

    // MARK: DeleteGroups

    /// DeleteGroups (v0-2): only Empty groups can go (NON_EMPTY_GROUP otherwise); unknown or Dead
    /// groups get GROUP_ID_NOT_FOUND. Tombstones for the group and its offsets are persisted before
    /// the response.
    public func handleDeleteGroups(_ request: DeleteGroupsRequest, version: Int16, completion: @escaping @Sendable (DeleteGroupsResponse) -> Void) {
        withState {
            var results: [(String, KafkaErrorCode)] = []
            var records: [CoordinatorRecord] = []
            var deleted: Set<String> = []
            for groupId in request.groupsNames {
                let error: KafkaErrorCode
                if isLoading {
                    error = .coordinatorLoadInProgress
                } else if deleted.contains(groupId) {
                    error = .groupIdNotFound
                } else if let group = groups[groupId] {
                    switch group.state {
                    case .dead:
                        error = .groupIdNotFound
                    case .empty where group.members.isEmpty && (group.consumer?.members.isEmpty ?? true):
                        for timer in group.pendingMembers.values { timer.cancel() }
                        group.pendingMembers.removeAll()
                        for key in group.offsets.keys.sorted() {
                            records.append(.offsetCommit(group: groupId, topic: key.topic, partition: key.partition, value: nil))
                        }
                        records.append(.groupMetadata(group: groupId, value: nil))
                        group.offsets.removeAll()
                        transition(group, to: .dead)
                        groups[groupId] = nil
                        deleted.insert(groupId)
                        logger.info("group deleted", metadata: ["group": "\(groupId)"])
                        error = .none
                    default:
                        error = .nonEmptyGroup
                    }
                } else {
                    error = .groupIdNotFound
                }
                results.append((groupId, error))
            }
            let finalResults = results
            let response: @Sendable (Bool) -> DeleteGroupsResponse = { ok in
                DeleteGroupsResponse(results: finalResults.map { groupId, error in
                    let stored = error == .none && !ok ? KafkaErrorCode.coordinatorNotAvailable : error
                    return DeleteGroupsResponse.DeletableGroupResult(groupId: groupId, errorCode: stored.rawValue)
                })
            }
            if records.isEmpty {
                let reply = response(true)
                respond { completion(reply) }
            } else {
                persist(records) { [weak self] ok in
                    let reply = response(ok)
                    self?.respond { completion(reply) }
                }
            }
        }
    }
}

extension GroupCoordinator {
    /// One committed offset, as `committedOffsets()` lists it.
    public struct CommittedOffsetEntry: Sendable {
        public var groupId: String
        public var topic: String
        public var partition: Int32
        public var offset: Int64
    }

    /// Every group's committed offsets (read-only, for metrics: consumer lag).
    public func committedOffsets() -> [CommittedOffsetEntry] {
        var result: [CommittedOffsetEntry] = []
        withState {
            for (groupId, group) in groups {
                for (key, committed) in group.offsets {
                    result.append(CommittedOffsetEntry(groupId: groupId, topic: key.topic, partition: key.partition, offset: committed.offset))
                }
            }
        }
        return result
    }
}
