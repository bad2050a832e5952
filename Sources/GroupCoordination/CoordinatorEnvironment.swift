public import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time for the coordinator (commit timestamps, group state timestamps, offset
/// retention). Injected so tests drive time (STYLE §5.3).
public protocol CoordinatorClock: Sendable {
    /// Milliseconds since the Unix epoch.
    func nowMilliseconds() -> Int64
}

/// A scheduled timer that can be cancelled. Cancelling a timer that already fired is a no-op.
public protocol CancellableTimer: Sendable {
    func cancel()
}

/// Runs a body after a delay. The coordinator never calls `body` itself and re-validates its state
/// when a timer fires, so a timer that fires after `cancel()` is harmless. `schedule` must not run
/// `body` synchronously.
public protocol CoordinatorScheduler: Sendable {
    func schedule(after ms: Int64, _ body: @escaping @Sendable () -> Void) -> any CancellableTimer
}

/// Where coordinator records go: the broker appends them, in call order, to the compacted topic
/// `__consumer_offsets` and calls `completion(true)` once they are durable (`false` on failure).
/// `completion` may be called on any thread, also synchronously from inside `persist`.
public protocol GroupStore: Sendable {
    func persist(_ records: [CoordinatorRecord], completion: @escaping @Sendable (Bool) -> Void)
    /// TxnOffsetCommit: appends the records as one transactional batch of `producerId`/`producerEpoch`
    /// (they take effect when the transaction's COMMIT marker is written).
    func persistTransactional(
        _ records: [CoordinatorRecord], producerId: Int64, producerEpoch: Int16, completion: @escaping @Sendable (Bool) -> Void)
}

extension GroupStore {
    /// Stores without a transactional log refuse transactional commits.
    public func persistTransactional(
        _ records: [CoordinatorRecord], producerId: Int64, producerEpoch: Int16, completion: @escaping @Sendable (Bool) -> Void
    ) { completion(false) }
}

/// Reads the system real-time clock.
public struct SystemCoordinatorClock: CoordinatorClock {
    public init() {}

    public func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// Schedules coordinator timers on a NIO event loop.
public struct EventLoopCoordinatorScheduler: CoordinatorScheduler {
    public let eventLoop: any EventLoop

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func schedule(after ms: Int64, _ body: @escaping @Sendable () -> Void) -> any CancellableTimer {
        ScheduledTimer(scheduled: eventLoop.scheduleTask(in: .milliseconds(ms), body))
    }

    private struct ScheduledTimer: CancellableTimer {
        let scheduled: Scheduled<Void>
        func cancel() { scheduled.cancel() }
    }
}

/// Who sent a request; recorded per member (Kafka's `clientId` / `clientHost`) and used for member
/// ids (`<clientId>-<uuid>`).
public struct GroupClientInfo: Sendable, Hashable {
    public var clientId: String
    public var clientHost: String

    public init(clientId: String = "", clientHost: String = "") {
        self.clientId = clientId
        self.clientHost = clientHost
    }
}

/// This broker as advertised in FindCoordinator responses.
public struct CoordinatorNode: Sendable, Hashable {
    public var nodeId: Int32
    public var host: String
    public var port: Int32

    public init(nodeId: Int32, host: String, port: Int32) {
        self.nodeId = nodeId
        self.host = host
        self.port = port
    }
}
