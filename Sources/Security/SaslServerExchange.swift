import Foundation

/// Where a SASL exchange looks up users: SCRAM credentials (salted, from the credential store) and
/// PLAIN users (from `petrel.sasl.plain.users.file`).
public protocol SaslCredentialLookup: Sendable {
    func scramCredential(user: String, mechanism: SaslMechanism) -> ScramCredential?
    /// Whether `password` is `user`'s PLAIN password (compared in constant time).
    func plainPasswordMatches(user: String, password: [UInt8]) -> Bool
}

/// The server side of one SASL authentication, sans IO: feed it the client's tokens (the bytes of
/// SaslAuthenticate requests, or of legacy unframed tokens), send back what it returns.
/// PLAIN (RFC 4616) takes one token; SCRAM (RFC 5802/7677) takes client-first then client-final.
public struct SaslServerExchange: Sendable {
    public enum Step: Sendable, Equatable {
        /// Send this challenge and wait for the next token.
        case challenge([UInt8])
        /// Authenticated as `user` (the principal is `User:<user>`); send `final` (may be empty).
        case authenticated(user: String, final: [UInt8])
        /// Wrong credentials or a malformed token: answer SASL_AUTHENTICATION_FAILED and close.
        case failed(String)
    }

    private enum State {
        case initial
        case scramFinal(user: String, credential: ScramCredential, clientFirstBare: String, serverFirst: String, nonce: String, gs2Header: String)
        case done
    }

    public let mechanism: SaslMechanism
    private let credentials: any SaslCredentialLookup
    private var state = State.initial
    /// Fixed server nonce for tests; random otherwise.
    private let serverNonce: String?

    public init(mechanism: SaslMechanism, credentials: any SaslCredentialLookup, serverNonce: String? = nil) {
        self.mechanism = mechanism
        self.credentials = credentials
        self.serverNonce = serverNonce
    }

    /// Longest token accepted; real PLAIN and SCRAM messages are a few hundred bytes.
    public static let tokenBytesMax = 8192

    public mutating func evaluate(_ token: [UInt8]) -> Step {
        guard token.count <= Self.tokenBytesMax else { return fail("SASL token of \(token.count) bytes is too large") }
        switch state {
        case .done:
            return fail("SASL exchange already complete")
        case .initial:
            return mechanism == .plain ? plain(token) : scramFirst(token)
        case .scramFinal(let user, let credential, let clientFirstBare, let serverFirst, let nonce, let gs2Header):
            return scramFinal(token, user: user, credential: credential, clientFirstBare: clientFirstBare, serverFirst: serverFirst, nonce: nonce, gs2Header: gs2Header)
        }
    }

    private mutating func fail(_ reason: String) -> Step {
        state = .done
        return .failed(reason)
    }

    // MARK: PLAIN

    private mutating func plain(_ token: [UInt8]) -> Step {
        // [authzid] NUL authcid NUL passwd
        let parts = token.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let authzid = String(bytes: parts[0], encoding: .utf8), let user = String(bytes: parts[1], encoding: .utf8),
            !user.isEmpty
        else { return fail("Invalid SASL/PLAIN request: expected 3 tokens") }
        guard authzid.isEmpty || authzid == user else { return fail("Authentication failed: Client requested an authorization id that is different from username") }
        guard credentials.plainPasswordMatches(user: user, password: Array(parts[2])) else {
            return fail("Authentication failed: Invalid username or password")
        }
        state = .done
        return .authenticated(user: user, final: [])
    }

    // MARK: SCRAM

    private mutating func scramFirst(_ token: [UInt8]) -> Step {
        guard let text = String(bytes: token, encoding: .utf8) else { return fail("Invalid SCRAM client first message") }
        // gs2-header: "n,," or "n,a=authzid," ("y"/"p" ask for channel binding, which Kafka does not support).
        let fields = text.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3, fields[0] == "n" else { return fail("Invalid SCRAM client first message: unsupported GS2 header") }
        let authzid = fields[1].hasPrefix("a=") ? Self.saslName(fields[1].dropFirst(2)) : (fields[1].isEmpty ? "" : nil)
        guard let authzid else { return fail("Invalid SCRAM client first message: bad authzid") }
        let gs2Header = "n,\(fields[1]),"
        let clientFirstBare = String(fields[2])
        var user: String?
        var clientNonce: String?
        for attribute in clientFirstBare.split(separator: ",", omittingEmptySubsequences: false) {
            if attribute.hasPrefix("n=") { user = Self.saslName(attribute.dropFirst(2)) }
            if attribute.hasPrefix("r=") { clientNonce = String(attribute.dropFirst(2)) }
            if attribute.hasPrefix("m=") { return fail("Invalid SCRAM client first message: mandatory extension not supported") }
        }
        guard let user, !user.isEmpty, let clientNonce, !clientNonce.isEmpty, !clientNonce.contains(",") else {
            return fail("Invalid SCRAM client first message")
        }
        guard authzid.isEmpty || authzid == user else {
            return fail("Authentication failed: Client requested an authorization id that is different from username")
        }
        guard let credential = credentials.scramCredential(user: user, mechanism: mechanism) else {
            return fail("Authentication failed: Invalid user credentials")
        }
        let nonce = clientNonce + (serverNonce ?? Self.randomNonce())
        let serverFirst = "r=\(nonce),s=\(Scram.base64(credential.salt)),i=\(credential.iterations)"
        state = .scramFinal(user: user, credential: credential, clientFirstBare: clientFirstBare, serverFirst: serverFirst, nonce: nonce, gs2Header: gs2Header)
        return .challenge(Array(serverFirst.utf8))
    }

    private mutating func scramFinal(
        _ token: [UInt8], user: String, credential: ScramCredential, clientFirstBare: String, serverFirst: String, nonce: String, gs2Header: String
    ) -> Step {
        guard let text = String(bytes: token, encoding: .utf8), let proofRange = text.range(of: ",p=") else {
            return fail("Invalid SCRAM client final message")
        }
        let withoutProof = String(text[..<proofRange.lowerBound])
        guard let proof = Scram.unbase64(text[proofRange.upperBound...]) else { return fail("Invalid SCRAM client final message: bad proof") }
        var channelBinding: Substring?
        var finalNonce: Substring?
        for attribute in withoutProof.split(separator: ",") {
            if attribute.hasPrefix("c=") { channelBinding = attribute.dropFirst(2) }
            if attribute.hasPrefix("r=") { finalNonce = attribute.dropFirst(2) }
        }
        guard let channelBinding, Scram.unbase64(channelBinding) == Array(gs2Header.utf8) else {
            return fail("Invalid SCRAM client final message: channel binding mismatch")
        }
        // Kafka checks only that the final nonce ends with the server-first one: librdkafka 2.0
        // sends its client nonce twice ("r=" + client nonce + the server's combined nonce).
        guard let finalNonce, finalNonce.hasSuffix(nonce) else { return fail("Invalid SCRAM client final message: nonce mismatch") }
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
        let clientSignature = Scram.hmac(mechanism, key: credential.storedKey, authMessage)
        guard proof.count == clientSignature.count else { return fail("Authentication failed: Invalid user credentials") }
        let clientKey = zip(proof, clientSignature).map { $0 ^ $1 }
        guard Scram.constantTimeEqual(Scram.hash(mechanism, clientKey), credential.storedKey) else {
            return fail("Authentication failed: Invalid user credentials")
        }
        let serverSignature = Scram.hmac(mechanism, key: credential.serverKey, authMessage)
        state = .done
        return .authenticated(user: user, final: Array("v=\(Scram.base64(serverSignature))".utf8))
    }

    /// 32 random alphanumerics, as Kafka's: some clients (librdkafka 2.0) mishandle '+' and '/' in nonces.
    static func randomNonce() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<32).map { _ in alphabet.randomElement(using: &generator)! })
    }

    /// RFC 5802 saslname: "=2C" is ",", "=3D" is "="; any other "=" is invalid.
    static func saslName(_ text: Substring) -> String? {
        var result = ""
        var index = text.startIndex
        while index < text.endIndex {
            if text[index] == "=" {
                let code = text[index...].prefix(3)
                if code == "=2C" { result.append(",") } else if code == "=3D" { result.append("=") } else { return nil }
                index = text.index(index, offsetBy: 3)
            } else {
                result.append(text[index])
                index = text.index(after: index)
            }
        }
        return result
    }
}
