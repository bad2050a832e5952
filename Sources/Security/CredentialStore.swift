import Foundation
import Synchronization

/// The broker's users: SCRAM credentials (salted, managed with AlterUserScramCredentials or
/// `petrel users`, persisted by the caller as `text`) and PLAIN users (read from
/// `petrel.sasl.plain.users.file`). Thread-safe; no IO here.
public final class CredentialStore: SaslCredentialLookup {
    private struct State {
        var scram: [String: [SaslMechanism: ScramCredential]] = [:]
        var plain: [String: [UInt8]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// The name of the file in the data directory holding the SCRAM credentials.
    public static let scramFileName = "scram-credentials.properties"

    public func scramCredential(user: String, mechanism: SaslMechanism) -> ScramCredential? {
        state.withLock { $0.scram[user]?[mechanism] }
    }

    public func plainPasswordMatches(user: String, password: [UInt8]) -> Bool {
        // Unknown users still pay for a comparison, so timing does not tell which users exist.
        let expected = state.withLock { $0.plain[user] }
        let matches = Scram.constantTimeEqual(expected ?? password.map { ~$0 }, password)
        return expected != nil && matches
    }

    public func setPlainUsers(_ users: [String: String]) {
        state.withLock { $0.plain = users.mapValues { Array($0.utf8) } }
    }

    /// Users with SCRAM credentials and their mechanisms and iterations, sorted by user.
    public func scramUsers() -> [(user: String, credentials: [(SaslMechanism, Int)])] {
        state.withLock { s in
            s.scram.keys.sorted().map { user in
                (user, s.scram[user]!.sorted { $0.key.scramCode < $1.key.scramCode }.map { ($0.key, $0.value.iterations) })
            }
        }
    }

    public func upsertScram(user: String, mechanism: SaslMechanism, credential: ScramCredential) {
        state.withLock { $0.scram[user, default: [:]][mechanism] = credential }
    }

    /// Returns false when there was no such credential.
    @discardableResult
    public func deleteScram(user: String, mechanism: SaslMechanism) -> Bool {
        state.withLock { s in
            guard s.scram[user]?.removeValue(forKey: mechanism) != nil else { return false }
            if s.scram[user]?.isEmpty == true { s.scram[user] = nil }
            return true
        }
    }

    // MARK: Persistence format

    /// One line per credential: `user<TAB>mechanism<TAB>iterations<TAB>salt<TAB>storedKey<TAB>serverKey`
    /// with user percent-encoded and the byte strings in base64.
    public var scramText: String {
        var text = "# SCRAM credentials (salted; written by Petrel)\n"
        for (user, mechanisms) in state.withLock({ $0.scram }).sorted(by: { $0.key < $1.key }) {
            for (mechanism, c) in mechanisms.sorted(by: { $0.key.scramCode < $1.key.scramCode }) {
                let name = user.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? user
                text += "\(name)\t\(mechanism.rawValue)\t\(c.iterations)\t\(Scram.base64(c.salt))\t\(Scram.base64(c.storedKey))\t\(Scram.base64(c.serverKey))\n"
            }
        }
        return text
    }

    public struct FormatError: Error, CustomStringConvertible {
        public var line: Int
        public var description: String { "malformed SCRAM credential on line \(line)" }
    }

    /// Replaces the SCRAM credentials with those in `text` (as written by `scramText`).
    public func loadScram(_ text: String) throws(FormatError) {
        var scram: [String: [SaslMechanism: ScramCredential]] = [:]
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.isEmpty || line.hasPrefix("#") { continue }
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard f.count == 6, let user = String(f[0]).removingPercentEncoding, let mechanism = SaslMechanism(rawValue: String(f[1])),
                mechanism.isScram, let iterations = Int(f[2]), let salt = Scram.unbase64(f[3]), let storedKey = Scram.unbase64(f[4]),
                let serverKey = Scram.unbase64(f[5])
            else { throw FormatError(line: number + 1) }
            scram[user, default: [:]][mechanism] = ScramCredential(salt: salt, storedKey: storedKey, serverKey: serverKey, iterations: iterations)
        }
        state.withLock { $0.scram = scram }
    }

    /// Parses a PLAIN users file: `user=password` lines (Java properties style, `#` comments),
    /// or the JAAS form Kafka's PlainLoginModule takes, `user_alice="alice-secret"`.
    public static func parsePlainUsers(_ text: String) -> [String: String] {
        var users: [String: String] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("!") { continue }
            for entry in line.split(separator: " ") where entry.hasPrefix("user_") {
                guard let equals = entry.firstIndex(of: "=") else { continue }
                let user = String(entry[entry.index(entry.startIndex, offsetBy: 5)..<equals])
                var password = String(entry[entry.index(after: equals)...])
                if password.hasSuffix(";") { password.removeLast() }
                if password.hasPrefix("\""), password.hasSuffix("\""), password.count >= 2 { password = String(password.dropFirst().dropLast()) }
                users[user] = password
            }
            if line.hasPrefix("user_") || line.contains("LoginModule") || line.contains("user_") { continue }
            guard let equals = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else { continue }
            let user = line[..<equals].trimmingCharacters(in: .whitespaces)
            let password = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if !user.isEmpty { users[user] = password }
        }
        return users
    }
}
