/// Java-properties style `key=value` text (as in Kafka's `server.properties`): `#`/`!` comments,
/// `=` or `:` separators, surrounding whitespace trimmed. Line continuations are not supported.
public enum Properties {
    public static func parse(_ text: String) throws(ConfigurationError) -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("!") { continue }
            guard let separator = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw ConfigurationError("line \(number + 1): expected key=value, got '\(line)'")
            }
            let key = line[..<separator].trimmingWhitespace()
            let value = line[line.index(after: separator)...].trimmingWhitespace()
            guard !key.isEmpty else { throw ConfigurationError("line \(number + 1): empty key") }
            result.append((key, value))
        }
        return result
    }

    /// Parses one `key=value` override as given to `--set`.
    public static func parseAssignment(_ text: String) throws(ConfigurationError) -> (key: String, value: String) {
        guard let separator = text.firstIndex(of: "=") else {
            throw ConfigurationError("expected key=value, got '\(text)'")
        }
        let key = text[..<separator].trimmingWhitespace()
        guard !key.isEmpty else { throw ConfigurationError("empty key in '\(text)'") }
        return (key, text[text.index(after: separator)...].trimmingWhitespace())
    }
}

/// A configuration value that cannot be used; the message names the key and why.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
