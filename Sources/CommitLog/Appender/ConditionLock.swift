#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex with one condition variable, for the appender's queue (the standard library's
/// `Mutex` has no way to wait).
final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    /// Waits for a signal; call with the lock held.
    func wait() { pthread_cond_wait(condition, mutex) }
    func broadcast() { pthread_cond_broadcast(condition) }
    func signal() { pthread_cond_signal(condition) }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A detached-joinable pthread running one closure.
final class WorkerThread: @unchecked Sendable {
    #if canImport(Glibc)
    private var thread = pthread_t()
    #else
    private var thread: pthread_t?
    #endif
    private let body: () -> Void
    private(set) var started = false

    init(name: String, body: @escaping () -> Void) {
        self.body = body
        self.name = name
    }

    let name: String

    func start() {
        precondition(!started, "thread already started")
        started = true
        let box = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(&thread, nil, { raw in
            let worker = Unmanaged<WorkerThread>.fromOpaque(raw!).takeRetainedValue()
            worker.body()
            return nil
        }, box)
        precondition(result == 0, "pthread_create failed: \(result)")
    }

    func join() {
        guard started else { return }
        #if canImport(Glibc)
        pthread_join(thread, nil)
        #else
        if let thread { pthread_join(thread, nil) }
        #endif
    }

    /// Whether the calling thread is this one.
    var isCurrent: Bool {
        guard started else { return false }
        #if canImport(Glibc)
        return pthread_equal(pthread_self(), thread) != 0
        #else
        guard let thread else { return false }
        return pthread_equal(pthread_self(), thread) != 0
        #endif
    }
}

/// Stable scratch memory for one append group: index entries and staged batch copies must stay put
/// until `submit` returns, so the arena hands out pieces of chunks it never moves, and reuses the
/// chunks for the next group (no fresh pages on the hot path once warm).
final class ScratchArena {
    private static let chunkByteCount = 4 << 20
    private var chunks: [UnsafeMutableRawBufferPointer] = []
    /// The chunk being filled, and how much of it is used.
    private var chunkIndex = 0
    private var used = 0

    deinit { for chunk in chunks { chunk.deallocate() } }

    func reset() {
        chunkIndex = 0
        used = 0
    }

    /// `aligned: false` packs allocations back to back (staged batch copies), so consecutive ones are
    /// contiguous and their writes can be joined.
    func allocate(_ byteCount: Int, aligned alignResult: Bool = true) -> UnsafeMutableRawBufferPointer {
        if alignResult { used = (used + 15) & ~15 }
        while chunkIndex < chunks.count {
            if used + byteCount <= chunks[chunkIndex].count { break }
            chunkIndex += 1
            used = 0
        }
        if chunkIndex == chunks.count {
            chunks.append(.allocate(byteCount: max(byteCount, Self.chunkByteCount), alignment: 16))
            used = 0
        }
        let slice = UnsafeMutableRawBufferPointer(rebasing: chunks[chunkIndex][used..<(used + byteCount)])
        used += byteCount
        return slice
    }
}
