import BrokerCore
import Foundation
import NIOSSL
import Security

/// Builds a listener's TLS and SASL settings from Kafka's config names, each looked up as
/// `listener.name.<listener>.<key>` first, then `<key>`:
/// - `ssl.keystore.type` (PEM only), `ssl.keystore.location` (a PEM file with the private key and
///   the certificate chain) or `ssl.keystore.certificate.chain` + `ssl.keystore.key` (PEM text),
///   `ssl.key.password` (encrypted keys);
/// - `ssl.truststore.type` (PEM), `ssl.truststore.location` or `ssl.truststore.certificates`;
/// - `ssl.client.auth` = none | requested | required; `ssl.enabled.protocols` (TLSv1.2, TLSv1.3);
///   `ssl.principal.mapping.rules`;
/// - `sasl.enabled.mechanisms` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), `connections.max.reauth.ms`.
enum ListenerSecurity {
    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    static func tlsConfiguration(_ configuration: BrokerConfiguration, listener: String) throws -> TLSConfiguration {
        func config(_ key: String) -> String? {
            // Inline PEM given on one line (`--set`) may spell its newlines as \n.
            configuration.listenerConfig(listener, key).flatMap { $0.isEmpty ? nil : $0.replacingOccurrences(of: "\\n", with: "\n") }
        }
        for key in ["ssl.keystore.type", "ssl.truststore.type"] {
            if let type = config(key), type.uppercased() != "PEM" {
                throw SetupError(description: "\(key)=\(type) on listener \(listener): Petrel reads PEM only (set \(key)=PEM)")
            }
        }
        let password = config("ssl.key.password")
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        func privateKey(_ bytes: [UInt8]) throws -> NIOSSLPrivateKey {
            if let password {
                return try NIOSSLPrivateKey(bytes: bytes, format: .pem) { setter in setter(Array(password.utf8)) }
            }
            return try NIOSSLPrivateKey(bytes: bytes, format: .pem)
        }
        if let location = config("ssl.keystore.location") {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: location)))
            chain = try NIOSSLCertificate.fromPEMBytes(bytes)
            key = try privateKey(bytes)
        } else if let certificates = config("ssl.keystore.certificate.chain"), let keyText = config("ssl.keystore.key") {
            chain = try NIOSSLCertificate.fromPEMBytes(Array(certificates.utf8))
            key = try privateKey(Array(keyText.utf8))
        } else {
            throw SetupError(
                description: "listener \(listener) uses TLS: set ssl.keystore.location (PEM key + certificate chain) or ssl.keystore.certificate.chain and ssl.keystore.key")
        }
        guard !chain.isEmpty else { throw SetupError(description: "no certificate in the keystore of listener \(listener)") }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        let protocols = (config("ssl.enabled.protocols") ?? "TLSv1.2,TLSv1.3").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        tls.minimumTLSVersion = protocols.contains("TLSv1.2") ? .tlsv12 : .tlsv13
        tls.maximumTLSVersion = protocols.contains("TLSv1.3") ? .tlsv13 : .tlsv12
        guard protocols.contains("TLSv1.2") || protocols.contains("TLSv1.3") else {
            throw SetupError(description: "ssl.enabled.protocols must include TLSv1.2 or TLSv1.3")
        }
        if let location = config("ssl.truststore.location") {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(location))
        } else if let certificates = config("ssl.truststore.certificates") {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(certificates.utf8)))
        }
        switch (config("ssl.client.auth") ?? "none").lowercased() {
        case "none": tls.certificateVerification = .none
        case "requested": tls.certificateVerification = .optionalVerification
        case "required": tls.certificateVerification = .noHostnameVerification
        case let other: throw SetupError(description: "ssl.client.auth=\(other): expected none, requested or required")
        }
        if tls.certificateVerification != .none, config("ssl.truststore.location") == nil, config("ssl.truststore.certificates") == nil {
            throw SetupError(description: "ssl.client.auth on listener \(listener) needs ssl.truststore.location (the CA that signs client certificates)")
        }
        tls.sendCANameList = tls.certificateVerification != .none
        return tls
    }

    static func principalMapper(_ configuration: BrokerConfiguration, listener: String) throws -> PrincipalMapper {
        do {
            return try PrincipalMapper(rules: configuration.listenerConfig(listener, "ssl.principal.mapping.rules") ?? "DEFAULT")
        } catch {
            throw SetupError(description: error.description)
        }
    }

    static func sasl(_ configuration: BrokerConfiguration, listener: String, credentials: CredentialStore) throws -> ConnectionStateMachine.Configuration.SASL {
        let names = configuration.listenerConfig(listener, "sasl.enabled.mechanisms") ?? "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
        var mechanisms: [SaslMechanism] = []
        for name in names.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).uppercased() }) where !name.isEmpty {
            guard let mechanism = SaslMechanism(rawValue: name) else {
                throw SetupError(description: "sasl.enabled.mechanisms: \(name) is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
            }
            mechanisms.append(mechanism)
        }
        guard !mechanisms.isEmpty else { throw SetupError(description: "sasl.enabled.mechanisms is empty for listener \(listener)") }
        let reauth = configuration.listenerConfig(listener, "connections.max.reauth.ms").map { Int64($0) } ?? 0
        guard let reauth, reauth >= 0 else { throw SetupError(description: "connections.max.reauth.ms must be a non-negative integer") }
        return .init(enabledMechanisms: mechanisms, credentials: credentials, reauthenticationMs: reauth)
    }
}
