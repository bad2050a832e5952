import NIOCore
import Synchronization

/// Kafka's `queued.max.request.bytes` for Petrel: the bytes of partly received request frames,
/// summed over all connections. Connections charge it as bytes arrive (never by the declared frame
/// size) and release it when the frame is complete or the connection closes. While it is used up,
/// connections receiving a large frame stop reading (TCP backpressure) until bytes are released.
///
/// One connection at a time may overdraw it (the "overdraft") to finish the frame it is receiving,
/// so clients that are all waiting on each other's budget cannot deadlock; memory is therefore
/// bounded by the limit plus one frame (`socket.request.max.bytes`) plus one socket read per
/// connection.
final class RequestMemoryBudget: Sendable {
    let limit: Int

    private struct State {
        var used = 0
        var overdraftHolder: ObjectIdentifier?
        var waiters: [ObjectIdentifier: @Sendable () -> Void] = [:]
        var lastExhaustedLog: NIODeadline?
    }

    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = limit
    }

    var used: Int { state.withLock { $0.used } }

    func charge(_ bytes: Int) {
        state.withLock { $0.used += bytes }
    }

    /// Gives back `bytes`; also ends `owner`'s overdraft when it held it. Wakes every waiting
    /// connection once there is room (or the overdraft is free).
    func release(_ bytes: Int, owner: ObjectIdentifier) {
        let wake = state.withLock { s -> [@Sendable () -> Void] in
            s.used -= bytes
            if s.overdraftHolder == owner { s.overdraftHolder = nil }
            guard !s.waiters.isEmpty, s.used < limit || s.overdraftHolder == nil else { return [] }
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for resume in wake { resume() }
    }

    enum Admission {
        /// Read on.
        case proceed
        /// Budget used up: `resume` runs (on any thread) once there may be room.
        case wait
    }

    /// Whether `owner` (a connection in the middle of a large frame) may read more now. When the
    /// budget is used up it takes the overdraft if nobody holds it, else it is queued.
    func admit(_ owner: ObjectIdentifier, resume: @escaping @Sendable () -> Void) -> (Admission, logExhausted: Bool) {
        state.withLock { s in
            if s.used < limit || s.overdraftHolder == owner { return (.proceed, false) }
            if s.overdraftHolder == nil {
                s.overdraftHolder = owner
                return (.proceed, false)
            }
            s.waiters[owner] = resume
            let now = NIODeadline.now()
            let log = s.lastExhaustedLog.map { now - $0 > .seconds(10) } ?? true
            if log { s.lastExhaustedLog = now }
            return (.wait, log)
        }
    }

    /// Forgets a waiting connection (it closed).
    func cancelWait(_ owner: ObjectIdentifier) {
        state.withLock { _ = $0.waiters.removeValue(forKey: owner) }
    }
}
