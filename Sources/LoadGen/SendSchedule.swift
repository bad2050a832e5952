/// When each record is meant to be sent in a rate-limited run: record `i` at `start + i × interval`.
///
/// Latency is measured from this intended time, not from when the client got round to sending,
/// so a stalled broker is charged for every record that should have gone out during the stall
/// (coordinated omission is corrected by construction: no samples are ever skipped). This gives
/// the same distribution as HdrHistogram's `recordCorrectedValue` when the client sends in lockstep.
public struct SendSchedule: Sendable, Equatable {
    /// Uptime nanoseconds of record 0.
    public var startNanos: UInt64
    /// Nanoseconds between records (fractional: rates need not divide a second).
    public var intervalNanos: Double

    /// - Parameters:
    ///   - startNanos: When record 0 is due (monotonic nanoseconds).
    ///   - rate: Records per second.
    public init(startNanos: UInt64, rate: Double) {
        precondition(rate > 0, "rate must be positive")
        self.startNanos = startNanos
        self.intervalNanos = 1e9 / rate
    }

    /// When record `index` is due.
    @inline(__always)
    public func intendedNanos(_ index: Int) -> UInt64 {
        startNanos &+ UInt64(Double(index) * intervalNanos)
    }

    /// How many records are due at `nowNanos` (records `0..<n` have intended time ≤ now).
    public func dueCount(at nowNanos: UInt64) -> Int {
        guard nowNanos >= startNanos else { return 0 }
        return Int((Double(nowNanos - startNanos) / intervalNanos).rounded(.down)) + 1
    }
}
