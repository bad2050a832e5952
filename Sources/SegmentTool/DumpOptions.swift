/// What `runDump` prints and checks (the `petrel dump` subcommand).
public struct DumpOptions: Sendable {
    /// `.log`, `.index` and `.timeindex` files, or partition directories (all their segments).
    public var paths: [String]
    /// Check every CRC, every index and time-index entry against the log, offset order within and
    /// across segments; exit non-zero naming the first bad file, byte position and offset.
    public var verify = false
    /// Print every record of uncompressed batches (offset, timestamp, key/value sizes, headers).
    public var deep = false
    /// With `deep`: print keys, values and header values (UTF-8 when printable, else hex).
    public var printData = false
    /// One JSON object per line instead of text.
    public var json = false
    /// For index files: only check that they are structurally sane (Kafka's `--index-sanity-check`).
    public var indexSanity = false

    public init(paths: [String]) {
        self.paths = paths
    }
}

/// Exit statuses of `runDump`.
public enum DumpExitStatus {
    public static let clean: Int32 = 0
    /// `verify` or `indexSanity` found a problem.
    public static let problemsFound: Int32 = 1
    /// A path could not be read or is not a segment file.
    public static let unreadable: Int32 = 2
}
