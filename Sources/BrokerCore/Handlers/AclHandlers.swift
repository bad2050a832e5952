import DiskIO
import KafkaWire
public import Security

extension Broker {
    /// Whether the request's principal may do `operation` on the resource; always true without
    /// an authorizer (`authorizer.class.name` unset), as in Kafka.
    public func authorized(_ context: RequestContext, _ operation: AclOperation, _ type: AclResourceType, _ name: String) -> Bool {
        guard let authorizer = security.authorizer else { return true }
        var host = context.clientHost
        if host.hasPrefix("/") { host.removeFirst() }
        return authorizer.authorize(principal: context.principal, host: host, operation: operation, resourceType: type, name: name)
    }

    static let clusterName = "kafka-cluster"

    /// KIP-679: an idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on any topic.
    func mayProduceIdempotently(_ context: RequestContext) -> Bool {
        guard let authorizer = security.authorizer else { return true }
        var host = context.clientHost
        if host.hasPrefix("/") { host.removeFirst() }
        return authorized(context, .idempotentWrite, .cluster, Self.clusterName)
            || authorizer.authorizeAny(principal: context.principal, host: host, operation: .write, resourceType: .topic)
    }

    func handleCreateAcls(_ context: RequestContext, _ request: CreateAclsRequest) -> CreateAclsResponse {
        var response = CreateAclsResponse(throttleTimeMs: 0, results: [])
        guard let authorizer = security.authorizer else {
            response.results = request.creations.map { _ in .init(errorCode: KafkaErrorCode.securityDisabled.rawValue, errorMessage: "No Authorizer is configured.") }
            return response
        }
        guard authorized(context, .alter, .cluster, Self.clusterName) else {
            response.results = request.creations.map { _ in .init(errorCode: KafkaErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil) }
            return response
        }
        var valid: [AclBinding] = []
        for creation in request.creations {
            let binding = AclBinding(
                resourceType: AclResourceType(rawValue: creation.resourceType) ?? .unknown, resourceName: creation.resourceName,
                patternType: AclPatternType(rawValue: creation.resourcePatternType) ?? .unknown, principal: creation.principal, host: creation.host,
                operation: AclOperation(rawValue: creation.operation) ?? .unknown, permission: AclPermission(rawValue: creation.permissionType) ?? .unknown)
            if let reason = binding.invalidReason {
                response.results.append(.init(errorCode: KafkaErrorCode.invalidRequest.rawValue, errorMessage: reason))
            } else {
                valid.append(binding)
                response.results.append(.init(errorCode: 0, errorMessage: nil))
            }
        }
        authorizer.add(valid)
        if let error = security.persistAcls() {
            response.results = response.results.map { $0.errorCode == 0 ? .init(errorCode: KafkaErrorCode.kafkaStorageError.rawValue, errorMessage: error) : $0 }
        }
        return response
    }

    func handleDescribeAcls(_ context: RequestContext, _ request: DescribeAclsRequest) -> DescribeAclsResponse {
        guard let authorizer = security.authorizer else {
            return DescribeAclsResponse(throttleTimeMs: 0, errorCode: KafkaErrorCode.securityDisabled.rawValue, errorMessage: "No Authorizer is configured.", resources: [])
        }
        guard authorized(context, .describe, .cluster, Self.clusterName) else {
            return DescribeAclsResponse(throttleTimeMs: 0, errorCode: KafkaErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil, resources: [])
        }
        let filter = AclFilter(
            resourceType: AclResourceType(rawValue: request.resourceTypeFilter) ?? .unknown, resourceName: request.resourceNameFilter,
            patternType: AclPatternType(rawValue: request.patternTypeFilter) ?? .unknown, principal: request.principalFilter, host: request.hostFilter,
            operation: AclOperation(rawValue: request.operation) ?? .unknown, permission: AclPermission(rawValue: request.permissionType) ?? .unknown)
        var resources: [DescribeAclsResponse.DescribeAclsResource] = []
        for acl in authorizer.all where filter.matches(acl) {
            let description = DescribeAclsResponse.AclDescription(
                principal: acl.principal, host: acl.host, operation: acl.operation.rawValue, permissionType: acl.permission.rawValue)
            if let index = resources.firstIndex(where: {
                $0.resourceType == acl.resourceType.rawValue && $0.resourceName == acl.resourceName && $0.patternType == acl.patternType.rawValue
            }) {
                resources[index].acls.append(description)
            } else {
                resources.append(.init(resourceType: acl.resourceType.rawValue, resourceName: acl.resourceName, patternType: acl.patternType.rawValue, acls: [description]))
            }
        }
        return DescribeAclsResponse(throttleTimeMs: 0, errorCode: 0, errorMessage: nil, resources: resources)
    }

    func handleDeleteAcls(_ context: RequestContext, _ request: DeleteAclsRequest) -> DeleteAclsResponse {
        var response = DeleteAclsResponse(throttleTimeMs: 0, filterResults: [])
        guard let authorizer = security.authorizer else {
            response.filterResults = request.filters.map { _ in .init(errorCode: KafkaErrorCode.securityDisabled.rawValue, errorMessage: "No Authorizer is configured.", matchingAcls: []) }
            return response
        }
        guard authorized(context, .alter, .cluster, Self.clusterName) else {
            response.filterResults = request.filters.map { _ in .init(errorCode: KafkaErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil, matchingAcls: []) }
            return response
        }
        for f in request.filters {
            let filter = AclFilter(
                resourceType: AclResourceType(rawValue: f.resourceTypeFilter) ?? .unknown, resourceName: f.resourceNameFilter,
                patternType: AclPatternType(rawValue: f.patternTypeFilter) ?? .unknown, principal: f.principalFilter, host: f.hostFilter,
                operation: AclOperation(rawValue: f.operation) ?? .unknown, permission: AclPermission(rawValue: f.permissionType) ?? .unknown)
            let removed = authorizer.remove(matching: filter)
            response.filterResults.append(.init(errorCode: 0, errorMessage: nil, matchingAcls: removed.map {
                .init(errorCode: 0, errorMessage: nil, resourceType: $0.resourceType.rawValue, resourceName: $0.resourceName, patternType: $0.patternType.rawValue,
                      principal: $0.principal, host: $0.host, operation: $0.operation.rawValue, permissionType: $0.permission.rawValue)
            }))
        }
        if let error = security.persistAcls() {
            response.filterResults = response.filterResults.map { .init(errorCode: KafkaErrorCode.kafkaStorageError.rawValue, errorMessage: error, matchingAcls: $0.matchingAcls) }
        }
        return response
    }
}

extension Broker {
    /// KIP-430: the operations Kafka reports per resource type.
    static let reportedOperations: [AclResourceType: [AclOperation]] = [
        .topic: [.read, .write, .create, .delete, .alter, .describe, .describeConfigs, .alterConfigs],
        .group: [.read, .describe, .delete],
        .cluster: [.create, .alter, .describe, .clusterAction, .describeConfigs, .alterConfigs, .idempotentWrite, .createTokens, .describeTokens],
    ]

    /// KIP-430 bit field: bit `operation code` set for each operation the principal may do on the
    /// resource (every reported operation when no authorizer is configured).
    public func authorizedOperations(_ context: RequestContext, _ type: AclResourceType, _ name: String) -> Int32 {
        var bits: Int32 = 0
        for operation in Self.reportedOperations[type] ?? [] where authorized(context, operation, type, name) {
            bits |= 1 << Int32(operation.rawValue)
        }
        return bits
    }
}
