import Foundation

/// The result of one bench run; also the final `--json` line.
public struct BenchReport: Sendable, Codable, Equatable {
    public var mode: String
    public var bootstrap: String
    public var topic: String
    public var partitions: Int
    public var recordSize: Int
    public var acks: Int
    public var batchBytes: Int
    public var lingerMs: Double
    public var inFlight: Int
    public var connections: Int
    /// Target records/s (nil: unthrottled).
    public var rate: Double?
    public var records: Int
    public var requests: Int
    public var seconds: Double
    public var recordsPerSecond: Double
    /// Value bytes per second (records × record size), in MiB.
    public var mibPerSecond: Double
    /// Produce: ack latency (from the intended send time when rate-limited); e2e: send to receipt.
    public var latencyNanos: LatencySummary?
    /// e2e only: the producers' ack latency.
    public var produceLatencyNanos: LatencySummary?
    /// True when latencies are measured from intended send times (coordinated omission corrected).
    public var correctedForCoordinatedOmission: Bool
    /// Kafka's `security.protocol` of the run's connections (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
    public var securityProtocol: String? = nil
    /// The SASL mechanism, when the protocol uses SASL.
    public var saslMechanism: String? = nil

    /// One JSON object on one line, keys sorted.
    public var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The human summary.
    public var text: String {
        var lines: [String] = []
        let rateText = rate.map { ", target \(Self.grouped(Int($0))) records/s" } ?? ""
        lines.append(
            "\(mode): \(Self.grouped(records)) records in \(Format.fixed(seconds, decimals: 2)) s: "
                + "\(Self.grouped(Int(recordsPerSecond.rounded()))) records/s, \(Format.fixed(mibPerSecond, decimals: 1)) MiB/s"
        )
        lines.append(
            "  \(recordSize)-byte records, \(partitions) partition(s), acks=\(acks == -1 ? "all" : String(acks)), "
                + "batch \(batchBytes) B, linger \(Format.fixed(lingerMs, significant: 3)) ms, \(connections) connection(s) × \(inFlight) in flight\(rateText)"
                + (securityProtocol.map { $0 == "PLAINTEXT" ? "" : ", \($0)" + (saslMechanism.map { " \($0)" } ?? "") } ?? "")
        )
        let corrected = correctedForCoordinatedOmission ? " (from intended send times)" : ""
        if let latencyNanos, latencyNanos.count > 0 {
            let name = mode == "e2e" ? "end-to-end latency" : "ack latency"
            lines.append("  \(name)\(corrected): \(latencyNanos.text)")
        }
        if let produceLatencyNanos, produceLatencyNanos.count > 0 {
            lines.append("  ack latency\(corrected): \(produceLatencyNanos.text)")
        }
        return lines.joined(separator: "\n")
    }

    /// 1234567 → "1,234,567".
    static func grouped(_ value: Int) -> String {
        let digits = String(abs(value))
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out += "," }
            out.append(digit)
        }
        return value < 0 ? "-" + out : out
    }

    /// The live progress line: elapsed time, records so far, and the rate over the last interval.
    public static func progressLine(elapsedSeconds: Double, records: Int, intervalRecords: Int, intervalSeconds: Double, recordSize: Int) -> String {
        let rate = intervalSeconds > 0 ? Double(intervalRecords) / intervalSeconds : 0
        let mib = rate * Double(recordSize) / 1_048_576
        return "[\(Format.fixed(elapsedSeconds, decimals: 1)) s] \(grouped(records)) records  \(grouped(Int(rate.rounded()))) records/s  \(Format.fixed(mib, decimals: 1)) MiB/s"
    }
}
