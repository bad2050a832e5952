public import DiskIO
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An in-memory file system for crash and fault tests.
///
/// **Data** follows the page-cache model: every file has `current` bytes (what reads see) and
/// `durable` bytes (what survives a crash). `fdatasync` makes a file's current bytes durable.
/// Writes and truncations since the last sync are kept as a log; `crash(using:)` replays that log
/// onto the durable bytes, keeping, dropping or tearing each write independently.
///
/// **Metadata** (create, rename, unlink, mkdir, rmdir) follows the same model one level up: every
/// directory has its current entries and its durable entries. A change to a directory's entries is
/// durable only once that directory is synced (`syncDirectory`, as `fsync` on a directory fd);
/// `crash(using:)` brings back every directory's durable entries: a file created but never named
/// durably disappears (even if its bytes were fdatasynced), an unsynced rename reverts, an unsynced
/// unlink brings the file back with its durable bytes, and entries under a directory that is not
/// itself durable in its parent are lost with it. This is what ext4 and XFS promise, so a store
/// that forgets a directory fsync fails crash tests here.
///
/// Paths are absolute, `/`-separated; `.` components and repeated slashes are ignored. The root
/// `/` always exists; other directories must be created. File descriptors are synthetic.
/// All methods are thread-safe (one `Mutex` around the whole state).
public final class SimulatedDisk: FileIO {
    /// How `crash(using:)` treats each write made since its file's last sync. The weights need not
    /// sum to anything; each write picks an outcome with probability proportional to its weight.
    public struct CrashOptions: Sendable {
        /// Weight of "the write reached the disk".
        public var keepWeight: Int
        /// Weight of "the write was lost".
        public var dropWeight: Int
        /// Weight of "a prefix of the write reached the disk".
        public var tearWeight: Int
        /// When a write is torn, fill the rest of its range with random bytes instead of leaving the
        /// old contents (a sector written with junk).
        public var tornWritesLeaveGarbage: Bool
        /// Weight of "a truncation since the last sync was kept" against `dropWeight` for dropping it.
        public var keepTruncateWeight: Int

        /// Creates options; the default gives keep, drop and tear equal chances.
        public init(keepWeight: Int = 1, dropWeight: Int = 1, tearWeight: Int = 1, tornWritesLeaveGarbage: Bool = false, keepTruncateWeight: Int = 1) {
            precondition(keepWeight >= 0 && dropWeight >= 0 && tearWeight >= 0 && keepTruncateWeight >= 0, "negative weight")
            precondition(keepWeight + dropWeight + tearWeight > 0, "all crash weights are zero")
            self.keepWeight = keepWeight
            self.dropWeight = dropWeight
            self.tearWeight = tearWeight
            self.tornWritesLeaveGarbage = tornWritesLeaveGarbage
            self.keepTruncateWeight = keepTruncateWeight
        }

        /// Every unsynced write and truncation is lost: files revert to their last synced bytes.
        public static let dropAll = CrashOptions(keepWeight: 0, dropWeight: 1, tearWeight: 0, keepTruncateWeight: 0)
        /// Every unsynced write and truncation reaches the disk.
        public static let keepAll = CrashOptions(keepWeight: 1, dropWeight: 0, tearWeight: 0)
    }

    /// One entry of a file's unsynced log.
    enum PendingChange {
        case write(offset: Int, bytes: [UInt8])
        case truncate(size: Int)
    }

    final class Inode {
        var path: String
        var current: [UInt8] = []
        var durable: [UInt8] = []
        var pending: [PendingChange] = []
        var isLinked = true
        /// Durable directory entries naming this inode (it survives a crash while this is > 0).
        var durableLinks = 0

        init(path: String) { self.path = path }
    }

    enum Entry {
        case file(Int)
        case directory
    }

    struct OpenFile {
        var inode: Int
        var writable: Bool
    }

    struct State {
        var entries: [String: Entry] = ["/": .directory]
        /// The entries as they survive a crash: each directory's entries as of its last sync.
        var durableEntries: [String: Entry] = ["/": .directory]
        /// Inodes gone from `entries` (unlinked, no descriptor left) that a durable entry still names:
        /// a crash brings them back.
        var ghosts: [Int: Inode] = [:]
        var inodes: [Int: Inode] = [:]
        var nextInode = 1
        var descriptors: [Int32: OpenFile] = [:]
        var nextDescriptor: Int32 = 1000
        var faults: [Fault] = []
        var nextFaultID = 1
        var capacityBytes: Int?
        var partialWritesWhenFull = false
        var counters = Counters()
    }

    /// Operation counts, for tests that check batching and syncing.
    public struct Counters: Sendable, Equatable {
        /// Successful writes (direct or in `submit`).
        public var writes = 0
        /// Successful `fdatasync` calls (direct or in `submit`).
        public var syncs = 0
        /// `submit` calls.
        public var submits = 0
        /// Crashes simulated.
        public var crashes = 0
        /// Faults that fired.
        public var faultsFired = 0
    }

    let state = Mutex(State())

    /// Creates an empty disk: only `/` exists.
    ///
    /// - Parameter capacityBytes: Total bytes all files may hold; writes beyond fail with ENOSPC.
    public init(capacityBytes: Int? = nil) {
        state.withLock { $0.capacityBytes = capacityBytes }
    }

    /// Total bytes all files may hold (current sizes); nil for unlimited.
    public var capacityBytes: Int? {
        get { state.withLock { $0.capacityBytes } }
        set { state.withLock { $0.capacityBytes = newValue } }
    }

    /// When true, a write that does not fit stores the bytes that do (a torn write, as a real file
    /// system's short write before ENOSPC) and then fails with ENOSPC; when false (default) it
    /// stores nothing.
    public var partialWritesWhenFull: Bool {
        get { state.withLock { $0.partialWritesWhenFull } }
        set { state.withLock { $0.partialWritesWhenFull = newValue } }
    }

    /// Operation counts so far.
    public var counters: Counters { state.withLock { $0.counters } }

    /// Bytes held by all files (current sizes).
    public var usedBytes: Int { state.withLock { $0.usedBytes } }

    // MARK: Files

    public func open(_ path: String, mode: OpenMode) throws(DiskError) -> Int32 {
        let path = Self.normalize(path)
        return try state.withLock { (state) throws(DiskError) -> Int32 in
            try state.checkFault(.open, path: path)
            let inode: Int
            switch state.entries[path] {
            case .directory?:
                throw DiskError(.open, path: path, errno: EISDIR)
            case .file(let existing)?:
                inode = existing
            case nil:
                guard mode == .createReadWrite else { throw DiskError(.open, path: path, errno: ENOENT) }
                try state.requireParentDirectory(of: path, for: .open)
                inode = state.nextInode
                state.nextInode += 1
                state.inodes[inode] = Inode(path: path)
                state.entries[path] = .file(inode)
            }
            let fd = state.nextDescriptor
            state.nextDescriptor += 1
            state.descriptors[fd] = OpenFile(inode: inode, writable: mode != .readOnly)
            return fd
        }
    }

    public func close(_ fd: Int32) {
        state.withLock { state in
            guard let file = state.descriptors.removeValue(forKey: fd) else { return }
            state.dropInodeIfOrphaned(file.inode)
        }
    }

    public func fileSize(_ fd: Int32) throws(DiskError) -> Int64 {
        try state.withLock { (state) throws(DiskError) -> Int64 in
            let (_, inode) = try state.file(fd, for: .stat)
            try state.checkFault(.stat, path: inode.path)
            return Int64(inode.current.count)
        }
    }

    public func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(DiskError) -> Int {
        precondition(offset >= 0, "negative file offset")
        return try state.withLock { (state) throws(DiskError) -> Int in
            let (_, inode) = try state.file(fd, for: .read)
            try state.checkFault(.read, path: inode.path)
            let start = Int(offset)
            guard start < inode.current.count else { return 0 }
            let count = min(buffer.count, inode.current.count - start)
            inode.current.withUnsafeBytes { source in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[start..<(start + count)]))
            }
            return count
        }
    }

    public func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(DiskError) {
        precondition(offset >= 0, "negative file offset")
        let written = Array(bytes)  // copied outside the lock: the caller's memory stays out of the state's region
        try state.withLock { (state) throws(DiskError) in try state.write(fd, written, at: Int(offset)) }
    }

    public func submit(_ operations: inout [IOOperation]) {
        // Copy out, run under the lock, copy back: `inout` parameters cannot be captured by `withLock`.
        var batch = operations
        state.withLock { state in
            state.counters.submits += 1
            for index in batch.indices {
                switch batch[index].kind {
                case .write(let fd, let offset, let bytes):
                    do throws(DiskError) {
                        try state.checkFault(.submit, path: try state.file(fd, for: .write).1.path)
                        try state.write(fd, Array(bytes), at: Int(offset))
                        batch[index].result = .success(bytes.count)
                    } catch {
                        batch[index].result = .failure(error)
                    }
                case .fdatasync(let fd):
                    do throws(DiskError) {
                        try state.checkFault(.submit, path: try state.file(fd, for: .sync).1.path)
                        try state.fdatasync(fd)
                        batch[index].result = .success(0)
                    } catch {
                        batch[index].result = .failure(error)
                    }
                case .syncFileRange(let fd, _, _):
                    // Write-behind only: no durability, so nothing changes beyond fault checks.
                    do throws(DiskError) {
                        let path = try state.file(fd, for: .sync).1.path
                        try state.checkFault(.submit, path: path)
                        try state.checkFault(.sync, path: path)
                        batch[index].result = .success(0)
                    } catch {
                        batch[index].result = .failure(error)
                    }
                }
            }
        }
        operations = batch
    }

    public func fdatasync(_ fd: Int32) throws(DiskError) {
        try state.withLock { (state) throws(DiskError) in try state.fdatasync(fd) }
    }

    public func truncate(_ fd: Int32, to size: Int64) throws(DiskError) {
        precondition(size >= 0, "negative file size")
        try state.withLock { (state) throws(DiskError) in
            let (file, inode) = try state.file(fd, for: .truncate)
            guard file.writable else { throw DiskError(.truncate, path: inode.path, errno: EINVAL, detail: "fd is read-only") }
            try state.checkFault(.truncate, path: inode.path)
            let newSize = Int(size)
            if newSize > inode.current.count {
                try state.checkCapacity(growth: newSize - inode.current.count, operation: .truncate, path: inode.path)
            }
            Self.resize(&inode.current, to: newSize)
            inode.pending.append(.truncate(size: newSize))
        }
    }

    // MARK: Names and directories

    public func rename(_ from: String, to: String) throws(DiskError) {
        let from = Self.normalize(from)
        let to = Self.normalize(to)
        try state.withLock { (state) throws(DiskError) in
            try state.checkFault(.rename, path: from)
            guard let entry = state.entries[from] else { throw DiskError(.rename, path: from, errno: ENOENT) }
            try state.requireParentDirectory(of: to, for: .rename)
            if from == to { return }
            switch entry {
            case .file(let inode):
                switch state.entries[to] {
                case .directory?:
                    throw DiskError(.rename, path: from, errno: EISDIR, detail: "target \(to) is a directory")
                case .file(let replaced)?:
                    state.unlinkInode(replaced)
                case nil:
                    break
                }
                state.entries[to] = .file(inode)
                state.entries[from] = nil
                state.inodes[inode]?.path = to
            case .directory:
                guard !to.hasPrefix(from + "/") else {
                    throw DiskError(.rename, path: from, errno: EINVAL, detail: "cannot move a directory into itself")
                }
                switch state.entries[to] {
                case .file?:
                    throw DiskError(.rename, path: from, errno: ENOTDIR, detail: "target \(to) is a file")
                case .directory?:
                    guard state.children(of: to).isEmpty else {
                        throw DiskError(.rename, path: from, errno: ENOTEMPTY, detail: "target \(to) is not empty")
                    }
                case nil:
                    break
                }
                let prefix = from == "/" ? "/" : from + "/"
                let moved = state.entries.keys.filter { $0 == from || $0.hasPrefix(prefix) }
                var renamed: [(String, Entry)] = []
                for path in moved {
                    guard let movedEntry = state.entries.removeValue(forKey: path) else { continue }
                    let newPath = to + path.dropFirst(from.count)
                    renamed.append((newPath, movedEntry))
                    if case .file(let inode) = movedEntry { state.inodes[inode]?.path = newPath }
                }
                for (path, movedEntry) in renamed { state.entries[path] = movedEntry }
            }
        }
    }

    public func unlink(_ path: String) throws(DiskError) {
        let path = Self.normalize(path)
        try state.withLock { (state) throws(DiskError) in
            try state.checkFault(.unlink, path: path)
            switch state.entries[path] {
            case nil: throw DiskError(.unlink, path: path, errno: ENOENT)
            case .directory?: throw DiskError(.unlink, path: path, errno: EISDIR)
            case .file(let inode)?:
                state.entries[path] = nil
                state.unlinkInode(inode)
            }
        }
    }

    public func createDirectory(_ path: String) throws(DiskError) {
        let path = Self.normalize(path)
        try state.withLock { (state) throws(DiskError) in
            var prefix = ""
            for component in path.split(separator: "/") {
                prefix += "/" + component
                switch state.entries[prefix] {
                case .directory?: continue
                case .file?: throw DiskError(.mkdir, path: prefix, errno: ENOTDIR)
                case nil:
                    try state.checkFault(.mkdir, path: prefix)
                    state.entries[prefix] = .directory
                }
            }
        }
    }

    public func removeDirectory(_ path: String) throws(DiskError) {
        let path = Self.normalize(path)
        try state.withLock { (state) throws(DiskError) in
            try state.checkFault(.rmdir, path: path)
            switch state.entries[path] {
            case nil: throw DiskError(.rmdir, path: path, errno: ENOENT)
            case .file?: throw DiskError(.rmdir, path: path, errno: ENOTDIR)
            case .directory?: break
            }
            guard path != "/" else { throw DiskError(.rmdir, path: path, errno: EBUSY) }
            let doomed = state.entries.keys.filter { $0 == path || $0.hasPrefix(path + "/") }
            for name in doomed {
                if case .file(let inode)? = state.entries.removeValue(forKey: name) {
                    state.unlinkInode(inode)
                }
            }
        }
    }

    /// Entry names sorted bytewise, excluding `.` and `..`.
    public func listDirectory(_ path: String) throws(DiskError) -> [String] {
        let path = Self.normalize(path)
        return try state.withLock { (state) throws(DiskError) -> [String] in
            try state.checkFault(.list, path: path)
            switch state.entries[path] {
            case nil: throw DiskError(.list, path: path, errno: ENOENT)
            case .file?: throw DiskError(.list, path: path, errno: ENOTDIR)
            case .directory?: return state.children(of: path)
            }
        }
    }

    public func fileExists(_ path: String) -> Bool {
        let path = Self.normalize(path)
        return state.withLock { $0.entries[path] != nil }
    }

    public func isDirectory(_ path: String) -> Bool {
        let path = Self.normalize(path)
        return state.withLock { state in
            if case .directory? = state.entries[path] { return true }
            return false
        }
    }

    /// Makes the directory's current entries durable (adds, renames and removals in it since its
    /// last sync); entries of its subdirectories need their own sync.
    public func syncDirectory(_ path: String) throws(DiskError) {
        let path = Self.normalize(path)
        try state.withLock { (state) throws(DiskError) in
            guard case .directory? = state.entries[path] else {
                throw DiskError(.sync, path: path, errno: state.entries[path] == nil ? ENOENT : ENOTDIR)
            }
            try state.checkFault(.sync, path: path)
            state.makeEntriesDurable(in: path)
        }
    }

    /// Directory changes not yet made durable by a sync of their directory (added, changed or
    /// removed entries), for tests.
    public func unsyncedDirectoryChangeCount() -> Int {
        state.withLock { state in
            var count = 0
            for (path, entry) in state.entries where !State.sameEntry(state.durableEntries[path], entry) { count += 1 }
            for path in state.durableEntries.keys where state.entries[path] == nil { count += 1 }
            return count
        }
    }

    // MARK: Crash

    /// Simulates power loss and reboot. Every open fd becomes invalid (EBADF); the directory tree
    /// becomes its durable entries (see the type comment; files no durable entry names disappear,
    /// unlinked ones a durable entry still names come back); each file becomes its durable bytes plus, replayed in order, each change
    /// made since its last sync: a write is kept, dropped or torn (a random prefix kept, the rest
    /// left as before or filled with garbage) independently per `options`; a truncation is kept or
    /// dropped. The result becomes both current and durable. Deterministic for a given generator
    /// state: files are visited in creation order.
    ///
    /// - Parameters:
    ///   - rng: The seeded generator deciding each write's fate.
    ///   - options: Weights of keep / drop / tear.
    public func crash(using rng: inout some RandomNumberGenerator, options: CrashOptions = CrashOptions()) {
        state.withLock { state in
            state.counters.crashes += 1
            state.descriptors.removeAll()
            state.restoreDurableEntries()
            for id in state.inodes.keys.sorted() {
                guard let inode = state.inodes[id] else { continue }
                var bytes = inode.durable
                for change in inode.pending {
                    Self.apply(change, to: &bytes, options: options, using: &rng)
                }
                inode.current = bytes
                inode.durable = bytes
                inode.pending.removeAll()
            }
        }
    }

    // MARK: Inspection

    /// What reads of `path` see now, or nil if it is not a file.
    public func currentContents(of path: String) -> [UInt8]? {
        let path = Self.normalize(path)
        return state.withLock { state in
            guard case .file(let inode)? = state.entries[path] else { return nil }
            return state.inodes[inode]?.current
        }
    }

    /// What `path` would hold after a crash that loses every unsynced change, or nil if not a file.
    public func durableContents(of path: String) -> [UInt8]? {
        let path = Self.normalize(path)
        return state.withLock { state in
            guard case .file(let inode)? = state.entries[path] else { return nil }
            return state.inodes[inode]?.durable
        }
    }

    /// Number of changes to `path` not yet made durable by `fdatasync`.
    public func unsyncedChangeCount(of path: String) -> Int {
        let path = Self.normalize(path)
        return state.withLock { state in
            guard case .file(let inode)? = state.entries[path] else { return 0 }
            return state.inodes[inode]?.pending.count ?? 0
        }
    }

    /// Every file path, sorted.
    public func allFiles() -> [String] {
        state.withLock { state in
            state.entries.compactMap { path, entry in
                if case .file = entry { return path }
                return nil
            }.sorted()
        }
    }

    /// Number of open file descriptors (to find leaks).
    public var openDescriptorCount: Int { state.withLock { $0.descriptors.count } }

    // MARK: Helpers

    static func apply(_ change: PendingChange, to bytes: inout [UInt8], options: CrashOptions, using rng: inout some RandomNumberGenerator) {
        switch change {
        case .truncate(let size):
            let total = options.keepTruncateWeight + options.dropWeight
            guard total > 0, Int.random(in: 0..<total, using: &rng) < options.keepTruncateWeight else { return }
            resize(&bytes, to: size)
        case .write(let offset, let written):
            let total = options.keepWeight + options.dropWeight + options.tearWeight
            let pick = Int.random(in: 0..<total, using: &rng)
            if pick < options.keepWeight {
                place(written[...], at: offset, in: &bytes)
            } else if pick < options.keepWeight + options.dropWeight {
                return
            } else {
                guard !written.isEmpty else { return }
                let kept = Int.random(in: 0..<written.count, using: &rng)
                if options.tornWritesLeaveGarbage {
                    var torn = Array(written[0..<kept])
                    torn.reserveCapacity(written.count)
                    for _ in kept..<written.count { torn.append(UInt8.random(in: 0...255, using: &rng)) }
                    place(torn[...], at: offset, in: &bytes)
                } else if kept > 0 {
                    place(written[0..<kept], at: offset, in: &bytes)
                }
            }
        }
    }

    static func place(_ written: ArraySlice<UInt8>, at offset: Int, in bytes: inout [UInt8]) {
        let end = offset + written.count
        if end > bytes.count { resize(&bytes, to: end) }
        bytes.replaceSubrange(offset..<end, with: written)
    }

    static func resize(_ bytes: inout [UInt8], to size: Int) {
        if size < bytes.count {
            bytes.removeLast(bytes.count - size)
        } else if size > bytes.count {
            bytes.append(contentsOf: repeatElement(0, count: size - bytes.count))
        }
    }

    /// `/a//b/./c/` → `/a/b/c`; relative paths are taken from `/`.
    static func normalize(_ path: String) -> String {
        let components = path.split(separator: "/").filter { $0 != "." }
        return "/" + components.joined(separator: "/")
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }
}

extension SimulatedDisk.State {
    var usedBytes: Int { inodes.values.reduce(0) { $0 + $1.current.count } }

    func file(_ fd: Int32, for operation: DiskError.Operation) throws(DiskError) -> (SimulatedDisk.OpenFile, SimulatedDisk.Inode) {
        guard let file = descriptors[fd], let inode = inodes[file.inode] else {
            throw DiskError(operation, errno: EBADF, detail: "fd \(fd) is not open")
        }
        return (file, inode)
    }

    func requireParentDirectory(of path: String, for operation: DiskError.Operation) throws(DiskError) {
        let parent = SimulatedDisk.parent(of: path)
        switch entries[parent] {
        case .directory?: return
        case .file?: throw DiskError(operation, path: path, errno: ENOTDIR)
        case nil: throw DiskError(operation, path: path, errno: ENOENT, detail: "no directory \(parent)")
        }
    }

    func children(of directory: String) -> [String] {
        let prefix = directory == "/" ? "/" : directory + "/"
        return entries.keys.compactMap { path -> String? in
            guard path != "/", path.hasPrefix(prefix) else { return nil }
            let rest = path.dropFirst(prefix.count)
            return rest.contains("/") ? nil : String(rest)
        }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    func checkCapacity(growth: Int, operation: DiskError.Operation, path: String) throws(DiskError) {
        guard let capacityBytes, growth > 0 else { return }
        if usedBytes + growth > capacityBytes {
            throw DiskError(operation, path: path, errno: ENOSPC, detail: "simulated disk full (\(capacityBytes) bytes)")
        }
    }

    mutating func write(_ fd: Int32, _ written: [UInt8], at start: Int) throws(DiskError) {
        let (file, inode) = try file(fd, for: .write)
        guard file.writable else { throw DiskError(.write, path: inode.path, errno: EBADF, detail: "fd is read-only") }
        try checkFault(.write, path: inode.path)
        let end = start + written.count
        if partialWritesWhenFull, let capacityBytes, start <= inode.current.count, usedBytes + (end - inode.current.count) > capacityBytes {
            let fit = min(written.count, inode.current.count - start + max(0, capacityBytes - usedBytes))
            if fit > 0 {
                SimulatedDisk.place(written[..<fit], at: start, in: &inode.current)
                inode.pending.append(.write(offset: start, bytes: Array(written[..<fit])))
            }
            throw DiskError(.write, path: inode.path, errno: ENOSPC, detail: "simulated disk full (\(capacityBytes) bytes) after \(fit) of \(written.count) bytes")
        }
        try checkCapacity(growth: end - inode.current.count, operation: .write, path: inode.path)
        SimulatedDisk.place(written[...], at: start, in: &inode.current)
        inode.pending.append(.write(offset: start, bytes: written))
        counters.writes += 1
    }

    mutating func fdatasync(_ fd: Int32) throws(DiskError) {
        let (_, inode) = try file(fd, for: .sync)
        try checkFault(.sync, path: inode.path)
        inode.durable = inode.current
        inode.pending.removeAll()
        counters.syncs += 1
    }

    static func sameEntry(_ a: SimulatedDisk.Entry?, _ b: SimulatedDisk.Entry?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case (.directory?, .directory?): return true
        case (.file(let x)?, .file(let y)?): return x == y
        default: return false
        }
    }

    /// `syncDirectory`: the directory's durable entries become its current ones.
    mutating func makeEntriesDurable(in directory: String) {
        let stale = durableEntries.keys.filter { $0 != "/" && SimulatedDisk.parent(of: $0) == directory }
        for path in stale where !Self.sameEntry(durableEntries[path], entries[path]) { setDurable(path, nil) }
        for (path, entry) in entries where path != "/" && SimulatedDisk.parent(of: path) == directory {
            if !Self.sameEntry(durableEntries[path], entry) { setDurable(path, entry) }
        }
    }

    private mutating func setDurable(_ path: String, _ entry: SimulatedDisk.Entry?) {
        if case .file(let old)? = durableEntries[path] {
            if let inode = inodes[old] ?? ghosts[old] { inode.durableLinks -= 1 }
            if let ghost = ghosts[old], ghost.durableLinks <= 0 { ghosts[old] = nil }
        }
        durableEntries[path] = entry
        if case .file(let id)? = entry, let inode = inodes[id] ?? ghosts[id] { inode.durableLinks += 1 }
    }

    /// After a crash: the namespace is the durable one (entries whose directories all survived);
    /// inodes no surviving entry names are gone, ghosts a surviving entry names come back.
    mutating func restoreDurableEntries() {
        var surviving: [String: SimulatedDisk.Entry] = ["/": .directory]
        for path in durableEntries.keys.sorted(by: { $0.count < $1.count }) where path != "/" {
            guard case .directory? = surviving[SimulatedDisk.parent(of: path)] else { continue }
            surviving[path] = durableEntries[path]
        }
        var restored: [Int: SimulatedDisk.Inode] = [:]
        for (path, entry) in surviving {
            guard case .file(let id) = entry, let inode = inodes[id] ?? ghosts[id] else { continue }
            inode.isLinked = true
            inode.path = path
            restored[id] = inode
        }
        for inode in restored.values { inode.durableLinks = 0 }
        for entry in surviving.values {
            if case .file(let id) = entry { restored[id]?.durableLinks += 1 }
        }
        entries = surviving
        durableEntries = surviving
        inodes = restored
        ghosts.removeAll()
    }

    mutating func unlinkInode(_ id: Int) {
        guard let inode = inodes[id] else { return }
        inode.isLinked = false
        dropInodeIfOrphaned(id)
    }

    mutating func dropInodeIfOrphaned(_ id: Int) {
        guard let inode = inodes[id], !inode.isLinked else { return }
        if !descriptors.values.contains(where: { $0.inode == id }) {
            inodes[id] = nil
            // Still named by a durable entry: an unsynced unlink, undone by a crash.
            if inode.durableLinks > 0 { ghosts[id] = inode }
        }
    }
}
