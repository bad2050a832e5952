import NIOCore
import Synchronization

/// Totals shared by the drivers and the progress line (drivers run on different event loops).
public final class BenchCounters: Sendable {
    /// Records acknowledged by the broker (or written, for acks=0).
    public let producedRecords = Atomic<Int>(0)
    /// Records received by consumers.
    public let consumedRecords = Atomic<Int>(0)
    /// Produce requests that failed.
    public let errors = Atomic<Int>(0)

    public init() {}
}

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC, through NIO).
enum Clock {
    @inline(__always)
    static func nanos() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
}
