import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import WireClient
@testable import LoadGen

@Suite struct WorkloadParsingTests {
    @Test func keys() throws {
        #expect(try BenchWorkload.Keys(parsing: "none") == .none)
        #expect(try BenchWorkload.Keys(parsing: "RANDOM") == .random)
        #expect(try BenchWorkload.Keys(parsing: "1000") == .distinct(1000))
        #expect(throws: BenchError.self) { try BenchWorkload.Keys(parsing: "0") }
        #expect(throws: BenchError.self) { try BenchWorkload.Keys(parsing: "some") }
    }

    @Test func acks() throws {
        #expect(try BenchWorkload.parseAcks("0") == 0)
        #expect(try BenchWorkload.parseAcks("1") == 1)
        #expect(try BenchWorkload.parseAcks("all") == -1)
        #expect(try BenchWorkload.parseAcks("-1") == -1)
        #expect(throws: BenchError.self) { try BenchWorkload.parseAcks("2") }
    }

    @Test func durations() throws {
        #expect(try BenchWorkload.parseDuration("30s") == .seconds(30))
        #expect(try BenchWorkload.parseDuration("500ms") == .milliseconds(500))
        #expect(try BenchWorkload.parseDuration("2m") == .seconds(120))
        #expect(try BenchWorkload.parseDuration("1.5") == .milliseconds(1500))
        #expect(throws: BenchError.self) { try BenchWorkload.parseDuration("-1s") }
        #expect(throws: BenchError.self) { try BenchWorkload.parseDuration("soon") }
    }

    @Test func addresses() throws {
        #expect(try BrokerAddress(parsing: "127.0.0.1:19092") == BrokerAddress(host: "127.0.0.1", port: 19092))
        #expect(try BrokerAddress(parsing: "localhost") == BrokerAddress(host: "localhost", port: 9092))
        #expect(try BrokerAddress(parsing: "[::1]:9093") == BrokerAddress(host: "::1", port: 9093))
        #expect(try BrokerAddress(parsing: "[::1]:9093").description == "[::1]:9093")
        #expect(throws: ClientError.self) { try BrokerAddress(parsing: ":9092") }
        #expect(throws: ClientError.self) { try BrokerAddress(parsing: "host:0") }
        #expect(throws: ClientError.self) { try BrokerAddress(parsing: "host:port") }
    }

    private func workload(_ change: (inout BenchWorkload) -> Void) -> BenchWorkload {
        var w = BenchWorkload(mode: .produce, bootstrap: BrokerAddress(host: "127.0.0.1", port: 9092), topic: "t")
        change(&w)
        return w
    }

    @Test func defaultsAreValidAndMatchKafkaPerfTestHabits() throws {
        let w = workload { _ in }
        try w.validate()
        #expect(w.recordSize == 1024)
        #expect(w.acks == 1)
        #expect(w.inFlight == 5)
        #expect(w.stop == .count(1_000_000))
    }

    @Test func invalidCombinationsAreRejected() {
        let bad: [(inout BenchWorkload) -> Void] = [
            { $0.topic = "" },
            { $0.partitions = 0 },
            { $0.compression = "brotli" },
            { $0.inFlight = 0 },
            { $0.connections = 0 },
            { $0.rate = 0 },
            { $0.stop = .count(0) },
            { $0.mode = .e2e; $0.recordSize = 15 },
            { $0.mode = .e2e; $0.acks = 0 },
            { $0.batchBytes = 0 },
        ]
        for change in bad {
            #expect(throws: BenchError.self) { try workload(change).validate() }
        }
    }

    @Test func partitionsAreSpreadOverConnections() {
        #expect(BenchRunner.assign(partitions: [0, 1, 2, 3, 4], connections: 2) == [[0, 2, 4], [1, 3]])
        #expect(BenchRunner.assign(partitions: [0], connections: 3) == [[0], [0], [0]])
        #expect(BenchRunner.assign(partitions: [0, 1], connections: 3) == [[0], [1], [0]])
        #expect(BenchRunner.split(10, into: 3) == [4, 3, 3])
        #expect(BenchRunner.split(2, into: 4) == [1, 1, 0, 0])
    }
}

@Suite struct CoordinatedOmissionTests {
    @Test func scheduleSpacing() {
        let s = SendSchedule(startNanos: 1_000, rate: 1_000) // 1 ms apart
        #expect(s.intendedNanos(0) == 1_000)
        #expect(s.intendedNanos(3) == 3_001_000)
        #expect(s.dueCount(at: 999) == 0)
        #expect(s.dueCount(at: 1_000) == 1)
        #expect(s.dueCount(at: 3_000_999) == 3)
        #expect(s.dueCount(at: 3_001_000) == 4)
    }

    @Test func fractionalIntervalsDoNotDrift() {
        let s = SendSchedule(startNanos: 0, rate: 3) // 333,333,333.33 ns
        #expect(s.intendedNanos(3) == 1_000_000_000)
        #expect(s.intendedNanos(3_000) == 1_000_000_000_000)
        #expect(s.dueCount(at: 1_000_000_000_000) == 3_001)
    }

    /// A lockstep client at 1000 records/s against a server that answers in 1 µs but stalls once
    /// for one second. Timing from intended send times charges the stall to every record that
    /// should have been sent during it, as HdrHistogram's after-the-fact correction does; timing
    /// from actual send times (the coordinated-omission mistake) hides it.
    @Test func intendedTimeMeasurementMatchesHdrCorrection() {
        let interval: UInt64 = 1_000_000
        let service: UInt64 = 1_000
        let stall: UInt64 = 1_000_000_000
        let schedule = SendSchedule(startNanos: 0, rate: 1_000)
        var byConstruction = LatencyRecorder()
        var naive = LatencyRecorder()
        var corrected = LatencyRecorder()
        var free: UInt64 = 0
        for i in 0..<10_000 {
            let intended = schedule.intendedNanos(i)
            let sent = max(intended, free)
            let took = i == 5_000 ? stall : service
            free = sent + took
            byConstruction.record(nanos: free - intended)
            naive.record(nanos: took)
            corrected.recordCorrected(nanos: took, expectedIntervalNanos: interval)
        }
        #expect(byConstruction.count == 10_000)
        // The naive view: 99.99% of samples are 1 µs.
        #expect(naive.nanos(atPercentile: 99.9) < 2_000)
        // ~1000 records (10%) waited behind the stall: p90 and up are hundreds of ms.
        let p95 = byConstruction.nanos(atPercentile: 95)
        #expect(p95 > 400_000_000 && p95 < 600_000_000)
        // Same elevated samples, rank for rank from the top (HdrHistogram adds 999 synthetic
        // samples, so the totals differ: 10,000 vs 10,999).
        #expect(corrected.count == 10_999)
        for rank in [1.0, 5, 50, 200, 500, 900, 990] {
            let a = Double(byConstruction.nanos(atPercentile: 100 * (1 - (rank - 0.5) / 10_000)))
            let b = Double(corrected.nanos(atPercentile: 100 * (1 - (rank - 0.5) / 10_999)))
            // The by-construction backlog also pays one service time per record queued ahead.
            #expect(abs(a - b) <= 0.002 * b + rank * Double(service), "rank \(rank): \(a) vs \(b)")
        }
        #expect(byConstruction.summary.max >= stall)
    }
}

@Suite struct ReportingTests {
    @Test func percentilesOfAUniformSpread() {
        var recorder = LatencyRecorder()
        for micros in 1...10_000 { recorder.record(nanos: UInt64(micros) * 1_000) }
        let s = recorder.summary
        #expect(s.count == 10_000)
        #expect(abs(Double(s.p50) - 5_000_000) / 5_000_000 < 0.002)
        #expect(abs(Double(s.p90) - 9_000_000) / 9_000_000 < 0.002)
        #expect(abs(Double(s.p99) - 9_900_000) / 9_900_000 < 0.002)
        #expect(s.max >= 9_995_000 && s.max <= 10_010_000)
        #expect(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.p9999 && s.p9999 <= s.max)
    }

    @Test func emptyHistogramSummarisesToZeros() {
        let s = LatencyRecorder().summary
        #expect(s.count == 0 && s.p50 == 0 && s.max == 0)
    }

    @Test func outliersAreClampedNotDropped() {
        var recorder = LatencyRecorder()
        recorder.record(nanos: 0)
        recorder.record(nanos: .max)
        #expect(recorder.count == 2)
    }

    @Test func humanFormatting() {
        #expect(LatencySummary.format(nanos: 1_234) == "1.23 µs")
        #expect(LatencySummary.format(nanos: 123_456) == "123 µs")
        #expect(LatencySummary.format(nanos: 1_500_000) == "1.50 ms")
        #expect(LatencySummary.format(nanos: 12_000_000_000) == "12.0 s")
        #expect(BenchReport.grouped(1_234_567) == "1,234,567")
        #expect(BenchReport.grouped(12) == "12")
        #expect(Format.fixed(0.05, decimals: 1) == "0.1")
        #expect(Format.fixed(-2.25, decimals: 2) == "-2.25")
    }

    @Test func percentileDistributionFileHasHdrLayout() {
        var recorder = LatencyRecorder()
        for i in 1...1000 { recorder.record(nanos: UInt64(i) * 10_000) }
        let text = recorder.percentileDistribution
        let lines = text.split(separator: "\n")
        #expect(lines.first?.contains("Percentile") == true)
        #expect(text.contains("#[Mean"))
        #expect(text.contains("#[Max"))
        // Values are milliseconds: the max sample is 10 ms.
        #expect(text.contains("10.0"))
    }

    @Test func jsonLineIsOneSortedObject() throws {
        var recorder = LatencyRecorder()
        recorder.record(nanos: 1_000_000)
        let report = BenchReport(
            mode: "produce", bootstrap: "127.0.0.1:9092", topic: "t", partitions: 1, recordSize: 1024, acks: 1,
            batchBytes: 1 << 20, lingerMs: 5, inFlight: 5, connections: 1, rate: nil, records: 10, requests: 1,
            seconds: 1, recordsPerSecond: 10, mibPerSecond: 0.01, latencyNanos: recorder.summary,
            produceLatencyNanos: nil, correctedForCoordinatedOmission: false
        )
        let line = report.jsonLine
        #expect(!line.contains("\n"))
        let decoded = try JSONDecoder().decode(BenchReport.self, from: Data(line.utf8))
        #expect(decoded == report)
        #expect(line.hasPrefix("{\"acks\":1,"))
        #expect(report.text.contains("10 records"))
    }
}

@Suite struct LatencyPlotTests {
    @Test func percentileAxisIsLogarithmicInNines() {
        #expect(LatencyPlot.xFraction(percentile: 0) == 0)
        #expect(abs(LatencyPlot.xFraction(percentile: 90) - 1.0 / 6) < 1e-9)
        #expect(abs(LatencyPlot.xFraction(percentile: 99) - 2.0 / 6) < 1e-9)
        #expect(abs(LatencyPlot.xFraction(percentile: 99.9999) - 1) < 1e-6)
        #expect(abs(LatencyPlot.xFraction(percentile: 100) - 1) < 1e-6)
    }

    @Test func axisMaximumIsRound() {
        #expect(LatencyPlot.axisScale(maxNanos: 730_000).0 == 1_000)       // 730 µs → 1000 µs
        #expect(LatencyPlot.axisScale(maxNanos: 730_000).1 == "µs")
        #expect(LatencyPlot.axisScale(maxNanos: 3_700_000).0 == 5)         // 3.7 ms → 5 ms
        #expect(LatencyPlot.axisScale(maxNanos: 2_000_000).0 == 2)
        #expect(LatencyPlot.axisScale(maxNanos: 12_000_000_000).1 == "s")
    }

    @Test func svgIsStandaloneAndEscaped() {
        var recorder = LatencyRecorder()
        for i in 1...10_000 { recorder.record(nanos: UInt64(i) * 1_000) }
        let svg = LatencyPlot.svg(title: "a < b & \"c\"", series: [recorder.plotSeries(label: "ack"), LatencyPlot.Series(label: "empty", points: [])])
        #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.hasSuffix("</svg>\n"))
        #expect(svg.contains("a &lt; b &amp; &quot;c&quot;"))
        #expect(svg.components(separatedBy: "<polyline").count == 2) // the empty series is skipped
        #expect(svg.contains("99.99%"))
        // Every opened element is closed or self-closed.
        let opened = svg.components(separatedBy: "<text").count - 1
        #expect(opened == svg.components(separatedBy: "</text>").count - 1)
        #if canImport(FoundationXML)
        #expect(throws: Never.self) { try XMLDocument(xmlString: svg) }
        #endif
    }
}
