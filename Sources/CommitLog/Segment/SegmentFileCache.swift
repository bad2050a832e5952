import DiskIO
import Synchronization

/// The store's file-descriptor budget (`petrel.log.open.files.max`): which segment `.log` files are open.
///
/// A partition keeps one descriptor for sure — its active segment's `.log`, which the appender
/// writes — plus, briefly, the files of a segment rolled but not yet flushed. Those segments are
/// *pinned*. Every other (inactive) segment is opened on demand by a reader (`acquire`) and stays
/// open in least-recently-used order while the open count is within `capacity`; past it, the
/// least recently used unpinned segments are closed. Index files hold no descriptor at all: the
/// indexes live in memory and their files are written whole when a segment stops being active
/// (`LogSegment.deactivate`).
///
/// Closing is a lease, not a `close(2)`: eviction only drops the cache's reference to the
/// segment's `SegmentFileHandle`. A fetch still sending from it (its `FileSlice`s retain the
/// handle until sendfile is done), a compaction pass or the appender keeps the descriptor alive
/// until it lets go; the handle closes the descriptor on its last release. So the budget can be
/// exceeded briefly by the descriptors of sends in flight, never by idle segments.
///
/// Lock order: a partition's state lock may be held while calling `acquire`; the cache never takes
/// a partition lock.
public final class SegmentFileCache: @unchecked Sendable {
    let io: any FileIO
    /// Most `.log` descriptors kept open (pinned ones included); `Int.max` is unbounded.
    public let capacity: Int

    private struct State {
        /// Unpinned segments whose `.log` is open, by identity.
        var evictable: [ObjectIdentifier: LogSegment] = [:]
        var tick: UInt64 = 0
        var evictions = 0
    }

    private let state = Mutex(State())
    /// Segments registered with this cache that hold an open `.log` (pinned or not).
    private let openCount = Atomic<Int>(0)

    public init(io: any FileIO, capacity: Int = .max) {
        self.io = io
        self.capacity = max(1, capacity)
    }

    /// `.log` descriptors held open by segments now (tests, metrics).
    public var openFileCount: Int { openCount.load(ordering: .relaxed) }
    /// Segments closed by the LRU bound so far (tests, metrics).
    public var evictionCount: Int { state.withLock { $0.evictions } }

    /// Adopts segments (new, loaded or compacted): counts their open files; unpinned ones become
    /// evictable. Then enforces the bound.
    func register(_ segments: [LogSegment]) {
        state.withLock { s in
            for segment in segments where segment.cache == nil {
                segment.cache = self
                guard segment.handle != nil else { continue }
                openCount.add(1, ordering: .relaxed)
                if !segment.pinned {
                    s.tick += 1
                    segment.lastUse = s.tick
                    s.evictable[ObjectIdentifier(segment)] = segment
                }
            }
            evictIfNeeded(&s)
        }
    }

    /// The segment's open `.log`, opening it if the LRU closed it (or it was never opened). Hold the
    /// returned handle for as long as its descriptor is used.
    /// - Throws: the open's `DiskError` (e.g. the file was deleted meanwhile).
    func acquire(_ segment: LogSegment) throws(DiskError) -> SegmentFileHandle {
        try state.withLock { (s) throws(DiskError) -> SegmentFileHandle in
            s.tick += 1
            segment.lastUse = s.tick
            if let handle = segment.handle { return handle }
            let fd = try io.open(segment.logPath, mode: .readOnly)
            let handle = SegmentFileHandle(fd: fd, path: segment.logPath, io: io)
            segment.handle = handle
            if segment.cache == nil { segment.cache = self }
            openCount.add(1, ordering: .relaxed)
            if !segment.pinned { s.evictable[ObjectIdentifier(segment)] = segment }
            evictIfNeeded(&s)
            return handle
        }
    }

    /// A segment the appender no longer writes or syncs (flushed after it stopped being active):
    /// from now on the LRU may close it.
    func unpin(_ segment: LogSegment) {
        state.withLock { s in
            guard segment.pinned else { return }
            segment.pinned = false
            guard segment.handle != nil, segment.cache === self else { return }
            s.tick += 1
            segment.lastUse = s.tick
            s.evictable[ObjectIdentifier(segment)] = segment
            evictIfNeeded(&s)
        }
    }

    /// Segments removed from their log (retention, deletion, compaction): the cache lets go of them.
    /// Their descriptors close when the last reader releases the segment.
    func forget(_ segments: [LogSegment]) {
        state.withLock { s in
            for segment in segments { s.evictable[ObjectIdentifier(segment)] = nil }
        }
    }

    /// Called by `LogSegment.deinit` when it still held an open file.
    func segmentReleased() {
        openCount.subtract(1, ordering: .relaxed)
    }

    private func evictIfNeeded(_ s: inout State) {
        let open = openCount.load(ordering: .relaxed)
        guard open > capacity, !s.evictable.isEmpty else { return }
        // Close a little more than needed, so a steady stream of cold reads sorts rarely.
        let target = min(s.evictable.count, open - capacity + max(1, capacity / 64))
        let victims = s.evictable.values.sorted { $0.lastUse < $1.lastUse }.prefix(target)
        for segment in victims {
            s.evictable[ObjectIdentifier(segment)] = nil
            segment.handle = nil
            openCount.subtract(1, ordering: .relaxed)
            s.evictions += 1
        }
    }
}
