import ArgumentParser
import Foundation
import KafkaWire
import Security
import WireClient

/// `petrel acls`: Kafka's ACLs (like `kafka-acls.sh`) through CreateAcls / DescribeAcls /
/// DeleteAcls on a listener where the caller is allowed to (a super user, or ALTER on the cluster).
struct Acls: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, add and remove ACLs (the broker needs authorizer.class.name).",
        subcommands: [AclsList.self, AclsAdd.self, AclsRemove.self]
    )
}

struct AclSelection: ParsableArguments {
    @Option(help: "Principal, e.g. User:alice (User:* for everyone).") var principal: String?
    @Option(help: "Operation: All, Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs, IdempotentWrite, ClusterAction.")
    var operation: String?
    @Option(help: "Topic name (or prefix with --prefixed; * for all topics).") var topic: String?
    @Option(help: "Consumer group id (or prefix with --prefixed).") var group: String?
    @Option(help: "Transactional id (or prefix with --prefixed).") var transactionalId: String?
    @Flag(help: "The cluster resource.") var cluster = false
    @Flag(help: "Prefixed pattern instead of literal.") var prefixed = false
    @Flag(help: "Deny instead of allow.") var deny = false
    @Option(help: "Host (default *).") var host: String?

    var resource: (AclResourceType, String)? {
        if let topic { return (.topic, topic) }
        if let group { return (.group, group) }
        if let transactionalId { return (.transactionalId, transactionalId) }
        if cluster { return (.cluster, "kafka-cluster") }
        return nil
    }

    func parsedOperation() throws -> AclOperation? {
        guard let operation else { return nil }
        let key = operation.lowercased().replacingOccurrences(of: "_", with: "")
        guard let found = AclOperation.allCases.first(where: { "\($0)".lowercased() == key }), found != .unknown, found != .any else {
            throw ValidationError("unknown operation \(operation)")
        }
        return found
    }
}

private func describe(_ type: Int8, _ name: String, _ pattern: Int8, _ principal: String, _ host: String, _ op: Int8, _ perm: Int8) -> String {
    let typeName = AclResourceType(rawValue: type).map { "\($0)".uppercased() } ?? "\(type)"
    let patternName = pattern == AclPatternType.prefixed.rawValue ? "PREFIXED" : "LITERAL"
    let opName = AclOperation(rawValue: op).map { "\($0)".uppercased() } ?? "\(op)"
    let permName = perm == AclPermission.deny.rawValue ? "DENY" : "ALLOW"
    return "\(typeName)\t\(patternName)\t\(name)\t\(principal)\t\(host)\t\(opName)\t\(permName)"
}

struct AclsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List ACLs (optionally for one resource or principal).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var selection: AclSelection

    func run() throws {
        let (type, name) = selection.resource ?? (.any, "")
        let request = DescribeAclsRequest(
            resourceTypeFilter: type.rawValue, resourceNameFilter: selection.resource == nil ? nil : name,
            patternTypeFilter: selection.resource == nil ? AclPatternType.any.rawValue : AclPatternType.match.rawValue,
            principalFilter: selection.principal, hostFilter: selection.host, operation: try selection.parsedOperation()?.rawValue ?? AclOperation.any.rawValue,
            permissionType: AclPermission.any.rawValue)
        let response = try connection.withClient { client in try await client.connection.send(request, version: 3) }
        try ClientError.check(response.errorCode, "describe ACLs", message: response.errorMessage)
        for resource in response.resources {
            for acl in resource.acls {
                print(describe(resource.resourceType, resource.resourceName, resource.patternType, acl.principal, acl.host, acl.operation, acl.permissionType))
            }
        }
    }
}

struct AclsAdd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Add an ACL: --principal, --operation and one resource.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var selection: AclSelection

    func run() throws {
        guard let principal = selection.principal, let operation = try selection.parsedOperation(), let (type, name) = selection.resource else {
            throw ValidationError("give --principal, --operation and one of --topic, --group, --transactional-id, --cluster")
        }
        let creation = CreateAclsRequest.AclCreation(
            resourceType: type.rawValue, resourceName: name,
            resourcePatternType: (selection.prefixed ? AclPatternType.prefixed : .literal).rawValue, principal: principal, host: selection.host ?? "*",
            operation: operation.rawValue, permissionType: (selection.deny ? AclPermission.deny : .allow).rawValue)
        let response = try connection.withClient { client in try await client.connection.send(CreateAclsRequest(creations: [creation]), version: 3) }
        for result in response.results { try ClientError.check(result.errorCode, "create ACL", message: result.errorMessage) }
        print("added: " + describe(creation.resourceType, name, creation.resourcePatternType, principal, creation.host, creation.operation, creation.permissionType))
    }
}

struct AclsRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove the ACLs matching the given fields (unset fields match any).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var selection: AclSelection

    func run() throws {
        let (type, name) = selection.resource ?? (.any, "")
        let filter = DeleteAclsRequest.DeleteAclsFilter(
            resourceTypeFilter: type.rawValue, resourceNameFilter: selection.resource == nil ? nil : name,
            patternTypeFilter: selection.resource == nil ? AclPatternType.any.rawValue : (selection.prefixed ? AclPatternType.prefixed : .literal).rawValue,
            principalFilter: selection.principal, hostFilter: selection.host, operation: try selection.parsedOperation()?.rawValue ?? AclOperation.any.rawValue,
            permissionType: AclPermission.any.rawValue)
        let response = try connection.withClient { client in try await client.connection.send(DeleteAclsRequest(filters: [filter]), version: 3) }
        for result in response.filterResults {
            try ClientError.check(result.errorCode, "delete ACLs", message: result.errorMessage)
            for acl in result.matchingAcls {
                print("removed: " + describe(acl.resourceType, acl.resourceName, acl.patternType, acl.principal, acl.host, acl.operation, acl.permissionType))
            }
        }
    }
}
