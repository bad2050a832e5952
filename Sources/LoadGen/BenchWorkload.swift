public import RecordFormat
public import WireClient

/// What `petrel bench` runs, validated once from the command line.
public struct BenchWorkload: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        /// Producers only; latency is produce-ack latency.
        case produce
        /// Consumers only, from the start of the topic; no latency.
        case consume
        /// Producers and one consumer; latency is produce (intended) time to consumer receipt.
        case e2e
    }

    /// How records get keys (and so partitions).
    public enum Keys: Sendable, Equatable {
        /// Null keys; each request goes to the next partition (sticky partitioning).
        case none
        /// A random 8-byte key per record; partition = key mod partitions.
        case random
        /// Keys drawn at random from `n` distinct keys.
        case distinct(Int)

        /// Parses `none`, `random` or a positive count.
        public init(parsing text: String) throws(BenchError) {
            switch text.lowercased() {
            case "none": self = .none
            case "random": self = .random
            default:
                guard let n = Int(text), n > 0 else { throw BenchError("--keys must be none, random or a positive count, not '\(text)'") }
                self = .distinct(n)
            }
        }
    }

    /// When to stop producing (or consuming).
    public enum Stop: Sendable, Equatable {
        case count(Int)
        case duration(Duration)
    }

    public var mode: Mode
    public var bootstrap: BrokerAddress
    public var topic: String
    /// Partitions to create the topic with when missing (an existing topic keeps its count).
    public var partitions: Int32
    /// Value bytes per record. Kafka perf test: `--record-size`. Default 1024.
    public var recordSize: Int
    public var stop: Stop
    public var keys: Keys
    /// 0, 1 or -1 (all).
    public var acks: Int16
    /// Bytes per partition batch. Kafka: `batch.size`. Default 1 MiB, as librdkafka's `batch.size`.
    public var batchBytes: Int
    /// How long a partly filled batch may wait for more records (rate-limited runs only; an
    /// unthrottled producer always has a full batch). Kafka: `linger.ms`. Default 5 ms.
    public var linger: Duration
    /// Batch compression: none, gzip, snappy, lz4 or zstd. Kafka: `compression.type`.
    public var compression: String
    /// `compression` as a codec (nil when it names none of Kafka's codecs).
    public var compressionCodec: CompressionCodec? { CompressionCodec.allCases.first { $0.name == compression } }
    /// Produce requests outstanding per connection. Kafka: `max.in.flight.requests.per.connection`. Default 5.
    public var inFlight: Int
    /// Producer connections (each on its own event loop).
    public var connections: Int
    /// Target records per second over all connections; nil: as fast as possible.
    public var rate: Double?
    /// Fetch `max_wait_ms` for consumers.
    public var fetchMaxWaitMs: Int32
    /// Seed for keys; printed so a run can be repeated.
    public var seed: UInt64
    /// TLS and SASL for every connection (Kafka's client config: `-X` / `--command-config`).
    public var security: ClientSecurity = .plaintext

    public init(
        mode: Mode, bootstrap: BrokerAddress, topic: String, partitions: Int32 = 1, recordSize: Int = 1024,
        stop: Stop = .count(1_000_000), keys: Keys = .none, acks: Int16 = 1, batchBytes: Int = 1 << 20,
        linger: Duration = .milliseconds(5), compression: String = "none", inFlight: Int = 5, connections: Int = 1,
        rate: Double? = nil, fetchMaxWaitMs: Int32 = 500, seed: UInt64 = 1
    ) {
        self.mode = mode
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.recordSize = recordSize
        self.stop = stop
        self.keys = keys
        self.acks = acks
        self.batchBytes = batchBytes
        self.linger = linger
        self.compression = compression
        self.inFlight = inFlight
        self.connections = connections
        self.rate = rate
        self.fetchMaxWaitMs = fetchMaxWaitMs
        self.seed = seed
    }

    /// Parses `--acks`: 0, 1, all or -1.
    public static func parseAcks(_ text: String) throws(BenchError) -> Int16 {
        switch text.lowercased() {
        case "0": return 0
        case "1": return 1
        case "all", "-1": return -1
        default: throw BenchError("--acks must be 0, 1 or all, not '\(text)'")
        }
    }

    /// Parses `--duration`: `30s`, `500ms`, `2m` or bare seconds.
    public static func parseDuration(_ text: String) throws(BenchError) -> Duration {
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let n = Double(text.dropLast(suffix.count)), n > 0 { return .nanoseconds(Int64(n * scale * 1e9)) }
        }
        if let n = Double(text), n > 0 { return .nanoseconds(Int64(n * 1e9)) }
        throw BenchError("--duration must be a positive time like 30s, 500ms or 2m, not '\(text)'")
    }

    /// Rejects combinations that cannot run; call once after building from arguments.
    ///
    /// - Throws: `BenchError` naming the bad option.
    public func validate() throws(BenchError) {
        guard !topic.isEmpty else { throw BenchError("--topic must not be empty") }
        guard partitions >= 1 else { throw BenchError("--partitions must be at least 1") }
        guard recordSize >= 0 else { throw BenchError("--record-size must not be negative") }
        if mode == .e2e, recordSize < 16 {
            throw BenchError("e2e needs --record-size of at least 16 (the send time and a run id travel in the value)")
        }
        guard batchBytes >= 1 else { throw BenchError("--batch-size must be positive") }
        guard batchBytes <= 64 << 20 else { throw BenchError("--batch-size must be at most 64 MiB") }
        guard linger >= .zero else { throw BenchError("--linger-ms must not be negative") }
        guard compressionCodec != nil else {
            throw BenchError("--compression must be one of \(CompressionCodec.allCases.map(\.name).joined(separator: ", ")), not '\(compression)'")
        }
        guard (1...1024).contains(inFlight) else { throw BenchError("--in-flight must be within 1...1024") }
        guard (1...256).contains(connections) else { throw BenchError("--connections must be within 1...256") }
        if let rate { guard rate > 0, rate.isFinite else { throw BenchError("--rate must be positive") } }
        switch stop {
        case .count(let n): guard n >= 1 else { throw BenchError("--count must be at least 1") }
        case .duration(let d): guard d > .zero else { throw BenchError("--duration must be positive") }
        }
        if mode == .e2e, acks == 0 { throw BenchError("e2e needs acks 1 or all (acks 0 gives no produce count to wait for)") }
    }
}

/// A bench failure with a message for the user.
public struct BenchError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
