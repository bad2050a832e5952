import DiskIO

#if canImport(Glibc)
import Glibc
#endif

/// IO operations of several partitions made with one `io.submit`, each with the partition it is for.
///
/// The one place that turns results into failures of their partitions, shared by the appender's group
/// writes and group commit, `LogManager`'s periodic flushes and `PartitionLog.flushNow`; each caller
/// then takes a failed partition offline (or read-only) or completes its flush.
struct PartitionIOBatch {
    var operations: [IOOperation] = []
    /// `owners[i]` is the partition `operations[i]` is for.
    var owners: [PartitionLog] = []

    var isEmpty: Bool { operations.isEmpty }

    mutating func append(_ operation: IOOperation, owner: PartitionLog) {
        operations.append(operation)
        owners.append(owner)
    }

    mutating func removeAll() {
        operations.removeAll(keepingCapacity: true)
        owners.removeAll(keepingCapacity: true)
    }

    /// Submits the operations, then calls `failed` for each one that failed, in order (the first call
    /// for a partition is its first failure): an error result, a short write (as `EIO`), or an
    /// operation the ring never executed (`EIO`). A failed `sync_file_range` is only a failure for
    /// `EIO` and `ENOSPC`: write-behind is advisory, and a file system without it is not a disk error.
    mutating func submit(io: any FileIO, failed: (PartitionLog, DiskError) -> Void) {
        guard !operations.isEmpty else { return }
        io.submit(&operations)
        for (index, operation) in operations.enumerated() {
            let owner = owners[index]
            switch operation.result {
            case .success(let done):
                if case .write(_, _, let bytes) = operation.kind, done != bytes.count {
                    failed(owner, DiskError(.write, path: owner.directory, errno: EIO, detail: "short write: \(done) of \(bytes.count) bytes"))
                }
            case .failure(let error):
                if case .syncFileRange = operation.kind, error.errno != EIO, error.errno != ENOSPC { continue }
                failed(owner, error)
            case nil:
                failed(owner, DiskError(.submit, path: owner.directory, errno: EIO, detail: "operation not executed"))
            }
        }
    }
}
