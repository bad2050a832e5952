import Foundation

/// The client side of a SASL exchange (PLAIN, SCRAM-SHA-256/512 of RFC 5802), as a Kafka client
/// runs it inside SaslAuthenticate: `start()` gives the first token, `evaluate` each server token.
public struct SaslClientExchange: Sendable {
    public enum Step: Sendable, Equatable {
        /// Send this token in the next SaslAuthenticate.
        case send([UInt8])
        /// The server is authenticated (SCRAM: its signature checked); nothing more to send.
        case done
        /// The exchange failed; the reason is for the user.
        case failed(String)
    }

    public let mechanism: SaslMechanism
    private let user: String
    private let password: String
    private var clientNonce: String
    private enum State: Sendable {
        case initial
        case clientFirstSent(bare: String)
        case clientFinalSent(serverSignature: [UInt8])
        case finished
    }
    private var state = State.initial

    /// - Parameter clientNonce: fixed for tests; default 32 random alphanumerics.
    public init(mechanism: SaslMechanism, user: String, password: String, clientNonce: String? = nil) {
        self.mechanism = mechanism
        self.user = user
        self.password = password
        self.clientNonce = clientNonce ?? SaslServerExchange.randomNonce()
    }

    /// The first token: PLAIN's `NUL user NUL password`, SCRAM's client-first message.
    public mutating func start() -> [UInt8] {
        switch mechanism {
        case .plain:
            state = .finished
            return [0] + Array(user.utf8) + [0] + Array(password.utf8)
        case .scramSha256, .scramSha512:
            let name = user.replacingOccurrences(of: "=", with: "=3D").replacingOccurrences(of: ",", with: "=2C")
            let bare = "n=\(name),r=\(clientNonce)"
            state = .clientFirstSent(bare: bare)
            return Array("n,,\(bare)".utf8)
        }
    }

    /// The reply to the server's token (PLAIN: its empty final token).
    public mutating func evaluate(_ token: [UInt8]) -> Step {
        switch state {
        case .initial:
            return .failed("SASL exchange not started")
        case .finished:
            return .done
        case .clientFirstSent(let bare):
            return clientFinal(serverFirst: token, clientFirstBare: bare)
        case .clientFinalSent(let expected):
            state = .finished
            guard let text = String(bytes: token, encoding: .utf8) else { return .failed("invalid SCRAM server final message") }
            if text.hasPrefix("e=") { return .failed("SCRAM: server error \(text.dropFirst(2))") }
            guard text.hasPrefix("v="), let signature = Scram.unbase64(text.dropFirst(2)), Scram.constantTimeEqual(signature, expected) else {
                return .failed("SCRAM: the server's signature does not match (wrong server or credential)")
            }
            return .done
        }
    }

    private mutating func clientFinal(serverFirst token: [UInt8], clientFirstBare: String) -> Step {
        guard let serverFirst = String(bytes: token, encoding: .utf8) else { return .failed("invalid SCRAM server first message") }
        var nonce: Substring?
        var salt: [UInt8]?
        var iterations: Int?
        for attribute in serverFirst.split(separator: ",") {
            if attribute.hasPrefix("r=") { nonce = attribute.dropFirst(2) }
            if attribute.hasPrefix("s=") { salt = Scram.unbase64(attribute.dropFirst(2)) }
            if attribute.hasPrefix("i=") { iterations = Int(attribute.dropFirst(2)) }
        }
        guard let nonce, nonce.hasPrefix(clientNonce), nonce.count > clientNonce.count, let salt, let iterations,
            ScramCredential.iterationsRange.contains(iterations)
        else { return .failed("invalid SCRAM server first message") }
        let salted = Scram.saltedPassword(mechanism, password: Array(password.utf8), salt: salt, iterations: iterations)
        let clientKey = Scram.hmac(mechanism, key: salted, Array("Client Key".utf8))
        let storedKey = Scram.hash(mechanism, clientKey)
        let withoutProof = "c=\(Scram.base64(Array("n,,".utf8))),r=\(nonce)"
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
        let clientSignature = Scram.hmac(mechanism, key: storedKey, authMessage)
        let proof = zip(clientKey, clientSignature).map { $0 ^ $1 }
        let serverKey = Scram.hmac(mechanism, key: salted, Array("Server Key".utf8))
        state = .clientFinalSent(serverSignature: Scram.hmac(mechanism, key: serverKey, authMessage))
        return .send(Array("\(withoutProof),p=\(Scram.base64(proof))".utf8))
    }
}
