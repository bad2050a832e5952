/// An error raised while decoding or encoding Kafka protocol data.
///
/// Decoders never trap on hostile input; every failure surfaces as a `WireError`.
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The input ended before the value was complete.
        case truncated
        /// The input is structurally invalid (bad length, null where not allowed, ...).
        case malformed(String)
        /// The (api key, version) pair is outside what this module generated.
        case unsupportedVersion(apiKey: Int16?, version: Int16)
        /// A non-ignorable field holds a non-default value but does not exist in the chosen version.
        case fieldNotInVersion(field: String, version: Int16)
        /// A value cannot be represented in the chosen encoding (e.g. a classic string over 32767 bytes).
        case valueTooLarge(String)
    }

    public var kind: Kind

    public init(_ kind: Kind) {
        self.kind = kind
    }

    public static let truncated = WireError(.truncated)

    public static func malformed(_ reason: String) -> WireError {
        WireError(.malformed(reason))
    }

    public static func unsupportedVersion(apiKey: Int16? = nil, version: Int16) -> WireError {
        WireError(.unsupportedVersion(apiKey: apiKey, version: version))
    }

    public static func fieldNotInVersion(_ field: String, version: Int16) -> WireError {
        WireError(.fieldNotInVersion(field: field, version: version))
    }

    public static func valueTooLarge(_ what: String) -> WireError {
        WireError(.valueTooLarge(what))
    }

    public var description: String {
        switch kind {
        case .truncated:
            return "WireError.truncated"
        case .malformed(let reason):
            return "WireError.malformed(\(reason))"
        case .unsupportedVersion(let apiKey, let version):
            if let apiKey {
                return "WireError.unsupportedVersion(apiKey: \(apiKey), version: \(version))"
            }
            return "WireError.unsupportedVersion(version: \(version))"
        case .fieldNotInVersion(let field, let version):
            return "WireError.fieldNotInVersion(\(field) has a non-default value but is absent in version \(version))"
        case .valueTooLarge(let what):
            return "WireError.valueTooLarge(\(what))"
        }
    }
}
