/// How a file is opened.
public enum OpenMode: Sendable {
    /// `O_RDONLY`.
    case readOnly
    /// `O_RDWR`; the file must exist.
    case readWrite
    /// `O_RDWR | O_CREAT`.
    case createReadWrite
}

/// One operation of a batch given to `FileIO.submit(_:)`.
///
/// The bytes of a `.write` are borrowed: the caller keeps them alive until `submit` returns.
public struct IOOperation: @unchecked Sendable {
    public enum Kind {
        /// Write all of `bytes` at `offset` (buffered, through the page cache).
        case write(fd: Int32, offset: Int64, bytes: UnsafeRawBufferPointer)
        /// `fdatasync(fd)`.
        case fdatasync(fd: Int32)
        /// Start write-back of a range without waiting (`sync_file_range(SYNC_FILE_RANGE_WRITE)`).
        case syncFileRange(fd: Int32, offset: Int64, length: Int64)
    }

    public var kind: Kind
    /// Filled in by `submit`: bytes written (writes) or 0, or the error.
    public var result: Result<Int, DiskError>?

    public init(_ kind: Kind) {
        self.kind = kind
        self.result = nil
    }
}

/// The storage engine's only door to the disk. Implementations: `PosixFileIO` (plain syscalls),
/// `URingFileIO` (io_uring, batched submissions) and `SimulatedDisk` (tests: drops unsynced
/// writes on crash, tears writes, injects EIO/ENOSPC).
///
/// File descriptors are plain `Int32`s owned by the implementation that returned them.
/// All methods may be called from any thread; a given fd is used by one writer at a time.
public protocol FileIO: AnyObject, Sendable {
    func open(_ path: String, mode: OpenMode) throws(DiskError) -> Int32
    func close(_ fd: Int32)
    func fileSize(_ fd: Int32) throws(DiskError) -> Int64
    /// Reads up to `buffer.count` bytes at `offset`; returns fewer only at end of file.
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(DiskError) -> Int
    /// Writes all of `bytes` at `offset`.
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(DiskError)
    /// Executes a batch, submitting it together where the backend can (io_uring: one submit for
    /// all writes). Every `.write` in the batch completes before any `.fdatasync` of the same batch
    /// starts, so a sync covers the writes before it. Each operation's `result` is set.
    func submit(_ operations: inout [IOOperation])
    func fdatasync(_ fd: Int32) throws(DiskError)
    /// `ftruncate`: shrinks or extends (with zeros) the file.
    func truncate(_ fd: Int32, to size: Int64) throws(DiskError)
    func rename(_ from: String, to: String) throws(DiskError)
    func unlink(_ path: String) throws(DiskError)
    /// `mkdir -p`.
    func createDirectory(_ path: String) throws(DiskError)
    /// Removes a directory and everything in it.
    func removeDirectory(_ path: String) throws(DiskError)
    /// Names (not paths) of the entries in a directory, excluding `.` and `..`.
    func listDirectory(_ path: String) throws(DiskError) -> [String]
    func fileExists(_ path: String) -> Bool
    func isDirectory(_ path: String) -> Bool
    /// fsync of a directory, so renames and creations in it are durable.
    func syncDirectory(_ path: String) throws(DiskError)
    /// Makes the entries of many directories durable at once (partition creation). The default
    /// syncs them one by one; `PosixFileIO` batches a large set into one `syncfs`.
    func syncDirectories(_ paths: [String]) throws(DiskError)
}

extension FileIO {
    public func syncDirectories(_ paths: [String]) throws(DiskError) {
        for path in paths { try syncDirectory(path) }
    }

    /// Reads the whole file at `path`, or nil if it does not exist.
    public func readWholeFile(_ path: String) throws(DiskError) -> [UInt8]? {
        guard fileExists(path) else { return nil }
        let fd = try open(path, mode: .readOnly)
        defer { close(fd) }
        let size = Int(try fileSize(fd))
        var bytes = [UInt8](repeating: 0, count: size)
        // Array's closure APIs are `rethrows` (untyped): carry the typed error out in a Result.
        let n = try bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(DiskError) -> Int in try read(fd, into: buffer, at: 0) }
        }.get()
        bytes.removeLast(size - n)
        return bytes
    }

    /// Writes `bytes` to `path` atomically: write `path.tmp`, fsync, rename, fsync the directory.
    public func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws(DiskError) {
        let tmp = path + ".tmp"
        let fd = try open(tmp, mode: .createReadWrite)
        do {
            try truncate(fd, to: 0)
            try bytes.withUnsafeBytes { buffer in
                Result { () throws(DiskError) in try write(fd, buffer, at: 0) }
            }.get()
            try fdatasync(fd)
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        try rename(tmp, to: path)
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        try syncDirectory(directory.isEmpty ? "." : directory)
    }
}
