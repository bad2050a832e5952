/// A Kafka API key. The named constants, names and flexible-version table are generated from the
/// schemas into `Generated/APIKeys.swift`.
public struct APIKey: RawRepresentable, Hashable, Sendable, CustomStringConvertible, Comparable {
    public var rawValue: Int16

    public init(rawValue: Int16) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: Int16) {
        self.rawValue = rawValue
    }

    /// Kafka's message name without the Request/Response suffix (e.g. "Produce"), or
    /// "Unknown(<n>)" for keys not in the schema set.
    public var name: String {
        APIKey.schemaName(for: rawValue) ?? "Unknown(\(rawValue))"
    }

    /// True if the key exists in the schema set this module was generated from.
    public var isKnown: Bool { APIKey.schemaName(for: rawValue) != nil }

    public var description: String { name }

    /// First flexible version of this API (nil: never flexible, or unknown key).
    public var firstFlexibleVersion: Int16? { APIKey.firstFlexibleVersion(for: rawValue) }

    /// Request header version for `apiVersion`: 2 for flexible versions, else 1 (ControlledShutdown
    /// v0: 0). Unknown keys: 1, so the header of any request can be read.
    public func requestHeaderVersion(apiVersion: Int16) -> Int16 {
        if self == .controlledShutdown && apiVersion == 0 { return 0 }
        if let flex = firstFlexibleVersion, apiVersion >= flex { return 2 }
        return 1
    }

    /// Response header version for `apiVersion`: 1 for flexible versions, else 0. ApiVersions
    /// responses always use v0 (clients must read it before they know the broker's versions).
    public func responseHeaderVersion(apiVersion: Int16) -> Int16 {
        if self == .apiVersions { return 0 }
        if let flex = firstFlexibleVersion, apiVersion >= flex { return 1 }
        return 0
    }

    /// The range of versions this module generated codecs for (nil: not served).
    public var servedRange: ServedAPIRange? {
        APIKey.servedAPIs.first { $0.apiKey == self }
    }

    public static func < (lhs: APIKey, rhs: APIKey) -> Bool { lhs.rawValue < rhs.rawValue }
}
