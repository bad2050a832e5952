#if canImport(Glibc)
import Glibc
#endif

/// A failed file-system operation: which one, on what, and the errno behind it.
///
/// Storage turns these into `CommitLogError`; the broker maps them to `KAFKA_STORAGE_ERROR`.
public struct DiskError: Error, Sendable, CustomStringConvertible {
    public enum Operation: String, Sendable {
        case open, close, read, write, sync, truncate, allocate, rename, unlink, mkdir, rmdir, list, stat, submit
    }

    public var operation: Operation
    public var path: String?
    /// The POSIX errno (e.g. `EIO`, `ENOSPC`), or 0 when not from a syscall.
    public var errno: Int32
    public var detail: String?

    public init(_ operation: Operation, path: String? = nil, errno: Int32, detail: String? = nil) {
        self.operation = operation
        self.path = path
        self.errno = errno
        self.detail = detail
    }

    public var isNoSpace: Bool { errno == ENOSPC }

    public var description: String {
        var text = "\(operation.rawValue) failed"
        if let path { text += " on \(path)" }
        text += " (errno \(errno))"
        if let detail { text += ": \(detail)" }
        return text
    }
}
