import Crypto
import Foundation

/// The SASL mechanisms Petrel serves, with Kafka's names (`sasl.enabled.mechanisms`).
public enum SaslMechanism: String, Sendable, CaseIterable, Hashable {
    case plain = "PLAIN"
    case scramSha256 = "SCRAM-SHA-256"
    case scramSha512 = "SCRAM-SHA-512"

    /// The SCRAM mechanisms by KIP-554's `Mechanism` code (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512).
    public init?(scramCode: Int8) {
        switch scramCode {
        case 1: self = .scramSha256
        case 2: self = .scramSha512
        default: return nil
        }
    }

    /// KIP-554's code for a SCRAM mechanism, 0 (UNKNOWN) for PLAIN.
    public var scramCode: Int8 {
        switch self {
        case .plain: 0
        case .scramSha256: 1
        case .scramSha512: 2
        }
    }

    public var isScram: Bool { self != .plain }
}

/// A SCRAM credential as RFC 5802 stores it: never the password, only the salt, the iteration
/// count and the keys derived from the salted password.
public struct ScramCredential: Sendable, Equatable {
    public var salt: [UInt8]
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]
    public var iterations: Int

    /// Kafka's bounds on `iterations` (ScramMechanism: 4096 ... 16384).
    public static let iterationsRange = 4096...16384

    public init(salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8], iterations: Int) {
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
        self.iterations = iterations
    }

    /// Derives the credential for `password` (what kafka-configs.sh --add-config does client side).
    public init(mechanism: SaslMechanism, password: String, salt: [UInt8]? = nil, iterations: Int = 4096) {
        let salt = salt ?? Scram.randomBytes(32)
        let salted = Scram.saltedPassword(mechanism, password: Array(password.utf8), salt: salt, iterations: iterations)
        self.init(mechanism: mechanism, saltedPassword: salted, salt: salt, iterations: iterations)
    }

    /// From a salted password (KIP-554's AlterUserScramCredentials carries this, not the password).
    public init(mechanism: SaslMechanism, saltedPassword: [UInt8], salt: [UInt8], iterations: Int) {
        let clientKey = Scram.hmac(mechanism, key: saltedPassword, Array("Client Key".utf8))
        self.salt = salt
        self.storedKey = Scram.hash(mechanism, clientKey)
        self.serverKey = Scram.hmac(mechanism, key: saltedPassword, Array("Server Key".utf8))
        self.iterations = iterations
    }
}

/// RFC 5802 primitives over SHA-256 / SHA-512.
public enum Scram {
    public static func hash(_ mechanism: SaslMechanism, _ data: [UInt8]) -> [UInt8] {
        switch mechanism {
        case .scramSha512: Array(SHA512.hash(data: data))
        default: Array(SHA256.hash(data: data))
        }
    }

    public static func hmac(_ mechanism: SaslMechanism, key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        let key = SymmetricKey(data: key)
        switch mechanism {
        case .scramSha512: return Array(HMAC<SHA512>.authenticationCode(for: data, using: key))
        default: return Array(HMAC<SHA256>.authenticationCode(for: data, using: key))
        }
    }

    /// `Hi(str, salt, i)` of RFC 5802: PBKDF2 with HMAC and one output block.
    public static func saltedPassword(_ mechanism: SaslMechanism, password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        var u = hmac(mechanism, key: password, salt + [0, 0, 0, 1])
        var result = u
        if iterations > 1 {
            for _ in 2...iterations {
                u = hmac(mechanism, key: password, u)
                for index in result.indices { result[index] ^= u[index] }
            }
        }
        return result
    }

    public static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// Compares in time independent of where the first difference is.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
    static func unbase64(_ text: Substring) -> [UInt8]? { Data(base64Encoded: String(text)).map { Array($0) } }
}
