/// A `HOST:PORT` pair, as given to `--bootstrap`.
public struct BrokerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`, `[IPv6]:PORT` or `HOST` (port 9092).
    ///
    /// - Throws: `ClientError(.invalidArgument)` for an empty host or a port outside 1...65535.
    public init(parsing text: String, defaultPort: Int = 9092) throws(ClientError) {
        var host = Substring(text)
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw ClientError(.invalidArgument, "bad address '\(text)': missing ']'") }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()) else { throw ClientError(.invalidArgument, "bad address '\(text)'") }
                port = p
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]) else { throw ClientError(.invalidArgument, "bad port in '\(text)'") }
            port = p
            host = host[..<colon]
        }
        guard !host.isEmpty else { throw ClientError(.invalidArgument, "bad address '\(text)': empty host") }
        guard (1...65535).contains(port) else { throw ClientError(.invalidArgument, "bad address '\(text)': port \(port) outside 1...65535") }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
