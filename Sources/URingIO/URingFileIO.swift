public import DiskIO
import Synchronization

/// `FileIO` whose `submit` goes through io_uring: one `io_uring_submit_and_wait` for all the
/// writes of a batch (chunked by the ring size), short writes re-submitted, then a second round
/// for the batch's syncs (`IORING_OP_FSYNC` with `IORING_FSYNC_DATASYNC`,
/// `IORING_OP_SYNC_FILE_RANGE`), so every sync covers every write of the batch.
///
/// Everything else (open, single reads and writes, metadata) is plain POSIX through `PosixFileIO`:
/// io_uring only pays off when submissions are batched (QD ≥ 8), so one write does not use it.
///
/// Writes within one batch may be executed in any order and concurrently: don't put overlapping
/// writes in one batch. The ring serves one `submit` at a time (a `Mutex` serializes callers).
/// If `io_uring_enter` ever fails unrecoverably, the ring is retired and later batches use `pwrite`.
public final class URingFileIO: FileIO {
    /// Counters for tests and benchmarks.
    public struct Statistics: Sendable, Equatable {
        /// `submit` calls.
        public var batches = 0
        /// `io_uring_enter` system calls made by `submit`.
        public var enterCalls = 0
        /// SQEs the kernel accepted.
        public var sqesSubmitted = 0
        /// Writes that completed short and were re-submitted for the rest.
        public var shortWrites = 0
    }

    private let posix = PosixFileIO()
    private let ring: Mutex<URing>

    /// Sets up the ring.
    ///
    /// - Parameter entries: Submission-queue entries (the kernel rounds up to a power of two);
    ///   the most operations in flight at once.
    /// - Throws: `DiskError` (operation `.submit`) when io_uring is unavailable: ENOSYS on old
    ///   kernels, EPERM under seccomp or `io_uring_disabled`, EOPNOTSUPP when an opcode is missing.
    ///   Callers then fall back to `PosixFileIO`.
    public convenience init(entries: UInt32 = 256) throws(DiskError) {
        try self.init(entries: entries, writeBytesMax: URing.writeBytesMaxDefault)
    }

    /// For tests: `writeBytesMax` caps the bytes per SQE, forcing long writes through the
    /// short-write path.
    init(entries: UInt32, writeBytesMax: Int) throws(DiskError) {
        ring = Mutex(try URing(entries: entries, writeBytesMax: writeBytesMax))
    }

    /// Submission-queue entries the kernel granted.
    public var submissionQueueEntries: Int { ring.withLock { $0.entries } }

    /// Counters so far.
    public var statistics: Statistics { ring.withLock { $0.statistics } }

    /// True once the ring has been retired after an unrecoverable error and batches use `pwrite`.
    public var isUsingFallback: Bool { ring.withLock { $0.isBroken } }

    // MARK: Batches

    public func submit(_ operations: inout [IOOperation]) {
        guard !operations.isEmpty else { return }
        var writes: [Int] = []
        var syncs: [Int] = []
        writes.reserveCapacity(operations.count)
        for index in operations.indices {
            operations[index].result = nil
            if case .write = operations[index].kind { writes.append(index) } else { syncs.append(index) }
        }
        let input = operations
        let posix = self.posix
        let (output, broken) = ring.withLock { ring in
            var batch = input
            ring.statistics.batches += 1
            guard !ring.isBroken else { return (batch, true) }
            ring.run(&batch, indices: writes, pathOf: posix.path(of:))
            // Second round only after every write has completed, so each sync covers them all.
            if !ring.isBroken {
                ring.run(&batch, indices: syncs, pathOf: posix.path(of:))
            }
            return (batch, ring.isBroken)
        }
        operations = output
        if broken {
            // The ring is retired: finish what it did not run with plain syscalls, in order.
            var rest = operations.indices.filter { operations[$0].result == nil }.map { operations[$0] }
            guard !rest.isEmpty else { return }
            posix.submit(&rest)
            var next = 0
            for index in operations.indices where operations[index].result == nil {
                operations[index].result = rest[next].result
                next += 1
            }
        }
    }

    // MARK: Delegated to POSIX

    public func open(_ path: String, mode: OpenMode) throws(DiskError) -> Int32 { try posix.open(path, mode: mode) }
    public func close(_ fd: Int32) { posix.close(fd) }
    public func fileSize(_ fd: Int32) throws(DiskError) -> Int64 { try posix.fileSize(fd) }
    public func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(DiskError) -> Int {
        try posix.read(fd, into: buffer, at: offset)
    }
    public func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(DiskError) {
        try posix.write(fd, bytes, at: offset)
    }
    public func fdatasync(_ fd: Int32) throws(DiskError) { try posix.fdatasync(fd) }
    public func truncate(_ fd: Int32, to size: Int64) throws(DiskError) { try posix.truncate(fd, to: size) }
    public func rename(_ from: String, to: String) throws(DiskError) { try posix.rename(from, to: to) }
    public func unlink(_ path: String) throws(DiskError) { try posix.unlink(path) }
    public func createDirectory(_ path: String) throws(DiskError) { try posix.createDirectory(path) }
    public func removeDirectory(_ path: String) throws(DiskError) { try posix.removeDirectory(path) }
    public func listDirectory(_ path: String) throws(DiskError) -> [String] { try posix.listDirectory(path) }
    public func fileExists(_ path: String) -> Bool { posix.fileExists(path) }
    public func isDirectory(_ path: String) -> Bool { posix.isDirectory(path) }
    public func syncDirectory(_ path: String) throws(DiskError) { try posix.syncDirectory(path) }
    public func syncDirectories(_ paths: [String]) throws(DiskError) { try posix.syncDirectories(paths) }
}
