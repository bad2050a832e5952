#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
