import NIOCore

/// A versioned Kafka structure: a request/response body or a stored data type.
public protocol KafkaMessage: Sendable {
    /// Lowest/highest version this module generated codecs for.
    static var lowestSupportedVersion: Int16 { get }
    static var highestSupportedVersion: Int16 { get }

    /// All fields at their schema defaults.
    init()

    /// Decodes the structure at `version`; throws `WireError` on any malformed or truncated input
    /// and for versions outside the supported range.
    init(from buffer: inout ByteBuffer, version: Int16) throws(WireError)

    /// Encodes the structure at `version`.
    func write(to writer: inout WireWriter, version: Int16) throws(WireError)
}

extension KafkaMessage {
    public static var supportedVersions: ClosedRange<Int16> { lowestSupportedVersion...highestSupportedVersion }
}

public protocol KafkaRequest: KafkaMessage {
    associatedtype Response: KafkaResponse
    static var apiKey: APIKey { get }
}

public protocol KafkaResponse: KafkaMessage {
    static var apiKey: APIKey { get }
}

/// A response with a top-level `ThrottleTimeMs` field (generated conformance): the broker reports
/// a client-quota throttle in it whatever the API (KIP-219).
public protocol ThrottledResponse: KafkaResponse {
    var throttleTimeMs: Int32 { get set }
}

/// One served API and its version range.
public struct ServedAPIRange: Sendable, Hashable, CustomStringConvertible {
    public var apiKey: APIKey
    public var minVersion: Int16
    public var maxVersion: Int16

    public init(apiKey: APIKey, minVersion: Int16, maxVersion: Int16) {
        self.apiKey = apiKey
        self.minVersion = minVersion
        self.maxVersion = maxVersion
    }

    public var versions: ClosedRange<Int16> { minVersion...maxVersion }

    public var description: String { "\(apiKey.name)(\(apiKey.rawValue)) v\(minVersion)-\(maxVersion)" }
}
