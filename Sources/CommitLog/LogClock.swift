#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Time for the storage engine, a parameter so tests can drive rolls and flushes by hand.
public protocol LogClock: Sendable {
    /// Milliseconds since the Unix epoch (for LogAppendTime and `segment.ms`, `flush.ms`).
    func wallMilliseconds() -> Int64
    /// A monotonic clock in nanoseconds (for measuring durations).
    func monotonicNanoseconds() -> UInt64
}

/// The real clocks: `CLOCK_REALTIME` and `CLOCK_MONOTONIC`.
public struct SystemLogClock: LogClock {
    public init() {}

    public func wallMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    public func monotonicNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}
