public import DiskIO
import Synchronization

extension SimulatedDisk {
    /// An injected failure: operations matching `operation` (and `pathContains`, if set) fail with
    /// `errno` once `remainingPasses` matching calls have gone through.
    struct Fault {
        var id: Int
        var operation: DiskError.Operation
        var errno: Int32
        var remainingPasses: Int
        var pathContains: String?
        var persistent: Bool
    }

    /// Makes a future operation fail.
    ///
    /// Operations are matched by kind: `.write` (direct and inside `submit`), `.sync` (`fdatasync`,
    /// `sync_file_range` and `syncDirectory`), `.open`, `.read`, `.truncate`, `.rename`, `.unlink`,
    /// `.mkdir`, `.rmdir`, `.list`, `.stat`; `.submit` matches every operation inside a `submit`.
    /// A failed write or sync changes nothing (in particular a failed sync leaves earlier writes
    /// unsynced, so a crash may still lose them).
    ///
    /// - Parameters:
    ///   - operation: Which kind of operation fails.
    ///   - errno: The errno to fail with (`EIO`, `ENOSPC`, ...).
    ///   - count: Matching operations that still succeed before the fault fires.
    ///   - pathContains: Only operations on a path containing this string match (for fd-based
    ///     operations, the file's current path).
    ///   - persistent: True: every matching operation fails from then on; false: only one does.
    /// - Returns: An id for `removeFault(_:)`.
    @discardableResult
    public func injectFault(
        _ operation: DiskError.Operation, errno: Int32, after count: Int = 0, path pathContains: String? = nil,
        persistent: Bool
    ) -> Int {
        precondition(count >= 0, "negative fault delay")
        return state.withLock { state in
            let id = state.nextFaultID
            state.nextFaultID += 1
            state.faults.append(
                Fault(id: id, operation: operation, errno: errno, remainingPasses: count, pathContains: pathContains, persistent: persistent)
            )
            return id
        }
    }

    /// Removes one injected fault.
    ///
    /// - Parameter id: The value `injectFault` returned.
    public func removeFault(_ id: Int) {
        state.withLock { $0.faults.removeAll { $0.id == id } }
    }

    /// Removes every injected fault (the disk "recovers").
    public func clearFaults() {
        state.withLock { $0.faults.removeAll() }
    }
}

extension SimulatedDisk.State {
    /// Throws if an injected fault matches; counts down the faults that are still waiting.
    mutating func checkFault(_ operation: DiskError.Operation, path: String) throws(DiskError) {
        var fired: SimulatedDisk.Fault?
        var index = 0
        while index < faults.count {
            let fault = faults[index]
            guard fault.operation == operation, fault.pathContains.map(path.contains) ?? true else {
                index += 1
                continue
            }
            if fault.remainingPasses > 0 {
                faults[index].remainingPasses -= 1
                index += 1
                continue
            }
            if fired == nil {
                fired = fault
                if !fault.persistent {
                    faults.remove(at: index)
                    continue
                }
            }
            index += 1
        }
        if let fired {
            counters.faultsFired += 1
            throw DiskError(operation, path: path, errno: fired.errno, detail: "injected fault \(fired.id)")
        }
    }
}
