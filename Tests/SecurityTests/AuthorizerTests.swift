import Security
import Testing

@Suite struct AuthorizerTests {
    func binding(_ type: AclResourceType, _ name: String, _ pattern: AclPatternType = .literal, _ principal: String = "User:alice",
                 _ op: AclOperation, _ perm: AclPermission = .allow, host: String = "*") -> AclBinding {
        AclBinding(resourceType: type, resourceName: name, patternType: pattern, principal: principal, host: host, operation: op, permission: perm)
    }

    @Test func kafkaRules() {
        let authorizer = Authorizer(superUsers: ["User:admin"], allowEveryoneIfNoAclFound: false)
        authorizer.add([
            binding(.topic, "orders", .literal, "User:alice", .read),
            binding(.topic, "logs-", .prefixed, "User:alice", .write),
            binding(.topic, "logs-secret", .literal, "User:alice", .all, .deny),
            binding(.group, "*", .literal, "User:*", .read),
            binding(.topic, "hosted", .literal, "User:bob", .read, host: "10.0.0.1"),
        ])
        func can(_ p: String, _ op: AclOperation, _ t: AclResourceType, _ n: String, host: String = "127.0.0.1") -> Bool {
            authorizer.authorize(principal: p, host: host, operation: op, resourceType: t, name: n)
        }
        #expect(can("User:alice", .read, .topic, "orders"))
        #expect(can("User:alice", .describe, .topic, "orders"))  // implied by READ
        #expect(!can("User:alice", .write, .topic, "orders"))
        #expect(!can("User:bob", .read, .topic, "orders"))
        #expect(can("User:alice", .write, .topic, "logs-app"))
        #expect(!can("User:alice", .write, .topic, "logs-secret"))  // DENY wins
        #expect(can("User:carol", .read, .group, "any-group"))  // wildcard resource and principal
        #expect(!can("User:carol", .read, .topic, "unlisted"))  // no ACL, allow.everyone.if.no.acl.found=false
        #expect(can("User:admin", .delete, .topic, "orders"))  // super user
        #expect(!can("User:bob", .read, .topic, "hosted"))
        #expect(can("User:bob", .read, .topic, "hosted", host: "10.0.0.1"))
        let open = Authorizer(superUsers: [], allowEveryoneIfNoAclFound: true)
        #expect(open.authorize(principal: "User:x", host: "h", operation: .write, resourceType: .topic, name: "t"))
    }

    @Test func authorizeAnyForIdempotentProducers() {
        let authorizer = Authorizer(superUsers: [], allowEveryoneIfNoAclFound: false)
        authorizer.add([binding(.topic, "t", .prefixed, "User:alice", .write), binding(.topic, "t", .literal, "User:bob", .read)])
        #expect(authorizer.authorizeAny(principal: "User:alice", host: "h", operation: .write, resourceType: .topic))
        #expect(!authorizer.authorizeAny(principal: "User:bob", host: "h", operation: .write, resourceType: .topic))
        authorizer.add([binding(.topic, "*", .literal, "User:alice", .write, .deny)])
        #expect(!authorizer.authorizeAny(principal: "User:alice", host: "h", operation: .write, resourceType: .topic))
    }

    @Test func filtersDeleteAndPersistence() throws {
        let authorizer = Authorizer(superUsers: [], allowEveryoneIfNoAclFound: false)
        authorizer.add([binding(.topic, "a b", .literal, "User:alice", .read), binding(.topic, "p", .prefixed, "User:bob", .write),
                        binding(.topic, "a b", .literal, "User:alice", .read)])
        #expect(authorizer.all.count == 2)
        let copy = Authorizer(superUsers: [], allowEveryoneIfNoAclFound: false)
        try copy.load(authorizer.text)
        #expect(copy.all == authorizer.all)
        let match = AclFilter(resourceType: .topic, resourceName: "p-topic", patternType: .match, principal: nil, host: nil, operation: .any, permission: .any)
        #expect(copy.all.filter { match.matches($0) }.map(\.principal) == ["User:bob"])
        let removed = copy.remove(matching: AclFilter(resourceType: .any, resourceName: nil, patternType: .any, principal: "User:alice", host: nil, operation: .any, permission: .any))
        #expect(removed.count == 1 && copy.all.count == 1)
        #expect(binding(.cluster, "x", .literal, "User:a", .alter).invalidReason != nil)
        #expect(binding(.topic, "t", .literal, "alice", .read).invalidReason != nil)
        #expect(throws: Authorizer.FormatError.self) { try copy.load("1\t2\n") }
    }
}
