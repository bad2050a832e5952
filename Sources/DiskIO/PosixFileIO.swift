import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `FileIO` on plain POSIX syscalls: `pread`/`pwrite` loops, `fdatasync`, `ftruncate`, `rename`.
///
/// Stateless apart from a table of open fds to paths, used only to name the file in errors.
/// Files are opened with `O_CLOEXEC` and mode 0644; directories are created with mode 0755.
/// `submit` runs the batch in order, one syscall per operation, so each sync covers the writes
/// before it.
public final class PosixFileIO: FileIO {
    private let paths = Mutex<[Int32: String]>([:])

    /// Creates the backend. It holds no resources besides the fds callers open.
    public init() {}

    // MARK: Files

    public func open(_ path: String, mode: OpenMode) throws(DiskError) -> Int32 {
        var flags = O_CLOEXEC
        switch mode {
        case .readOnly: flags |= O_RDONLY
        case .readWrite: flags |= O_RDWR
        case .createReadWrite: flags |= O_RDWR | O_CREAT
        }
        let fd = try retryingEINTR(.open, path: path) { Glibc.open(path, flags, 0o644) }
        paths.withLock { $0[fd] = path }
        return fd
    }

    public func close(_ fd: Int32) {
        paths.withLock { _ = $0.removeValue(forKey: fd) }
        // Never retry close on EINTR: on Linux the fd is released either way.
        _ = Glibc.close(fd)
    }

    public func fileSize(_ fd: Int32) throws(DiskError) -> Int64 {
        var info = stat()
        _ = try retryingEINTR(.stat, fd: fd) { fstat(fd, &info) }
        return Int64(info.st_size)
    }

    public func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(DiskError) -> Int {
        precondition(offset >= 0, "negative file offset")
        guard let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let n = try retryingEINTR(.read, fd: fd) {
                pread(fd, base + done, buffer.count - done, off_t(offset) + off_t(done))
            }
            if n == 0 { break }  // end of file
            done += n
        }
        return done
    }

    public func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(DiskError) {
        precondition(offset >= 0, "negative file offset")
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = try retryingEINTR(.write, fd: fd) {
                pwrite(fd, base + done, bytes.count - done, off_t(offset) + off_t(done))
            }
            // pwrite returning 0 for a non-empty request would loop forever; the kernel only does it
            // when it cannot make progress.
            guard n > 0 else { throw DiskError(.write, path: path(of: fd), errno: EIO, detail: "pwrite wrote 0 bytes") }
            done += n
        }
    }

    public func submit(_ operations: inout [IOOperation]) {
        for index in operations.indices {
            switch operations[index].kind {
            case .write(let fd, let offset, let bytes):
                do throws(DiskError) {
                    try write(fd, bytes, at: offset)
                    operations[index].result = .success(bytes.count)
                } catch {
                    operations[index].result = .failure(error)
                }
            case .fdatasync(let fd):
                do throws(DiskError) {
                    try fdatasync(fd)
                    operations[index].result = .success(0)
                } catch {
                    operations[index].result = .failure(error)
                }
            case .syncFileRange(let fd, let offset, let length):
                do throws(DiskError) {
                    try syncFileRange(fd, offset: offset, length: length)
                    operations[index].result = .success(0)
                } catch {
                    operations[index].result = .failure(error)
                }
            }
        }
    }

    public func fdatasync(_ fd: Int32) throws(DiskError) {
        _ = try retryingEINTR(.sync, fd: fd) { Glibc.fdatasync(fd) }
    }

    /// `sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)`: starts write-back of the range
    /// without waiting for it and without any durability guarantee.
    ///
    /// - Throws: `DiskError(.sync)`.
    public func syncFileRange(_ fd: Int32, offset: Int64, length: Int64) throws(DiskError) {
        guard let syncFileRange = LinuxSyscalls.syncFileRange else { return }  // only a hint: skip where missing
        _ = try retryingEINTR(.sync, fd: fd) {
            syncFileRange(fd, offset, length, LinuxSyscalls.syncFileRangeWrite)
        }
    }

    public func truncate(_ fd: Int32, to size: Int64) throws(DiskError) {
        precondition(size >= 0, "negative file size")
        _ = try retryingEINTR(.truncate, fd: fd) { ftruncate(fd, off_t(size)) }
    }

    // MARK: Names and directories

    public func rename(_ from: String, to: String) throws(DiskError) {
        guard Glibc.rename(from, to) == 0 else {
            throw DiskError(.rename, path: from, errno: errno, detail: "to \(to): \(describeErrno(errno))")
        }
    }

    public func unlink(_ path: String) throws(DiskError) {
        guard Glibc.unlink(path) == 0 else { throw failure(.unlink, path: path) }
    }

    public func createDirectory(_ path: String) throws(DiskError) {
        guard !path.isEmpty else { throw DiskError(.mkdir, path: path, errno: ENOENT, detail: "empty path") }
        if isDirectory(path) { return }
        // Create parents first, then this one; EEXIST from a racing creator is fine if it is a directory.
        let parent = Self.parent(of: path)
        if let parent, !isDirectory(parent) {
            try createDirectory(parent)
        }
        if mkdir(path, 0o755) != 0 {
            let code = errno
            guard code == EEXIST, isDirectory(path) else {
                throw DiskError(.mkdir, path: path, errno: code, detail: describeErrno(code))
            }
        }
    }

    public func removeDirectory(_ path: String) throws(DiskError) {
        for name in try listDirectory(path) {
            let child = path + "/" + name
            var info = stat()
            guard lstat(child, &info) == 0 else {
                if errno == ENOENT { continue }  // removed meanwhile
                throw failure(.stat, path: child)
            }
            if info.st_mode & S_IFMT == S_IFDIR {
                try removeDirectory(child)
            } else if Glibc.unlink(child) != 0, errno != ENOENT {
                throw failure(.unlink, path: child)
            }
        }
        guard rmdir(path) == 0 else { throw failure(.rmdir, path: path) }
    }

    /// Entry names sorted bytewise, excluding `.` and `..`.
    public func listDirectory(_ path: String) throws(DiskError) -> [String] {
        guard let directory = opendir(path) else { throw failure(.list, path: path) }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw failure(.list, path: path) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    public func fileExists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    public func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    public func syncDirectory(_ path: String) throws(DiskError) {
        let fd = try retryingEINTR(.open, path: path) { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { _ = Glibc.close(fd) }
        _ = try retryingEINTR(.sync, path: path) { fsync(fd) }
    }

    /// More than a few directories: one `syncfs` of their file system commits all their entries
    /// (one journal commit instead of one per directory). Falls back to one fsync each.
    public func syncDirectories(_ paths: [String]) throws(DiskError) {
        guard paths.count > 8, let first = paths.first else {
            for path in paths { try syncDirectory(path) }
            return
        }
        let fd = try retryingEINTR(.open, path: first) { Glibc.open(first, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { _ = Glibc.close(fd) }
        if petrel_syncfs(fd) == 0 { return }
        for path in paths { try syncDirectory(path) }
    }

    // MARK: Helpers

    /// The path `fd` was opened with (by this instance), for error messages; nil if unknown.
    ///
    /// - Parameter fd: A descriptor returned by `open`.
    public func path(of fd: Int32) -> String? {
        paths.withLock { $0[fd] }
    }

    static func parent(of path: String) -> String? {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return nil }
        let parent = trimmed[..<slash]
        return parent.isEmpty ? nil : String(parent)
    }

    private func failure(_ operation: DiskError.Operation, path: String?) -> DiskError {
        let code = errno
        return DiskError(operation, path: path, errno: code, detail: describeErrno(code))
    }

    /// Runs a syscall that returns -1 and sets errno on failure, retrying on EINTR.
    private func retryingEINTR<T: BinaryInteger>(
        _ operation: DiskError.Operation, fd: Int32, _ body: () -> T
    ) throws(DiskError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = errno
            if code == EINTR { continue }
            throw DiskError(operation, path: path(of: fd), errno: code, detail: describeErrno(code))
        }
    }

    private func retryingEINTR<T: BinaryInteger>(
        _ operation: DiskError.Operation, path: String, _ body: () -> T
    ) throws(DiskError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = errno
            if code == EINTR { continue }
            throw DiskError(operation, path: path, errno: code, detail: describeErrno(code))
        }
    }
}

/// `strerror(code)` as a String.
func describeErrno(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}

/// Linux calls the Glibc module does not export (they need `_GNU_SOURCE`), looked up once at run time.
enum LinuxSyscalls {
    typealias SyncFileRange = @convention(c) (Int32, Int64, Int64, UInt32) -> Int32

    /// `SYNC_FILE_RANGE_WRITE` from `<fcntl.h>`.
    static let syncFileRangeWrite: UInt32 = 2

    /// glibc's `sync_file_range`, or nil where the C library lacks it.
    static let syncFileRange: SyncFileRange? = {
        guard let symbol = dlsym(nil, "sync_file_range") else { return nil }
        return unsafeBitCast(symbol, to: SyncFileRange.self)
    }()
}

/// glibc's `syncfs(2)` (not exported by the Glibc module).
@_silgen_name("syncfs")
private func petrel_syncfs(_ fd: Int32) -> Int32
