import DiskIO
import Logging
import Synchronization

/// Kafka's asynchronous segment deletion: a removed segment's files are renamed `*.deleted` at once
/// (so a restart never loads them: `LogLoader` unlinks stray `*.deleted`), and unlinked once
/// `file.delete.delay.ms` has passed. Fetches still holding a `SegmentFileHandle` keep reading the
/// renamed — or, later, unlinked — file through their descriptor.
///
/// `LogManager.runPeriodicTasks` calls `unlinkDue` (maintenance thread).
final class SegmentFileDeleter: @unchecked Sendable {
    private struct Pending {
        var path: String
        var dueMs: Int64
    }

    let io: any FileIO
    let logger: Logger
    private let pending = Mutex<[Pending]>([])

    init(io: any FileIO, logger: Logger) {
        self.io = io
        self.logger = logger
    }

    /// Queues `path` (already renamed `.deleted`) for unlinking at `dueMs`.
    func schedule(_ path: String, dueMs: Int64) {
        pending.withLock { $0.append(Pending(path: path, dueMs: dueMs)) }
    }

    /// Paths waiting for their delay (tests, metrics).
    var pendingPaths: [String] { pending.withLock { $0.map(\.path) } }

    /// Unlinks every queued file whose delay has passed; returns how many were removed. A file that
    /// is already gone (its directory was deleted, a restart cleaned it) is not an error.
    @discardableResult
    func unlinkDue(now: Int64) -> Int {
        let due = pending.withLock { list -> [Pending] in
            let due = list.filter { $0.dueMs <= now }
            list.removeAll { $0.dueMs <= now }
            return due
        }
        var removed = 0
        for file in due {
            guard io.fileExists(file.path) else { continue }
            do {
                try io.unlink(file.path)
                removed += 1
            } catch {
                logger.warning("could not unlink deleted segment file", metadata: ["path": "\(file.path)", "error": "\(error)"])
            }
        }
        return removed
    }
}
