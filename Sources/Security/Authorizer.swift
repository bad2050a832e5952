import Foundation
import Synchronization

/// Kafka's ACL model (the codes are Kafka's wire values).
public enum AclResourceType: Int8, Sendable, CaseIterable {
    case unknown = 0, any = 1, topic = 2, group = 3, cluster = 4, transactionalId = 5, delegationToken = 6, user = 7
}

public enum AclPatternType: Int8, Sendable {
    case unknown = 0, any = 1, match = 2, literal = 3, prefixed = 4
}

public enum AclOperation: Int8, Sendable, CaseIterable {
    case unknown = 0, any = 1, all = 2, read = 3, write = 4, create = 5, delete = 6, alter = 7, describe = 8, clusterAction = 9
    case describeConfigs = 10, alterConfigs = 11, idempotentWrite = 12, createTokens = 13, describeTokens = 14

    /// Operations whose ALLOW also allows this one (Kafka: DESCRIBE is implied by READ, WRITE,
    /// DELETE and ALTER; DESCRIBE_CONFIGS by ALTER_CONFIGS).
    var impliedBy: [AclOperation] {
        switch self {
        case .describe: [.read, .write, .delete, .alter]
        case .describeConfigs: [.alterConfigs]
        default: []
        }
    }
}

public enum AclPermission: Int8, Sendable {
    case unknown = 0, any = 1, deny = 2, allow = 3
}

/// One ACL: `principal` may (or may not) do `operation` on resources matching the pattern, from `host`.
public struct AclBinding: Sendable, Hashable {
    public var resourceType: AclResourceType
    public var resourceName: String
    public var patternType: AclPatternType
    public var principal: String
    public var host: String
    public var operation: AclOperation
    public var permission: AclPermission

    public init(
        resourceType: AclResourceType, resourceName: String, patternType: AclPatternType, principal: String, host: String,
        operation: AclOperation, permission: AclPermission
    ) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }

    /// Why this binding cannot be stored, or nil (Kafka's CreateAcls validation).
    public var invalidReason: String? {
        if [.unknown, .any].contains(resourceType) { return "Invalid resource type" }
        if ![.literal, .prefixed].contains(patternType) { return "Invalid pattern type" }
        if [.unknown, .any].contains(operation) { return "Invalid operation" }
        if ![.allow, .deny].contains(permission) { return "Invalid permission type" }
        if resourceName.isEmpty { return "Resource name must not be empty" }
        if resourceType == .cluster && resourceName != "kafka-cluster" { return "The only valid name for the CLUSTER resource is kafka-cluster" }
        guard let colon = principal.firstIndex(of: ":"), colon != principal.startIndex, principal.index(after: colon) != principal.endIndex else {
            return "Could not parse principal from '\(principal)' (no colon is present separating the principal type from name)"
        }
        if host.isEmpty { return "Host must not be empty" }
        return nil
    }

    /// Whether this binding's pattern covers the resource `name`.
    func covers(_ type: AclResourceType, _ name: String) -> Bool {
        guard resourceType == type else { return false }
        switch patternType {
        case .literal: return resourceName == name || resourceName == "*"
        case .prefixed: return name.hasPrefix(resourceName)
        default: return false
        }
    }
}

/// A DescribeAcls / DeleteAcls filter; nil fields and ANY match everything.
public struct AclFilter: Sendable {
    public var resourceType: AclResourceType
    public var resourceName: String?
    public var patternType: AclPatternType
    public var principal: String?
    public var host: String?
    public var operation: AclOperation
    public var permission: AclPermission

    public init(
        resourceType: AclResourceType, resourceName: String?, patternType: AclPatternType, principal: String?, host: String?,
        operation: AclOperation, permission: AclPermission
    ) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }

    public func matches(_ acl: AclBinding) -> Bool {
        if resourceType != .any && resourceType != acl.resourceType { return false }
        if let principal, principal != acl.principal { return false }
        if let host, host != acl.host { return false }
        if operation != .any && operation != acl.operation { return false }
        if permission != .any && permission != acl.permission { return false }
        switch patternType {
        case .any:
            return resourceName.map { $0 == acl.resourceName } ?? true
        case .match:
            // Bindings that would apply to the named resource.
            guard let resourceName else { return true }
            return acl.covers(acl.resourceType, resourceName)
        default:
            return acl.patternType == patternType && (resourceName.map { $0 == acl.resourceName } ?? true)
        }
    }
}

/// Kafka's StandardAuthorizer rules over an in-memory ACL set: super users may do anything; a
/// matching DENY wins; an ALLOW for the operation (or ALL, or one implying it) allows; a resource
/// with no ACL at all follows `allow.everyone.if.no.acl.found`. Thread-safe; persistence is the
/// caller's (`text` / `load`).
public final class Authorizer: Sendable {
    public let superUsers: Set<String>
    public let allowEveryoneIfNoAclFound: Bool
    private let acls = Mutex<[AclBinding]>([])

    public init(superUsers: Set<String>, allowEveryoneIfNoAclFound: Bool) {
        self.superUsers = superUsers
        self.allowEveryoneIfNoAclFound = allowEveryoneIfNoAclFound
    }

    /// Kafka's `super.users`: `User:a;User:b`.
    public static func parseSuperUsers(_ text: String) -> Set<String> {
        Set(text.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }

    public func authorize(principal: String, host: String, operation: AclOperation, resourceType: AclResourceType, name: String) -> Bool {
        if superUsers.contains(principal) { return true }
        return acls.withLock { acls in
            var any = false
            var allowed = false
            for acl in acls where acl.covers(resourceType, name) {
                any = true
                guard acl.principal == principal || acl.principal == "User:*", acl.host == host || acl.host == "*" else { continue }
                if acl.permission == .deny && (acl.operation == operation || acl.operation == .all) { return false }
                if acl.permission == .allow && (acl.operation == operation || acl.operation == .all || operation.impliedBy.contains(acl.operation)) {
                    allowed = true
                }
            }
            return allowed || (!any && allowEveryoneIfNoAclFound)
        }
    }

    /// Kafka's `authorizeByResourceType`: whether some ALLOW lets the principal do `operation` on
    /// at least one resource of `type` (and no wildcard DENY forbids all of them). Used for
    /// idempotent producers (KIP-679: WRITE on any topic is enough).
    public func authorizeAny(principal: String, host: String, operation: AclOperation, resourceType: AclResourceType) -> Bool {
        if superUsers.contains(principal) { return true }
        return acls.withLock { acls in
            func applies(_ acl: AclBinding) -> Bool {
                acl.resourceType == resourceType && (acl.principal == principal || acl.principal == "User:*") && (acl.host == host || acl.host == "*")
                    && (acl.operation == operation || acl.operation == .all)
            }
            if acls.contains(where: { applies($0) && $0.permission == .deny && $0.patternType == .literal && $0.resourceName == "*" }) { return false }
            if acls.contains(where: { applies($0) && $0.permission == .allow }) { return true }
            return allowEveryoneIfNoAclFound && !acls.contains { $0.resourceType == resourceType }
        }
    }

    public var all: [AclBinding] { acls.withLock { $0 } }

    /// Adds the bindings not already present.
    public func add(_ bindings: [AclBinding]) {
        acls.withLock { acls in
            for binding in bindings where !acls.contains(binding) { acls.append(binding) }
        }
    }

    /// Removes and returns the bindings matching `filter`.
    public func remove(matching filter: AclFilter) -> [AclBinding] {
        acls.withLock { acls in
            let removed = acls.filter { filter.matches($0) }
            acls.removeAll { filter.matches($0) }
            return removed
        }
    }

    // MARK: Persistence

    /// One binding per line: the seven fields tab-separated, names percent-encoded.
    public var text: String {
        var text = "# ACLs (written by Petrel): resourceType patternType resourceName principal host operation permission\n"
        for a in all {
            let fields = [
                String(a.resourceType.rawValue), String(a.patternType.rawValue), Self.encode(a.resourceName), Self.encode(a.principal),
                Self.encode(a.host), String(a.operation.rawValue), String(a.permission.rawValue),
            ]
            text += fields.joined(separator: "\t") + "\n"
        }
        return text
    }

    public struct FormatError: Error, CustomStringConvertible {
        public var line: Int
        public var description: String { "malformed ACL on line \(line)" }
    }

    public func load(_ text: String) throws(FormatError) {
        var loaded: [AclBinding] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.isEmpty || line.hasPrefix("#") { continue }
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 7, let rt = Int8(f[0]).flatMap(AclResourceType.init), let pt = Int8(f[1]).flatMap(AclPatternType.init),
                let name = f[2].removingPercentEncoding, let principal = f[3].removingPercentEncoding, let host = f[4].removingPercentEncoding,
                let op = Int8(f[5]).flatMap(AclOperation.init), let perm = Int8(f[6]).flatMap(AclPermission.init)
            else { throw FormatError(line: number + 1) }
            let binding = AclBinding(resourceType: rt, resourceName: name, patternType: pt, principal: principal, host: host, operation: op, permission: perm)
            guard binding.invalidReason == nil else { throw FormatError(line: number + 1) }
            loaded.append(binding)
        }
        acls.withLock { $0 = loaded }
    }

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_.:*@"))) ?? text
    }
}
