/// Every on-disk name of the commit log, in one place.
///
/// A segment is `<20-digit zero-padded base offset>.log` with `.index` and `.timeindex` beside it,
/// as Kafka names them; a partition directory is `<topic>-<partition>`, a deleted one
/// `<topic>-<partition>.<uuid hex>-delete`.
enum SegmentFileName {
    static let logSuffix = ".log"
    static let offsetIndexSuffix = ".index"
    static let timeIndexSuffix = ".timeindex"
    static let deletedSuffix = ".deleted"
    static let cleanedSuffix = ".cleaned"
    static let swapSuffix = ".swap"
    static let temporarySuffix = ".tmp"
    static let deletedDirectorySuffix = "-delete"

    static let recoveryPointCheckpoint = "recovery-point-offset-checkpoint"
    static let logStartOffsetCheckpoint = "log-start-offset-checkpoint"
    static let cleanShutdownMarker = ".kafka_cleanshutdown"
    static let cleanerOffsetCheckpoint = "cleaner-offset-checkpoint"

    /// The three files of a segment, `.log` first.
    static func segmentFiles(_ baseOffset: Int64) -> [String] { [log(baseOffset), offsetIndex(baseOffset), timeIndex(baseOffset)] }

    /// A transient name: `name` plus `.cleaned`, `.swap` or `.deleted`.
    static func with(_ name: String, suffix: String) -> String { name + suffix }

    /// For a transient file name (`<stem>.<kind><suffix>`, e.g. `00000000000000000042.index.swap`):
    /// its base offset and the segment file name it stands for (`00000000000000000042.index`).
    static func transient(_ name: String, suffix: String) -> (baseOffset: Int64, segmentFile: String)? {
        guard name.hasSuffix(suffix) else { return nil }
        let plain = String(name.dropLast(suffix.count))
        for kind in [logSuffix, offsetIndexSuffix, timeIndexSuffix] {
            if let base = baseOffset(of: plain, suffix: kind) { return (base, plain) }
        }
        return nil
    }

    /// `00000000000000000042` for 42.
    static func stem(_ baseOffset: Int64) -> String {
        let digits = String(baseOffset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    static func log(_ baseOffset: Int64) -> String { stem(baseOffset) + logSuffix }
    static func offsetIndex(_ baseOffset: Int64) -> String { stem(baseOffset) + offsetIndexSuffix }
    static func timeIndex(_ baseOffset: Int64) -> String { stem(baseOffset) + timeIndexSuffix }

    /// The base offset of a segment file name with the given suffix (`00000000000000000042.log` → 42).
    static func baseOffset(of name: String, suffix: String) -> Int64? {
        guard name.hasSuffix(suffix) else { return nil }
        let stem = name.dropLast(suffix.count)
        guard stem.count == 20, stem.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
        return Int64(stem)
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// A directory renamed for asynchronous deletion: `<topic>-<p>.<uuid hex>-delete`.
    static func deletedDirectory(_ directoryName: String, uuidHex: String) -> String {
        "\(directoryName).\(uuidHex)\(deletedDirectorySuffix)"
    }

    static func isDeletedDirectory(_ name: String) -> Bool {
        name.hasSuffix(deletedDirectorySuffix) && name.contains(".")
    }
}
