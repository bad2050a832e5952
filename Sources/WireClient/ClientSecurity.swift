import Foundation
public import NIOSSL
public import Security

/// How a client connection is secured, from Kafka's client config names — librdkafka's (what
/// kcat and confluent-kafka take with `-X key=value`) and the Java client's (what a
/// `--command-config client.properties` file holds):
///
/// | key | values |
/// | --- | --- |
/// | `security.protocol` | PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL |
/// | `ssl.ca.location` / `ssl.truststore.location` (+ `ssl.truststore.type=PEM`) | CA certificates (PEM); default: the system's |
/// | `ssl.certificate.location` + `ssl.key.location` (+ `ssl.key.password`), or `ssl.keystore.location` (+ `ssl.keystore.type=PEM`, key and chain in one PEM) | client certificate for mTLS |
/// | `ssl.endpoint.identification.algorithm` | https (default: the broker's certificate must name the host) or none |
/// | `sasl.mechanism` (`sasl.mechanisms`) | PLAIN (default), SCRAM-SHA-256, SCRAM-SHA-512 |
/// | `sasl.username`, `sasl.password`, or `sasl.jaas.config` (`... required username="u" password="p";`) | the SASL credential |
public struct ClientSecurity: Sendable, Equatable {
    /// Kafka's `security.protocol` values, shared with the broker's listeners.
    public typealias SecurityProtocol = Security.SecurityProtocol

    public struct SASL: Sendable, Equatable {
        public var mechanism: SaslMechanism
        public var username: String
        public var password: String
        /// Kafka's name of the mechanism (`sasl.mechanism`).
        public var mechanismName: String { mechanism.rawValue }
    }

    public var securityProtocol: SecurityProtocol
    /// The TLS context, built once and shared by every connection (nil: no TLS).
    public var tlsContext: NIOSSLContext?
    /// Whether the broker's certificate must name the host connected to.
    public var verifyHostname: Bool
    public var sasl: SASL?

    /// The same settings: the TLS context compared by identity.
    public static func == (lhs: ClientSecurity, rhs: ClientSecurity) -> Bool {
        lhs.securityProtocol == rhs.securityProtocol && lhs.tlsContext === rhs.tlsContext && lhs.verifyHostname == rhs.verifyHostname
            && lhs.sasl == rhs.sasl
    }

    public static let plaintext = ClientSecurity(securityProtocol: .plaintext, tlsContext: nil, verifyHostname: false, sasl: nil)

    private init(securityProtocol: SecurityProtocol, tlsContext: NIOSSLContext?, verifyHostname: Bool, sasl: SASL?) {
        self.securityProtocol = securityProtocol
        self.tlsContext = tlsContext
        self.verifyHostname = verifyHostname
        self.sasl = sasl
    }

    /// Every key this type reads; any other key is an error (a typo must not silently mean plaintext).
    public static let knownKeys: Set<String> = [
        "security.protocol", "ssl.ca.location", "ssl.truststore.location", "ssl.truststore.type", "ssl.certificate.location",
        "ssl.key.location", "ssl.key.password", "ssl.keystore.location", "ssl.keystore.type", "ssl.endpoint.identification.algorithm",
        "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password", "sasl.jaas.config",
    ]

    /// Builds the settings from config properties.
    ///
    /// - Throws: `ClientError(.invalidArgument)` for an unknown key, a bad value, a missing
    ///   credential or an unreadable certificate.
    public init(properties: [String: String]) throws(ClientError) {
        for key in properties.keys where !Self.knownKeys.contains(key) {
            throw ClientError(.invalidArgument, "unknown client config '\(key)' (known: \(Self.knownKeys.sorted().joined(separator: ", ")))")
        }
        let protocolName = (properties["security.protocol"] ?? "PLAINTEXT").uppercased()
        guard let securityProtocol = SecurityProtocol(rawValue: protocolName) else {
            throw ClientError(.invalidArgument, "security.protocol=\(protocolName): expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
        }
        self.securityProtocol = securityProtocol
        for key in ["ssl.truststore.type", "ssl.keystore.type"] {
            if let type = properties[key], type.uppercased() != "PEM" {
                throw ClientError(.invalidArgument, "\(key)=\(type): only PEM is supported")
            }
        }
        switch (properties["ssl.endpoint.identification.algorithm"] ?? "https").lowercased() {
        case "https": verifyHostname = true
        case "none", "": verifyHostname = false
        case let other: throw ClientError(.invalidArgument, "ssl.endpoint.identification.algorithm=\(other): expected https or none")
        }
        if securityProtocol.usesTLS {
            tlsContext = try Self.tlsContext(properties, verifyHostname: verifyHostname)
        } else {
            tlsContext = nil
        }
        if securityProtocol.usesSASL {
            sasl = try Self.sasl(properties)
        } else {
            sasl = nil
        }
    }

    /// Reads a Java-style properties file (`key=value` or `key: value`, `#`/`!` comments,
    /// backslash line continuations) as `--command-config` takes it.
    public static func readProperties(file path: String) throws(ClientError) -> [String: String] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ClientError(.invalidArgument, "cannot read config file \(path): \(error.localizedDescription)")
        }
        var result: [String: String] = [:]
        var pending = ""
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            var line = pending + rawLine.trimmingCharacters(in: .whitespaces)
            pending = ""
            if line.hasSuffix("\\") {
                line.removeLast()
                pending = line
                continue
            }
            guard !line.isEmpty, !line.hasPrefix("#"), !line.hasPrefix("!") else { continue }
            guard let separator = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw ClientError(.invalidArgument, "\(path): expected key=value, got '\(line)'")
            }
            let key = line[..<separator].trimmingCharacters(in: .whitespaces)
            result[key] = line[line.index(after: separator)...].trimmingCharacters(in: .whitespaces)
        }
        return result
    }

    /// Parses `KEY=VALUE` (one `-X` argument).
    public static func parseProperty(_ text: String) throws(ClientError) -> (String, String) {
        guard let separator = text.firstIndex(of: "="), separator != text.startIndex else {
            throw ClientError(.invalidArgument, "-X \(text): expected KEY=VALUE")
        }
        return (String(text[..<separator]), String(text[text.index(after: separator)...]))
    }

    private static func tlsContext(_ properties: [String: String], verifyHostname: Bool) throws(ClientError) -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = verifyHostname ? .fullVerification : .noHostnameVerification
        do {
            if let ca = properties["ssl.ca.location"] ?? properties["ssl.truststore.location"] {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            }
            let password = properties["ssl.key.password"]
            func key(_ path: String) throws -> NIOSSLPrivateKey {
                if let password {
                    return try NIOSSLPrivateKey(file: path, format: .pem) { setter in setter(Array(password.utf8)) }
                }
                return try NIOSSLPrivateKey(file: path, format: .pem)
            }
            if let certificate = properties["ssl.certificate.location"] {
                guard let keyPath = properties["ssl.key.location"] else {
                    throw ClientError(.invalidArgument, "ssl.certificate.location needs ssl.key.location")
                }
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
                tls.privateKey = .privateKey(try key(keyPath))
            } else if let keystore = properties["ssl.keystore.location"] {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(keystore).map { .certificate($0) }
                tls.privateKey = .privateKey(try key(keystore))
            }
            return try NIOSSLContext(configuration: tls)
        } catch let error as ClientError {
            throw error
        } catch {
            throw ClientError(.invalidArgument, "TLS setup: \(error)")
        }
    }

    private static func sasl(_ properties: [String: String]) throws(ClientError) -> SASL {
        let name = (properties["sasl.mechanism"] ?? properties["sasl.mechanisms"] ?? "PLAIN").uppercased()
        guard let mechanism = SaslMechanism(rawValue: name) else {
            throw ClientError(.invalidArgument, "sasl.mechanism=\(name): expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        }
        var username = properties["sasl.username"]
        var password = properties["sasl.password"]
        if let jaas = properties["sasl.jaas.config"] {
            username = username ?? jaasOption(jaas, "username")
            password = password ?? jaasOption(jaas, "password")
        }
        guard let username, let password else {
            throw ClientError(.invalidArgument, "SASL needs sasl.username and sasl.password (or sasl.jaas.config with username= and password=)")
        }
        return SASL(mechanism: mechanism, username: username, password: password)
    }

    /// `username="alice"` out of `org.apache...LoginModule required username="alice" password="x";`.
    static func jaasOption(_ jaas: String, _ option: String) -> String? {
        guard let start = jaas.range(of: option + "=\"") else { return nil }
        guard let end = jaas[start.upperBound...].firstIndex(of: "\"") else { return nil }
        return String(jaas[start.upperBound..<end])
    }
}
