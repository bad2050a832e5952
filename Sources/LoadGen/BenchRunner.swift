import Foundation
public import Histogram
import KafkaWire
import NIOCore
import Security
import NIOPosix
import RecordFormat
import Synchronization
import WireClient

/// Runs a `BenchWorkload` against a broker.
public struct BenchRunner: Sendable {
    /// The report and the latency histogram behind it (for `--histogram-file` and `--plot`).
    public struct Result: Sendable {
        public var report: BenchReport
        /// Produce: ack latency; e2e: end-to-end latency; consume: empty.
        public var histogram: Histogram<UInt64>
        /// e2e: the producers' ack latency.
        public var produceHistogram: Histogram<UInt64>?
    }

    public let workload: BenchWorkload
    /// Called about once a second with a progress line (nil: no progress).
    public let progress: (@Sendable (String) -> Void)?

    public init(workload: BenchWorkload, progress: (@Sendable (String) -> Void)? = nil) {
        self.workload = workload
        self.progress = progress
    }

    /// Connects, prepares the topic and runs the workload.
    ///
    /// - Throws: `BenchError` or `ClientError`.
    public func run() async throws -> Result {
        try workload.validate()
        let consumers = workload.mode == .produce ? 0 : (workload.mode == .e2e ? 1 : workload.connections)
        let producers = workload.mode == .consume ? 0 : workload.connections
        let threads = max(1, min(producers + consumers, System.coreCount))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            let admin = try await KafkaClient.connect(to: workload.bootstrap, on: group, clientId: "petrel-bench", security: workload.security)
            do {
                let result = try await run(group: group, admin: admin)
                await admin.close()
                try? await group.shutdownGracefully()
                return result
            } catch {
                await admin.close()
                throw error
            }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private func run(group: MultiThreadedEventLoopGroup, admin: KafkaClient) async throws -> Result {
        let partitions = try await prepareTopic(admin)

        let counters = BenchCounters()
        let runId = UInt64.random(in: 1...UInt64.max)
        let ticker = startProgress(on: group.next(), counters: counters)
        defer { ticker?.cancel() }

        switch workload.mode {
        case .produce:
            let (outcomes, _) = try await runProducers(group: group, partitions: partitions, counters: counters, runId: runId)
            return produceResult(outcomes)
        case .consume:
            return try await runConsume(group: group, admin: admin, partitions: partitions, counters: counters)
        case .e2e:
            let starts = try await admin.listOffsets(workload.topic, partitions: partitions, timestamp: KafkaClient.latest)
            let client = try await KafkaClient.connect(to: workload.bootstrap, on: group, clientId: "petrel-bench-consumer", security: workload.security)
            _ = try await client.metadata(topics: [workload.topic])
            let consumer = ConsumerDriver(
                client: client,
                plan: ConsumerPlan(
                    topic: workload.topic, partitions: partitions, startOffsets: starts, endOffsets: nil, recordLimit: nil,
                    deadlineNanos: nil, maxWaitMs: workload.fetchMaxWaitMs, measureLatency: true, runId: runId
                ),
                counters: counters
            )
            let consumed = consumer.start()
            let (outcomes, produced) = try await runProducers(group: group, partitions: partitions, counters: counters, runId: runId)
            consumer.expect(count: produced, giveUpNanos: Clock.nanos() + 30_000_000_000)
            let outcome = try await consumed.get()
            await client.close()
            var result = produceResult(outcomes)
            result.produceHistogram = result.histogram
            result.report.produceLatencyNanos = result.report.latencyNanos
            result.histogram = outcome.histogram
            result.report.latencyNanos = LatencySummary(outcome.histogram)
            if outcome.records < produced {
                throw BenchError("e2e: consumed \(outcome.records) of \(produced) produced records within 30 s after producing ended")
            }
            return result
        }
    }

    /// Creates the topic when missing; returns its partitions.
    private func prepareTopic(_ admin: KafkaClient) async throws -> [Int32] {
        if let topic = try await admin.topic(workload.topic), !topic.partitions.isEmpty {
            return topic.partitions.map(\.partitionIndex).sorted()
        }
        guard workload.mode != .consume else { throw BenchError("topic \(workload.topic) does not exist; produce to it first") }
        do {
            try await admin.createTopic(workload.topic, partitions: workload.partitions)
        } catch {
            // Created concurrently: fine.
            guard error.kind == .broker(.topicAlreadyExists) else { throw error }
        }
        // Creation can take a moment to show in metadata.
        for _ in 0..<50 {
            if let topic = try await admin.topic(workload.topic), !topic.partitions.isEmpty, topic.partitions.allSatisfy({ $0.errorCode == 0 }) {
                return topic.partitions.map(\.partitionIndex).sorted()
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchError("topic \(workload.topic) was created but has no partitions in metadata after 5 s")
    }

    /// Splits partitions over `count` connections round-robin (connections share when fewer partitions).
    static func assign(partitions: [Int32], connections count: Int) -> [[Int32]] {
        var shares = Array(repeating: [Int32](), count: count)
        if partitions.count >= count {
            for (index, partition) in partitions.enumerated() { shares[index % count].append(partition) }
        } else {
            for index in 0..<count { shares[index] = [partitions[index % partitions.count]] }
        }
        return shares
    }

    /// Splits `total` into `count` parts differing by at most one.
    static func split(_ total: Int, into count: Int) -> [Int] {
        (0..<count).map { total / count + ($0 < total % count ? 1 : 0) }
    }

    private func runProducers(
        group: any EventLoopGroup, partitions: [Int32], counters: BenchCounters, runId: UInt64
    ) async throws -> ([ProducerOutcome], Int) {
        let shares = Self.assign(partitions: partitions, connections: workload.connections)
        var limits: [Int?] = Array(repeating: nil, count: workload.connections)
        var deadline: UInt64?
        switch workload.stop {
        case .count(let total): limits = Self.split(total, into: workload.connections)
        case .duration(let duration):
            let (seconds, attoseconds) = duration.components
            deadline = Clock.nanos() + UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
        }
        var drivers: [ProducerDriver] = []
        var connections: [KafkaConnection] = []
        for index in 0..<workload.connections {
            let connection = try await KafkaConnection.connect(to: workload.bootstrap, on: group, clientId: "petrel-bench-\(index)", security: workload.security)
            connections.append(connection)
            let (lingerSeconds, lingerAtto) = workload.linger.components
            let plan = ProducerPlan(
                topic: workload.topic, partitions: shares[index], recordSize: workload.recordSize, keys: workload.keys,
                acks: workload.acks, batchBytes: workload.batchBytes, codec: workload.compressionCodec ?? CompressionCodec.none,
                lingerNanos: UInt64(lingerSeconds) * 1_000_000_000 + UInt64(lingerAtto / 1_000_000_000),
                inFlight: workload.inFlight, rate: workload.rate.map { $0 / Double(workload.connections) },
                recordLimit: limits[index], deadlineNanos: deadline, seed: workload.seed &+ UInt64(index), runId: runId
            )
            drivers.append(try ProducerDriver(connection: connection, plan: plan, counters: counters))
        }
        let futures = drivers.map { $0.start() }
        var outcomes: [ProducerOutcome] = []
        var firstError: (any Error)?
        for future in futures {
            do {
                outcomes.append(try await future.get())
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        for connection in connections { await connection.close() }
        if let firstError { throw firstError }
        return (outcomes, outcomes.reduce(0) { $0 + $1.records })
    }

    private func produceResult(_ outcomes: [ProducerOutcome]) -> Result {
        var histogram = LatencyHistogram.make()
        for outcome in outcomes { histogram.add(outcome.histogram) }
        let start = outcomes.map(\.startNanos).min() ?? 0
        let end = outcomes.map(\.endNanos).max() ?? 0
        let records = outcomes.reduce(0) { $0 + $1.records }
        let requests = outcomes.reduce(0) { $0 + $1.requests }
        var report = baseReport(records: records, requests: requests, nanos: end - start)
        report.latencyNanos = LatencySummary(histogram)
        return Result(report: report, histogram: histogram, produceHistogram: nil)
    }

    private func runConsume(group: any EventLoopGroup, admin: KafkaClient, partitions: [Int32], counters: BenchCounters) async throws -> Result {
        let starts = try await admin.listOffsets(workload.topic, partitions: partitions, timestamp: KafkaClient.earliest)
        let ends = try await admin.listOffsets(workload.topic, partitions: partitions, timestamp: KafkaClient.latest)
        let available = partitions.reduce(0) { $0 + Int((ends[$1] ?? 0) - (starts[$1] ?? 0)) }
        guard available > 0 else { throw BenchError("topic \(workload.topic) is empty; produce to it first") }
        let shares = Self.assign(partitions: partitions, connections: min(workload.connections, partitions.count))
        var limits: [Int?] = Array(repeating: nil, count: shares.count)
        var deadline: UInt64?
        switch workload.stop {
        case .count(let total): limits = Self.split(total, into: shares.count)
        case .duration(let duration): deadline = Clock.nanos() + UInt64(duration.components.seconds) * 1_000_000_000
        }
        var clients: [KafkaClient] = []
        var futures: [EventLoopFuture<ConsumerOutcome>] = []
        for (index, share) in shares.enumerated() {
            let client = try await KafkaClient.connect(to: workload.bootstrap, on: group, clientId: "petrel-bench-consumer-\(index)", security: workload.security)
            _ = try await client.metadata(topics: [workload.topic])
            clients.append(client)
            let plan = ConsumerPlan(
                topic: workload.topic, partitions: share, startOffsets: starts, endOffsets: ends, recordLimit: limits[index],
                deadlineNanos: deadline, maxWaitMs: workload.fetchMaxWaitMs, measureLatency: false, runId: 0
            )
            futures.append(ConsumerDriver(client: client, plan: plan, counters: counters).start())
        }
        var outcomes: [ConsumerOutcome] = []
        for future in futures { outcomes.append(try await future.get()) }
        for client in clients { await client.close() }
        let start = outcomes.map(\.startNanos).min() ?? 0
        let end = outcomes.map(\.endNanos).max() ?? 0
        let report = baseReport(records: outcomes.reduce(0) { $0 + $1.records }, requests: outcomes.reduce(0) { $0 + $1.fetches }, nanos: end - start)
        return Result(report: report, histogram: LatencyHistogram.make(), produceHistogram: nil)
    }

    private func baseReport(records: Int, requests: Int, nanos: UInt64) -> BenchReport {
        let seconds = max(Double(nanos) / 1e9, 1e-9)
        let rate = Double(records) / seconds
        return BenchReport(
            mode: workload.mode.rawValue, bootstrap: workload.bootstrap.description, topic: workload.topic,
            partitions: Int(workload.partitions), recordSize: workload.recordSize, acks: Int(workload.acks),
            batchBytes: workload.batchBytes, lingerMs: Double(workload.linger.components.attoseconds) / 1e15 + Double(workload.linger.components.seconds) * 1e3,
            inFlight: workload.inFlight, connections: workload.connections, rate: workload.rate,
            records: records, requests: requests, seconds: seconds, recordsPerSecond: rate,
            mibPerSecond: rate * Double(workload.recordSize) / 1_048_576,
            latencyNanos: nil, produceLatencyNanos: nil, correctedForCoordinatedOmission: workload.rate != nil,
            securityProtocol: workload.security.securityProtocol.rawValue, saslMechanism: workload.security.sasl?.mechanismName
        )
    }

    private func startProgress(on loop: any EventLoop, counters: BenchCounters) -> RepeatedTask? {
        guard let progress else { return nil }
        let start = Clock.nanos()
        let last = Mutex<(records: Int, nanos: UInt64)>((0, start))
        let consuming = workload.mode != .produce
        let recordSize = workload.recordSize
        return loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            let now = Clock.nanos()
            let records = consuming ? counters.consumedRecords.load(ordering: .relaxed) : counters.producedRecords.load(ordering: .relaxed)
            let previous = last.withLock { value in
                defer { value = (records, now) }
                return value
            }
            progress(BenchReport.progressLine(
                elapsedSeconds: Double(now - start) / 1e9, records: records, intervalRecords: records - previous.records,
                intervalSeconds: Double(now - previous.nanos) / 1e9, recordSize: recordSize
            ))
        }
    }
}
