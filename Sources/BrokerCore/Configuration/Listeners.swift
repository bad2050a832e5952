import Foundation
import Security

/// Kafka's `security.protocol` values for a listener (`Security.SecurityProtocol`).
public typealias SecurityProtocol = Security.SecurityProtocol

/// One entry of `listeners`: a name (`PLAINTEXT`, `SASL_SSL`, or any name mapped by
/// `listener.security.protocol.map`), its protocol and the address to bind.
public struct Listener: Sendable, Equatable {
    public var name: String
    public var securityProtocol: SecurityProtocol
    public var host: String
    public var port: Int

    public init(name: String, securityProtocol: SecurityProtocol, host: String, port: Int) {
        self.name = name
        self.securityProtocol = securityProtocol
        self.host = host
        self.port = port
    }
}

extension BrokerConfiguration {
    /// Kafka's default `listener.security.protocol.map`: each protocol's name maps to itself.
    static let defaultProtocolMap = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"

    /// The listeners to bind, from `listeners` (`--listen HOST:PORT` is one PLAINTEXT listener),
    /// each with its protocol from `listener.security.protocol.map`.
    /// - Throws: `ConfigurationError` for a malformed entry, a duplicate name or port, or a name
    ///   with no protocol.
    public func resolvedListeners() throws(ConfigurationError) -> [Listener] {
        let map = try Self.parseProtocolMap(staticConfigs["listener.security.protocol.map"] ?? Self.defaultProtocolMap)
        let text = staticConfigs["listeners"] ?? staticConfigs["listen"] ?? "PLAINTEXT://\(listenHost):\(listenPort)"
        var listeners: [Listener] = []
        for (name, host, port) in try Self.parseListenerList(text) {
            guard let securityProtocol = map[name] else {
                throw ConfigurationError("listener \(name) has no security protocol in listener.security.protocol.map")
            }
            guard !listeners.contains(where: { $0.name == name }) else { throw ConfigurationError("listener name \(name) appears twice in listeners") }
            if port != 0, listeners.contains(where: { $0.port == port && $0.host == host }) {
                throw ConfigurationError("listeners bind \(host):\(port) twice")
            }
            listeners.append(Listener(name: name, securityProtocol: securityProtocol, host: host, port: port))
        }
        guard !listeners.isEmpty else { throw ConfigurationError("listeners is empty") }
        return listeners
    }

    /// `advertised.listeners` by listener name (an entry without a name is PLAINTEXT's).
    public func resolvedAdvertisedListeners() throws(ConfigurationError) -> [String: (host: String, port: Int)] {
        guard let text = staticConfigs["advertised.listeners"] else { return [:] }
        var result: [String: (host: String, port: Int)] = [:]
        for (name, host, port) in try Self.parseListenerList(text) { result[name] = (host, port) }
        return result
    }

    /// A listener-scoped setting as Kafka resolves it: `listener.name.<name lowercased>.<key>`, else `<key>`.
    public func listenerConfig(_ listenerName: String, _ key: String) -> String? {
        staticConfigs["listener.name.\(listenerName.lowercased()).\(key)"] ?? staticConfigs[key]
    }

    /// `NAME://HOST:PORT,...`; a bare `HOST:PORT` is a PLAINTEXT listener; an empty host binds all
    /// interfaces; `[v6]:PORT` for IPv6.
    static func parseListenerList(_ text: String) throws(ConfigurationError) -> [(String, String, Int)] {
        var result: [(String, String, Int)] = []
        for entry in text.split(separator: ",") {
            let trimmed = entry.trimmingCharacters(in: .whitespaces)
            var name = "PLAINTEXT"
            var rest = Substring(trimmed)
            if let marker = trimmed.range(of: "://") {
                name = trimmed[..<marker.lowerBound].uppercased()
                rest = trimmed[marker.upperBound...]
            }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                throw ConfigurationError("invalid listener name in '\(trimmed)'")
            }
            let (host, port) = try parseListener(String(rest))
            result.append((name, host, port))
        }
        return result
    }

    static func parseProtocolMap(_ text: String) throws(ConfigurationError) -> [String: SecurityProtocol] {
        var map: [String: SecurityProtocol] = [:]
        for entry in text.split(separator: ",") {
            let parts = entry.split(separator: ":")
            guard parts.count == 2, let securityProtocol = SecurityProtocol(rawValue: parts[1].trimmingCharacters(in: .whitespaces).uppercased()) else {
                throw ConfigurationError("invalid listener.security.protocol.map entry '\(entry)'")
            }
            map[parts[0].trimmingCharacters(in: .whitespaces).uppercased()] = securityProtocol
        }
        return map
    }
}
