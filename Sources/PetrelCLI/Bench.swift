import ArgumentParser
import Foundation
import Histogram
import LoadGen
import Synchronization
import WireClient

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load generator: produce, consume and end-to-end benchmarks against any Kafka-protocol broker.",
        subcommands: [BenchProduce.self, BenchConsume.self, BenchE2E.self]
    )
}

struct BenchProduce: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "produce", abstract: "Produce records; report throughput and ack latency.")
    @OptionGroup var options: BenchOptions
    func run() throws { try options.run(mode: .produce) }
}

struct BenchConsume: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "consume", abstract: "Consume a topic from its start; report throughput.")
    @OptionGroup var options: BenchOptions
    func run() throws { try options.run(mode: .consume) }
}

struct BenchE2E: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e", abstract: "Produce and consume at once; report send-to-receipt latency (set --rate)."
    )
    @OptionGroup var options: BenchOptions
    func run() throws { try options.run(mode: .e2e) }
}

struct BenchOptions: ParsableArguments {
    @Option(help: "Broker address, HOST:PORT.")
    var bootstrap = "127.0.0.1:9092"
    @Option(help: "Topic to use.")
    var topic = "petrel-bench"
    @Option(help: "Partitions to create the topic with when it does not exist.")
    var partitions: Int32 = 1
    @Option(help: "Value bytes per record.")
    var recordSize = 1024
    @Option(help: "Records to produce (consume: at most this many). Default 1000000 unless --duration is set.")
    var count: Int?
    @Option(help: "Run for this long instead of a count: 30s, 500ms, 2m.")
    var duration: String?
    @Option(help: "Keys: none, random, or a number of distinct keys.")
    var keys = "none"
    @Option(help: "Acks: 0, 1 or all.")
    var acks = "1"
    @Option(help: "Bytes per partition batch (Kafka batch.size).")
    var batchSize = 1 << 20
    @Option(help: "Milliseconds a partly filled batch may wait when rate-limited (Kafka linger.ms).")
    var lingerMs: Double = 5
    @Option(help: "Compression of each batch: none, gzip, snappy, lz4 or zstd (Kafka compression.type).")
    var compression = "none"
    @Option(help: "Produce requests outstanding per connection.")
    var inFlight = 5
    @Option(help: "Producer (consume: consumer) connections.")
    var connections = 1
    @Option(help: "Target records per second over all connections; latency is then measured from intended send times.")
    var rate: Double?
    @Option(help: "Fetch max wait in milliseconds (consume, e2e).")
    var fetchMaxWaitMs: Int32 = 500
    @Option(help: "Seed for keys and filler.")
    var seed: UInt64 = 1
    @Flag(help: "Print the result as one JSON line on stdout (the summary goes to stderr).")
    var json = false
    @Option(help: "Write the latency percentile distribution (HdrHistogram text format, milliseconds) here.")
    var histogramFile: String?
    @Option(help: "Write an SVG latency-by-percentile plot here.")
    var plot: String?
    @Option(help: ArgumentHelp(
        "Client config file (Java properties, as kafka-*-perf-test's --command-config / --producer.config): security.protocol, ssl.*, sasl.*.",
        valueName: "file"))
    var commandConfig: String?
    @Option(name: .customShort("X"), help: ArgumentHelp(
        "Client config property, as kcat's -X (repeatable, overrides --command-config): security.protocol=SASL_SSL, ssl.ca.location=ca.pem, "
            + "sasl.mechanism=SCRAM-SHA-512, sasl.username=U, sasl.password=P, ssl.endpoint.identification.algorithm=none, ...",
        valueName: "key=value"))
    var properties: [String] = []

    /// `--command-config` then `-X`, built into the connections' TLS/SASL settings.
    func security() throws(ClientError) -> ClientSecurity {
        var config: [String: String] = [:]
        if let commandConfig { config = try ClientSecurity.readProperties(file: commandConfig) }
        for property in properties {
            let (key, value) = try ClientSecurity.parseProperty(property)
            config[key] = value
        }
        return try ClientSecurity(properties: config)
    }

    func workload(mode: BenchWorkload.Mode) throws -> BenchWorkload {
        do {
            let stop: BenchWorkload.Stop
            switch (count, duration) {
            case (.some, .some): throw ValidationError("give --count or --duration, not both")
            case (let count?, nil): stop = .count(count)
            case (nil, let duration?): stop = .duration(try BenchWorkload.parseDuration(duration))
            case (nil, nil): stop = .count(1_000_000)
            }
            var workload = BenchWorkload(
                mode: mode, bootstrap: try BrokerAddress(parsing: bootstrap), topic: topic, partitions: partitions,
                recordSize: recordSize, stop: stop, keys: try BenchWorkload.Keys(parsing: keys), acks: try BenchWorkload.parseAcks(acks),
                batchBytes: batchSize, linger: .nanoseconds(Int64(lingerMs * 1e6)), compression: compression, inFlight: inFlight,
                connections: connections, rate: rate, fetchMaxWaitMs: fetchMaxWaitMs, seed: seed
            )
            workload.security = try security()
            try workload.validate()
            return workload
        } catch let error as BenchError {
            throw ValidationError(error.message)
        } catch let error as ClientError {
            throw ValidationError(error.message)
        }
    }

    func run(mode: BenchWorkload.Mode) throws {
        let workload = try workload(mode: mode)
        let live = isatty(1) == 1
        var progress: (@Sendable (String) -> Void)?
        if live {
            progress = { @Sendable line in FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + line).utf8)) }
        }
        let reporter = progress
        let result = try blockingAwait { try await BenchRunner(workload: workload, progress: reporter).run() }
        if live { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
        if json {
            FileHandle.standardError.write(Data((result.report.text + "\n").utf8))
            print(result.report.jsonLine)
        } else {
            print(result.report.text)
        }
        if let histogramFile {
            try LatencyHistogram.percentileDistribution(result.histogram).write(toFile: histogramFile, atomically: true, encoding: .utf8)
        }
        if let plot {
            var series = [LatencyPlot.Series(label: mode == .e2e ? "end-to-end" : "ack", histogram: result.histogram)]
            if let produce = result.produceHistogram { series.append(LatencyPlot.Series(label: "ack", histogram: produce)) }
            let rateText = workload.rate.map { ", \(Int($0)) rec/s" } ?? ""
            let title = "petrel bench \(mode.rawValue): \(workload.recordSize) B records, acks=\(result.report.acks == -1 ? "all" : String(result.report.acks))\(rateText)"
            try LatencyPlot.svg(title: title, series: series).write(toFile: plot, atomically: true, encoding: .utf8)
        }
    }
}

/// Runs async client code from a synchronous ArgumentParser command (the root command is sync).
func blockingAwait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let outcome: Result<T, any Error>
        do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
        result.withLock { $0 = outcome }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}
