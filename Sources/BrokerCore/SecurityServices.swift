import DiskIO
import Foundation
import KafkaWire
import Logging
import NIOCore
public import Security
import Synchronization

/// The broker's users: SCRAM credentials persisted (salted, never a password) in
/// `<data dir>/scram-credentials.properties`, PLAIN users from `petrel.sasl.plain.users.file`.
public final class SecurityServices: Sendable {
    public let credentials = CredentialStore()
    private let io: any FileIO
    private let logger: Logger
    private let path: String
    private let plainUsersFile: String?
    /// Serializes credential changes and their persistence.
    private let writeLock = Mutex(())
    /// Kafka's StandardAuthorizer rules when `authorizer.class.name` is set, else nil (everything allowed).
    public let authorizer: Authorizer?
    private let aclPath: String
    private let authorizerClass: String?

    /// Authorizer class names accepted for `authorizer.class.name`.
    static let authorizerClasses = ["org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer"]

    init(configuration: BrokerConfiguration, io: any FileIO, logger: Logger) {
        self.io = io
        self.logger = logger
        self.path = configuration.dataDirectory + "/" + CredentialStore.scramFileName
        self.plainUsersFile = configuration.staticConfigs["petrel.sasl.plain.users.file"]
        self.aclPath = configuration.dataDirectory + "/acls.properties"
        let name = configuration.staticConfigs["authorizer.class.name"].flatMap { $0.isEmpty ? nil : $0 }
        self.authorizerClass = name
        if name != nil {
            authorizer = Authorizer(
                superUsers: Authorizer.parseSuperUsers(configuration.staticConfigs["super.users"] ?? ""),
                allowEveryoneIfNoAclFound: configuration.staticConfigs["allow.everyone.if.no.acl.found"]?.lowercased() == "true")
        } else {
            authorizer = nil
        }
    }

    /// Writes the ACLs; returns an error text on failure.
    func persistAcls() -> String? {
        guard let authorizer else { return nil }
        return writeLock.withLock { _ in
            do {
                try io.writeFileAtomically(aclPath, Array(authorizer.text.utf8))
                return nil
            } catch {
                logger.error("could not persist ACLs", metadata: ["error": "\(error)"])
                return "could not persist ACLs: \(error)"
            }
        }
    }

    /// Reads the SCRAM credentials and the PLAIN users file.
    /// - Throws: when a file exists but cannot be read or parsed (the broker does not start).
    func load() throws {
        if let authorizerClass {
            guard Self.authorizerClasses.contains(authorizerClass) else {
                throw AuthorizerError(description: "authorizer.class.name=\(authorizerClass) is not supported (use \(Self.authorizerClasses[0]))")
            }
            if let authorizer, let bytes = try io.readWholeFile(aclPath) {
                try authorizer.load(String(decoding: bytes, as: UTF8.self))
            }
            logger.info("authorizer on", metadata: ["acls": "\(authorizer?.all.count ?? 0)", "super.users": "\(authorizer?.superUsers.sorted() ?? [])"])
        }
        if let bytes = try io.readWholeFile(path) {
            try credentials.loadScram(String(decoding: bytes, as: UTF8.self))
        }
        if let plainUsersFile {
            let text = try String(contentsOfFile: plainUsersFile, encoding: .utf8)
            let users = CredentialStore.parsePlainUsers(text)
            credentials.setPlainUsers(users)
            logger.info("loaded PLAIN users", metadata: ["file": "\(plainUsersFile)", "users": "\(users.count)"])
        }
    }

    struct AuthorizerError: Error, CustomStringConvertible {
        var description: String
    }

    private func persist() throws(DiskError) {
        try io.writeFileAtomically(path, Array(credentials.scramText.utf8))
    }

    // MARK: KIP-554

    func describe(_ request: DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse {
        var response = DescribeUserScramCredentialsResponse(throttleTimeMs: 0, errorCode: 0, errorMessage: nil, results: [])
        let all = credentials.scramUsers()
        func result(_ user: String, _ infos: [(SaslMechanism, Int)]) -> DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult {
            .init(user: user, errorCode: 0, errorMessage: nil, credentialInfos: infos.map { .init(mechanism: $0.0.scramCode, iterations: Int32($0.1)) })
        }
        guard let users = request.users, !users.isEmpty else {
            response.results = all.map { result($0.user, $0.credentials) }
            return response
        }
        var counts: [String: Int] = [:]
        for user in users { counts[user.name, default: 0] += 1 }
        var seen: Set<String> = []
        for user in users where seen.insert(user.name).inserted {
            if counts[user.name]! > 1 {
                response.results.append(.init(user: user.name, errorCode: KafkaErrorCode.duplicateResource.rawValue, errorMessage: "Cannot describe SCRAM credentials for the same user twice in a single request: \(user.name)"))
            } else if let found = all.first(where: { $0.user == user.name }) {
                response.results.append(result(found.user, found.credentials))
            } else {
                response.results.append(.init(user: user.name, errorCode: KafkaErrorCode.resourceNotFound.rawValue, errorMessage: "Attempt to describe a user credential that does not exist: \(user.name)"))
            }
        }
        return response
    }

    /// Runs on the admin queue (it writes the credential file).
    func alter(_ request: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse {
        writeLock.withLock { _ in
            var results: [String: (KafkaErrorCode, String?)] = [:]
            var order: [String] = []
            func note(_ user: String, _ code: KafkaErrorCode, _ message: String?) {
                if results[user] == nil { order.append(user) }
                if results[user] == nil || results[user]!.0 == .none { results[user] = (code, message) }
            }
            // Kafka: a user named twice for the same mechanism in one request is DUPLICATE_RESOURCE.
            var perMechanism: [String: Int] = [:]
            for d in request.deletions { perMechanism["\(d.name)\u{0}\(d.mechanism)", default: 0] += 1 }
            for u in request.upsertions { perMechanism["\(u.name)\u{0}\(u.mechanism)", default: 0] += 1 }
            var changed = false
            for deletion in request.deletions {
                guard !deletion.name.isEmpty else { note("", .unacceptableCredential, "Username must not be empty"); continue }
                guard let mechanism = SaslMechanism(scramCode: deletion.mechanism) else {
                    note(deletion.name, .unsupportedSaslMechanism, "Unknown SCRAM mechanism"); continue
                }
                if perMechanism["\(deletion.name)\u{0}\(deletion.mechanism)"]! > 1 {
                    note(deletion.name, .duplicateResource, "A user credential cannot be altered twice in the same request"); continue
                }
                if credentials.deleteScram(user: deletion.name, mechanism: mechanism) {
                    changed = true
                    note(deletion.name, .none, nil)
                } else {
                    note(deletion.name, .resourceNotFound, "Attempt to delete a user credential that does not exist")
                }
            }
            for upsertion in request.upsertions {
                guard !upsertion.name.isEmpty else { note("", .unacceptableCredential, "Username must not be empty"); continue }
                guard let mechanism = SaslMechanism(scramCode: upsertion.mechanism) else {
                    note(upsertion.name, .unsupportedSaslMechanism, "Unknown SCRAM mechanism"); continue
                }
                if perMechanism["\(upsertion.name)\u{0}\(upsertion.mechanism)"]! > 1 {
                    note(upsertion.name, .duplicateResource, "A user credential cannot be altered twice in the same request"); continue
                }
                guard ScramCredential.iterationsRange.contains(Int(upsertion.iterations)) else {
                    note(upsertion.name, .unacceptableCredential, "Iterations \(upsertion.iterations) not in \(ScramCredential.iterationsRange)"); continue
                }
                let salt = Array(upsertion.salt.readableBytesView)
                let salted = Array(upsertion.saltedPassword.readableBytesView)
                guard !salt.isEmpty, !salted.isEmpty, salt.count <= 1024, salted.count <= 1024 else {
                    note(upsertion.name, .unacceptableCredential, "Salt and salted password must be non-empty"); continue
                }
                credentials.upsertScram(
                    user: upsertion.name, mechanism: mechanism,
                    credential: ScramCredential(mechanism: mechanism, saltedPassword: salted, salt: salt, iterations: Int(upsertion.iterations)))
                changed = true
                note(upsertion.name, .none, nil)
            }
            if changed {
                do {
                    try persist()
                } catch {
                    logger.error("could not persist SCRAM credentials", metadata: ["error": "\(error)"])
                    for user in order where results[user]!.0 == .none { results[user] = (.kafkaStorageError, "could not persist credentials: \(error)") }
                }
            }
            return AlterUserScramCredentialsResponse(
                throttleTimeMs: 0, results: order.map { .init(user: $0, errorCode: results[$0]!.0.rawValue, errorMessage: results[$0]!.1) })
        }
    }
}
