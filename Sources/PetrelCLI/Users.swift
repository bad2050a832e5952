import ArgumentParser
import Foundation
import KafkaWire
import NIOCore
import Security
import WireClient

/// `petrel users`: SCRAM users. With `--data-dir` it edits the credential file of a stopped broker
/// (like Kafka's `kafka-storage format --add-scram`, for the first admin user); with `--bootstrap`
/// it talks to a running broker over a PLAINTEXT listener with DescribeUserScramCredentials /
/// AlterUserScramCredentials (KIP-554, like `kafka-configs --alter --add-config SCRAM-SHA-256=...`).
struct Users: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, add and delete SCRAM users (salted credentials; passwords are never stored).",
        subcommands: [UsersList.self, UsersAddScram.self, UsersDelete.self]
    )
}

struct UserTarget: ParsableArguments {
    @Option(help: "Data directory of a stopped broker (edits \(CredentialStore.scramFileName)).")
    var dataDir: String?
    @Option(help: "A running broker's PLAINTEXT listener, HOST:PORT (uses KIP-554 requests).")
    var bootstrap: String?

    func validate() throws {
        guard (dataDir == nil) != (bootstrap == nil) else { throw ValidationError("give exactly one of --data-dir or --bootstrap") }
    }

    var path: String { (dataDir ?? ".") + "/" + CredentialStore.scramFileName }

    func loadStore() throws -> CredentialStore {
        let store = CredentialStore()
        if let data = FileManager.default.contents(atPath: path) {
            do { try store.loadScram(String(decoding: data, as: UTF8.self)) } catch { throw ValidationError("\(path): \(error)") }
        }
        return store
    }

    func save(_ store: CredentialStore) throws {
        guard FileManager.default.fileExists(atPath: dataDir!) else { throw ValidationError("data directory \(dataDir!) does not exist") }
        let temporary = path + ".tmp"
        try Data(store.scramText.utf8).write(to: URL(fileURLWithPath: temporary))
        _ = rename(temporary, path)
    }

    func connection() -> ConnectionOptions {
        var options = ConnectionOptions()
        options.bootstrap = bootstrap!
        return options
    }
}

func parseMechanism(_ text: String) throws -> SaslMechanism {
    guard let mechanism = SaslMechanism(rawValue: text.uppercased()), mechanism.isScram else {
        throw ValidationError("mechanism must be SCRAM-SHA-256 or SCRAM-SHA-512")
    }
    return mechanism
}

struct UsersList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List SCRAM users with their mechanisms and iterations.")
    @OptionGroup var target: UserTarget

    func run() throws {
        var rows: [(String, [(String, Int)])] = []
        if target.dataDir != nil {
            rows = try target.loadStore().scramUsers().map { ($0.user, $0.credentials.map { ($0.0.rawValue, $0.1) }) }
        } else {
            let response = try target.connection().withClient { client in
                try await client.connection.send(DescribeUserScramCredentialsRequest(users: nil), version: 0)
            }
            try ClientError.check(response.errorCode, "describe SCRAM users")
            rows = response.results.map { result in
                (result.user, result.credentialInfos.map { (SaslMechanism(scramCode: $0.mechanism)?.rawValue ?? "UNKNOWN", Int($0.iterations)) })
            }
        }
        for (user, credentials) in rows.sorted(by: { $0.0 < $1.0 }) {
            print("\(user)\t" + credentials.map { "\($0.0)(iterations=\($0.1))" }.joined(separator: ","))
        }
    }
}

struct UsersAddScram: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-scram", abstract: "Add or replace a user's SCRAM credential.")
    @OptionGroup var target: UserTarget
    @Argument(help: "User name.") var user: String
    @Option(help: "SCRAM-SHA-256 or SCRAM-SHA-512.") var mechanism = "SCRAM-SHA-256"
    @Option(help: "The password (else read from the first line of standard input).") var password: String?
    @Option(help: "PBKDF2 iterations (4096...16384).") var iterations = 4096

    func run() throws {
        let mechanism = try parseMechanism(mechanism)
        guard ScramCredential.iterationsRange.contains(iterations) else { throw ValidationError("iterations must be in 4096...16384") }
        guard let password = password ?? readLine(strippingNewline: true), !password.isEmpty else { throw ValidationError("empty password") }
        let salt = Scram.randomBytes(32)
        if target.dataDir != nil {
            let store = try target.loadStore()
            store.upsertScram(user: user, mechanism: mechanism, credential: ScramCredential(mechanism: mechanism, password: password, salt: salt, iterations: iterations))
            try target.save(store)
        } else {
            let salted = Scram.saltedPassword(mechanism, password: Array(password.utf8), salt: salt, iterations: iterations)
            let upsertion = AlterUserScramCredentialsRequest.ScramCredentialUpsertion(
                name: user, mechanism: mechanism.scramCode, iterations: Int32(iterations), salt: ByteBuffer(bytes: salt), saltedPassword: ByteBuffer(bytes: salted))
            let response = try target.connection().withClient { client in
                try await client.connection.send(AlterUserScramCredentialsRequest(deletions: [], upsertions: [upsertion]), version: 0)
            }
            for result in response.results { try ClientError.check(result.errorCode, "add \(mechanism.rawValue) credential for \(result.user)") }
        }
        print("\(user): \(mechanism.rawValue) credential set")
    }
}

struct UsersDelete: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a user's SCRAM credential(s).")
    @OptionGroup var target: UserTarget
    @Argument(help: "User name.") var user: String
    @Option(help: "SCRAM-SHA-256 or SCRAM-SHA-512 (default: both).") var mechanism: String?

    func run() throws {
        let mechanisms = try mechanism.map { [try parseMechanism($0)] } ?? [.scramSha256, .scramSha512]
        if target.dataDir != nil {
            let store = try target.loadStore()
            let deleted = mechanisms.filter { store.deleteScram(user: user, mechanism: $0) }
            guard !deleted.isEmpty else { throw ValidationError("\(user) has no such SCRAM credential") }
            try target.save(store)
        } else {
            let user = user
            let existing = try target.connection().withClient { client in
                try await client.connection.send(DescribeUserScramCredentialsRequest(users: [.init(name: user)]), version: 0)
            }
            let present = Set(existing.results.first?.credentialInfos.map(\.mechanism) ?? [])
            let deletions = mechanisms.filter { present.contains($0.scramCode) }.map {
                AlterUserScramCredentialsRequest.ScramCredentialDeletion(name: user, mechanism: $0.scramCode)
            }
            guard !deletions.isEmpty else { throw ValidationError("\(user) has no such SCRAM credential") }
            let response = try target.connection().withClient { client in
                try await client.connection.send(AlterUserScramCredentialsRequest(deletions: deletions, upsertions: []), version: 0)
            }
            for result in response.results { try ClientError.check(result.errorCode, "delete credential of \(result.user)") }
        }
        print("\(user): deleted")
    }
}
