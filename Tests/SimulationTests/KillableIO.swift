import DiskIO
import DiskIOTesting
import Synchronization

/// A `FileIO` in front of a `SimulatedDisk` that can be "killed": from then on every call fails with
/// EIO and nothing reaches the disk, as if the process had died at that instant. The simulation kills
/// it right before `SimulatedDisk.crash`, so the old appender (still running) cannot touch the disk
/// after the crash.
final class KillableIO: FileIO {
    let disk: SimulatedDisk
    private let killed = Atomic<Bool>(false)
    private let forgetsDirectorySyncs: Bool

    /// `forgetsDirectorySyncs`: `syncDirectory` does nothing, as a store that never fsyncs a
    /// directory (to show the simulated disk catches it).
    init(_ disk: SimulatedDisk, forgetsDirectorySyncs: Bool = false) {
        self.disk = disk
        self.forgetsDirectorySyncs = forgetsDirectorySyncs
    }

    func kill() { killed.store(true, ordering: .sequentiallyConsistent) }
    var isKilled: Bool { killed.load(ordering: .sequentiallyConsistent) }

    private func check(_ operation: DiskError.Operation, _ path: String? = nil) throws(DiskError) {
        if isKilled { throw DiskError(operation, path: path, errno: 5, detail: "process killed") }
    }

    func open(_ path: String, mode: OpenMode) throws(DiskError) -> Int32 {
        try check(.open, path)
        return try disk.open(path, mode: mode)
    }

    func close(_ fd: Int32) {
        if !isKilled { disk.close(fd) }
    }

    func fileSize(_ fd: Int32) throws(DiskError) -> Int64 {
        try check(.stat)
        return try disk.fileSize(fd)
    }

    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(DiskError) -> Int {
        try check(.read)
        return try disk.read(fd, into: buffer, at: offset)
    }

    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(DiskError) {
        try check(.write)
        try disk.write(fd, bytes, at: offset)
    }

    func submit(_ operations: inout [IOOperation]) {
        if isKilled {
            for index in operations.indices { operations[index].result = .failure(DiskError(.submit, errno: 5, detail: "process killed")) }
            return
        }
        disk.submit(&operations)
    }

    func fdatasync(_ fd: Int32) throws(DiskError) {
        try check(.sync)
        try disk.fdatasync(fd)
    }

    func truncate(_ fd: Int32, to size: Int64) throws(DiskError) {
        try check(.truncate)
        try disk.truncate(fd, to: size)
    }

    func rename(_ from: String, to: String) throws(DiskError) {
        try check(.rename, from)
        try disk.rename(from, to: to)
    }

    func unlink(_ path: String) throws(DiskError) {
        try check(.unlink, path)
        try disk.unlink(path)
    }

    func createDirectory(_ path: String) throws(DiskError) {
        try check(.mkdir, path)
        try disk.createDirectory(path)
    }

    func removeDirectory(_ path: String) throws(DiskError) {
        try check(.rmdir, path)
        try disk.removeDirectory(path)
    }

    func listDirectory(_ path: String) throws(DiskError) -> [String] {
        try check(.list, path)
        return try disk.listDirectory(path)
    }

    func fileExists(_ path: String) -> Bool { !isKilled && disk.fileExists(path) }
    func isDirectory(_ path: String) -> Bool { !isKilled && disk.isDirectory(path) }

    func syncDirectory(_ path: String) throws(DiskError) {
        try check(.sync, path)
        if !forgetsDirectorySyncs { try disk.syncDirectory(path) }
    }
}
