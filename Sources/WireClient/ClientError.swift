public import KafkaWire

/// An error from the client: the broker's Kafka error code, a transport failure, or a protocol bug.
public struct ClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Could not connect, or the connection closed with requests outstanding.
        case connection
        /// The broker answered with a Kafka error code.
        case broker(KafkaErrorCode)
        /// The peer broke the protocol: bad frame size, mismatched correlation id, undecodable body.
        case protocolViolation
        /// The broker does not support any version of an API this client needs.
        case unsupportedAPI(APIKey)
        /// The caller asked for something invalid (unknown topic, bad argument).
        case invalidArgument
        /// No answer in time.
        case timeout
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// Throws `.broker(code)` for a non-zero error code.
    ///
    /// - Parameters:
    ///   - code: The raw error code from a response.
    ///   - context: What failed, e.g. `"create topic t"`.
    ///   - message: The broker's error message, if any.
    public static func check(_ code: Int16, _ context: @autoclosure () -> String, message: String? = nil) throws(ClientError) {
        guard code != 0 else { return }
        let error = KafkaErrorCode(rawValue: code)
        var text = "\(context()): \(error)"
        if let message, !message.isEmpty { text += " (\(message))" }
        throw ClientError(.broker(error), text)
    }

    public var description: String { message }
}
