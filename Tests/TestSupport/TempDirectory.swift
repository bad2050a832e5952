import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A unique directory under `/tmp` (or `$TMPDIR`) for one test, removed by `remove()` or on deinit.
///
/// Set `PETREL_KEEP_TEMP=1` to keep it for inspection.
public final class TempDirectory: @unchecked Sendable {
    /// Absolute path of the directory, without a trailing slash.
    public let path: String
    private var removed = false

    /// Creates `<tmp>/petrel-<prefix>-XXXXXX`.
    ///
    /// - Parameter prefix: Part of the directory name, to tell tests apart.
    public init(prefix: String = "test") {
        let base = getenvString("TMPDIR").map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } ?? "/tmp"
        var template = Array("\(base)/petrel-\(prefix)-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { chars in chars.baseAddress.flatMap { mkdtemp($0) } }
        guard let created else { preconditionFailure("mkdtemp failed: errno \(errno)") }
        path = String(cString: created)
    }

    /// `path + "/" + name`.
    public func appending(_ name: String) -> String { path + "/" + name }

    /// Removes the directory and everything in it (idempotent).
    public func remove() {
        guard !removed else { return }
        removed = true
        if getenvString("PETREL_KEEP_TEMP") == "1" { return }
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { remove() }
}
