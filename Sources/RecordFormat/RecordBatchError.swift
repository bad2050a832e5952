/// Why a record batch was rejected.
///
/// The broker maps the kinds to Kafka codes: `truncated` and `corrupt` to `CORRUPT_MESSAGE` (2),
/// `unsupportedMagic` and `invalid` to `INVALID_RECORD` (87).
public struct RecordBatchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The class of failure.
    public enum Kind: Sendable, Equatable {
        /// Fewer bytes than the header or `batchLength` says the batch needs.
        case truncated
        /// The bytes are there but wrong: CRC mismatch, impossible `batchLength`, malformed records.
        case corrupt
        /// Byte 16 is not 2 (legacy magic 0/1 message sets, or garbage).
        case unsupportedMagic(Int8)
        /// Well-formed but not acceptable: count mismatch, empty batch, control batch from a client,
        /// producer id without a base sequence, trailing bytes where exactly one batch is expected,
        /// or a feature not supported yet (compressed records).
        case invalid
    }

    /// The class of failure.
    public var kind: Kind
    /// What exactly was wrong, for logs.
    public var message: String

    /// Creates an error of `kind` explained by `message`.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(kind): \(message)" }
}
