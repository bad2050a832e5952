import Foundation
public import Histogram

/// A latency-by-percentile chart as a standalone SVG, in the style of HdrHistogram's plotter: the x
/// axis is `1/(1-percentile)` on a log scale (50%, 90%, 99%, ... evenly spaced), the y axis latency.
public enum LatencyPlot {
    /// One line on the chart.
    public struct Series: Sendable {
        public var label: String
        /// (percentile in 0..<100, latency nanoseconds), ascending.
        public var points: [(percentile: Double, nanos: UInt64)]

        public init(label: String, points: [(percentile: Double, nanos: UInt64)]) {
            self.label = label
            self.points = points
        }

        /// The histogram's percentile iteration, as the percentile-distribution file lists it.
        public init(label: String, histogram: Histogram<UInt64>) {
            var points: [(Double, UInt64)] = []
            for step in histogram.percentiles(ticksPerHalfDistance: 5) where step.percentileLevelIteratedTo < 100 {
                points.append((step.percentileLevelIteratedTo, step.value))
            }
            if histogram.totalCount > 0 { points.append((99.9999, histogram.max)) }
            self.init(label: label, points: points)
        }
    }

    static let width = 800.0
    static let height = 480.0
    static let left = 80.0
    static let right = 30.0
    static let top = 40.0
    static let bottom = 60.0
    static let decadesMax = 6.0 // up to 99.9999%
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"]

    /// x position (0...1 of the plot width) for a percentile: log10(1/(1-p)) over six decades.
    public static func xFraction(percentile: Double) -> Double {
        let p = Swift.min(Swift.max(percentile / 100, 0), 1 - 1e-6)
        return Swift.min(log10(1 / (1 - p)) / decadesMax, 1)
    }

    /// Renders the chart.
    ///
    /// - Parameters:
    ///   - title: Heading, e.g. the workload.
    ///   - series: Lines to draw; empty series are skipped.
    public static func svg(title: String, series: [Series]) -> String {
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let maxNanos = series.flatMap { $0.points.map(\.nanos) }.max() ?? 1
        let (yMax, yUnit, yScale) = axisScale(maxNanos: maxNanos)
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="22" text-anchor="middle" font-size="15">\(escape(title))</text>

        """
        // Grid and x labels.
        let xLabels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"]
        for (decade, label) in xLabels.enumerated() {
            let x = left + plotWidth * Double(decade) / decadesMax
            svg += "<line x1=\"\(f(x))\" y1=\"\(f(top))\" x2=\"\(f(x))\" y2=\"\(f(top + plotHeight))\" stroke=\"#ddd\"/>\n"
            svg += "<text x=\"\(f(x))\" y=\"\(f(top + plotHeight + 18))\" text-anchor=\"middle\">\(label)</text>\n"
        }
        let yTicks = 5
        for tick in 0...yTicks {
            let value = yMax * Double(tick) / Double(yTicks)
            let y = top + plotHeight - plotHeight * Double(tick) / Double(yTicks)
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(y))\" stroke=\"#ddd\"/>\n"
            svg += "<text x=\"\(f(left - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(Format.fixed(value, significant: 3))</text>\n"
        }
        svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 15))\" text-anchor=\"middle\">percentile</text>\n"
        svg += "<text x=\"20\" y=\"\(f(top + plotHeight / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 20 \(f(top + plotHeight / 2)))\">latency (\(yUnit))</text>\n"
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#333\"/>\n"
        // Lines and legend.
        for (index, line) in series.enumerated() where !line.points.isEmpty {
            let color = colors[index % colors.count]
            let coordinates = line.points.map { point in
                let x = left + plotWidth * xFraction(percentile: point.percentile)
                let y = top + plotHeight - plotHeight * Swift.min(Double(point.nanos) / yScale / yMax, 1)
                return "\(f(x)),\(f(y))"
            }
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(coordinates.joined(separator: " "))\"/>\n"
            let legendY = top + 16 + Double(index) * 16
            svg += "<rect x=\"\(f(left + 10))\" y=\"\(f(legendY - 9))\" width=\"12\" height=\"3\" fill=\"\(color)\"/>\n"
            svg += "<text x=\"\(f(left + 28))\" y=\"\(f(legendY - 4))\">\(escape(line.label))</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    /// A round axis maximum in a readable unit: (max in unit, unit name, nanoseconds per unit).
    static func axisScale(maxNanos: UInt64) -> (Double, String, Double) {
        let (unit, scale): (String, Double) = maxNanos < 1_000_000 ? ("µs", 1e3) : maxNanos < 10_000_000_000 ? ("ms", 1e6) : ("s", 1e9)
        let value = Swift.max(Double(maxNanos) / scale, 1e-3)
        var step = 1.0
        while step * 10 <= value { step *= 10 }
        while step > value { step /= 10 }
        for multiple in [1.0, 2.0, 2.5, 5.0, 10.0] where step * multiple >= value {
            return (step * multiple, unit, scale)
        }
        return (step * 10, unit, scale)
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    private static func f(_ value: Double) -> String { Format.fixed(value, decimals: 1) }
}
