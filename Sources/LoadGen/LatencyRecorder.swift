import Histogram

/// A latency histogram in nanoseconds with the operations the tools need, so callers (and tests)
/// need not depend on hdrhistogram-swift directly.
public struct LatencyRecorder: Sendable {
    var histogram: Histogram<UInt64>

    public init() {
        histogram = LatencyHistogram.make()
    }

    init(_ histogram: Histogram<UInt64>) {
        self.histogram = histogram
    }

    /// Records one sample (clamped to 1 ns ... 1 h).
    public mutating func record(nanos: UInt64, count: UInt64 = 1) {
        LatencyHistogram.record(nanos, count: count, in: &histogram)
    }

    /// HdrHistogram's after-the-fact correction: also records `nanos - k × expectedInterval` for
    /// every k while that exceeds the interval. For comparing with by-construction correction.
    public mutating func recordCorrected(nanos: UInt64, expectedIntervalNanos: UInt64) {
        _ = histogram.recordCorrectedValue(min(max(nanos, 1), LatencyHistogram.highestTrackableNanos), expectedInterval: expectedIntervalNanos)
    }

    public mutating func add(_ other: LatencyRecorder) {
        histogram.add(other.histogram)
    }

    public var count: UInt64 { histogram.totalCount }

    public var summary: LatencySummary { LatencySummary(histogram) }

    /// The value at `percentile` (0...100), in nanoseconds.
    public func nanos(atPercentile percentile: Double) -> UInt64 { histogram.valueAtPercentile(percentile) }

    /// HdrHistogram percentile-distribution text, values in milliseconds.
    public var percentileDistribution: String { LatencyHistogram.percentileDistribution(histogram) }

    /// A plot series for `LatencyPlot.svg`.
    public func plotSeries(label: String) -> LatencyPlot.Series { LatencyPlot.Series(label: label, histogram: histogram) }
}
