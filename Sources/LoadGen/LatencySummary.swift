public import Histogram

/// The percentiles `petrel bench` reports, in nanoseconds.
public struct LatencySummary: Sendable, Equatable, Codable {
    public var count: UInt64
    public var p50: UInt64
    public var p90: UInt64
    public var p99: UInt64
    public var p999: UInt64
    public var p9999: UInt64
    public var max: UInt64
    public var mean: Double

    public init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        if count == 0 {
            p50 = 0; p90 = 0; p99 = 0; p999 = 0; p9999 = 0; max = 0; mean = 0
            return
        }
        p50 = histogram.valueAtPercentile(50)
        p90 = histogram.valueAtPercentile(90)
        p99 = histogram.valueAtPercentile(99)
        p999 = histogram.valueAtPercentile(99.9)
        p9999 = histogram.valueAtPercentile(99.99)
        max = histogram.max
        mean = histogram.mean
    }

    /// `p50 1.23 ms  p90 ...` for people.
    public var text: String {
        let parts: [(String, UInt64)] = [("p50", p50), ("p90", p90), ("p99", p99), ("p99.9", p999), ("p99.99", p9999), ("max", max)]
        return parts.map { "\($0.0) \(Self.format(nanos: $0.1))" }.joined(separator: "  ")
    }

    /// Nanoseconds as µs below 1 ms, ms below 10 s, else s, with three significant digits.
    public static func format(nanos: UInt64) -> String {
        let value = Double(nanos)
        if value < 1e6 { return Format.fixed(value / 1e3, significant: 3) + " µs" }
        if value < 1e10 { return Format.fixed(value / 1e6, significant: 3) + " ms" }
        return Format.fixed(value / 1e9, significant: 3) + " s"
    }
}

/// Latency histograms in nanoseconds: 1 ns to 1 hour at 3 significant digits (about 300 KiB).
public enum LatencyHistogram {
    public static let highestTrackableNanos: UInt64 = 3_600_000_000_000

    public static func make() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: highestTrackableNanos, numberOfSignificantValueDigits: .three)
    }

    /// Records `nanos`, clamping to the trackable range so an outlier never drops a sample.
    @inline(__always)
    public static func record(_ nanos: UInt64, count: UInt64 = 1, in histogram: inout Histogram<UInt64>) {
        _ = histogram.record(Swift.min(Swift.max(nanos, 1), highestTrackableNanos), count: count)
    }

    /// The HdrHistogram percentile-distribution text (values in milliseconds), as
    /// `HistogramLogProcessor` and the online plotter read it.
    public static func percentileDistribution(_ histogram: Histogram<UInt64>) -> String {
        var text = ""
        histogram.outputPercentileDistribution(to: &text, outputValueUnitScalingRatio: 1e6, percentileTicksPerHalfDistance: 5)
        return text
    }
}

/// Small number formatting without Foundation's locale machinery.
enum Format {
    /// `value` rounded to `significant` digits, no exponent: 1.23, 12.3, 123, 1234.
    static func fixed(_ value: Double, significant: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var decimals = significant - 1
        var magnitude = abs(value)
        while magnitude >= 10, decimals > 0 {
            magnitude /= 10
            decimals -= 1
        }
        return fixed(value, decimals: decimals)
    }

    /// `value` with exactly `decimals` digits after the point.
    static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = UInt64(scaled / scale)
        let fraction = UInt64(scaled - Double(whole) * scale)
        let sign = value < 0 && scaled != 0 ? "-" : ""
        guard decimals > 0 else { return "\(sign)\(whole)" }
        var fractionText = String(fraction)
        while fractionText.count < decimals { fractionText = "0" + fractionText }
        return "\(sign)\(whole).\(fractionText)"
    }
}
