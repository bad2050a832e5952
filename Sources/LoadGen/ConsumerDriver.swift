import Histogram
import KafkaWire
import NIOCore
import RecordCompression
import RecordFormat
import Synchronization
import WireClient

/// One consumer connection's share: partitions, where to start, when to stop.
struct ConsumerPlan: Sendable {
    var topic: String
    var partitions: [Int32]
    var startOffsets: [Int32: Int64]
    /// Stop at these offsets (consume bench: the log end at start); nil: no end.
    var endOffsets: [Int32: Int64]?
    /// Stop after this many records.
    var recordLimit: Int?
    /// Stop at this uptime.
    var deadlineNanos: UInt64?
    var maxWaitMs: Int32
    /// e2e: decode values and record now − (send time in the first 8 value bytes), counting only
    /// records whose bytes 8..<16 hold `runId`.
    var measureLatency: Bool
    var runId: UInt64
}

struct ConsumerOutcome: Sendable {
    var records: Int
    var bytes: Int
    var fetches: Int
    var histogram: Histogram<UInt64>
    var startNanos: UInt64
    var endNanos: UInt64
}

/// Fetches in a loop on one connection (one fetch outstanding, as Kafka consumers do per broker),
/// counting records from batch headers; in e2e mode it also decodes each record's send time.
final class ConsumerDriver: @unchecked Sendable {
    private let client: KafkaClient
    private let plan: ConsumerPlan
    private let counters: BenchCounters
    private let eventLoop: any EventLoop
    private let promise: EventLoopPromise<ConsumerOutcome>
    private var offsets: [Int64]
    private var slots: [Int32: Int] = [:]
    private var histogram = LatencyHistogram.make()
    private var records = 0
    private var bytes = 0
    private var fetches = 0
    private var startNanos: UInt64 = 0
    private var target: Int?
    private var giveUpNanos: UInt64?
    private var done = false

    init(client: KafkaClient, plan: ConsumerPlan, counters: BenchCounters) {
        self.client = client
        self.plan = plan
        self.counters = counters
        self.eventLoop = client.connection.eventLoop
        self.promise = eventLoop.makePromise()
        self.offsets = plan.partitions.map { plan.startOffsets[$0] ?? 0 }
        for (slot, partition) in plan.partitions.enumerated() { slots[partition] = slot }
        self.target = plan.recordLimit
    }

    func start() -> EventLoopFuture<ConsumerOutcome> {
        eventLoop.execute {
            self.startNanos = Clock.nanos()
            self.fetchNext()
        }
        return promise.futureResult
    }

    /// e2e: stop once `count` records arrived, or give up at `giveUpNanos`.
    func expect(count: Int, giveUpNanos: UInt64) {
        eventLoop.execute {
            self.target = count
            self.giveUpNanos = giveUpNanos
        }
    }

    private var finished: Bool {
        if let target, records >= target { return true }
        let now = Clock.nanos()
        if let deadline = plan.deadlineNanos, now >= deadline { return true }
        if let giveUpNanos, now >= giveUpNanos { return true }
        if let end = plan.endOffsets {
            return plan.partitions.indices.allSatisfy { offsets[$0] >= (end[plan.partitions[$0]] ?? 0) }
        }
        return false
    }

    private func fetchNext() {
        guard !done else { return }
        if finished {
            done = true
            promise.succeed(ConsumerOutcome(records: records, bytes: bytes, fetches: fetches, histogram: histogram, startNanos: startNanos, endNanos: Clock.nanos()))
            return
        }
        let positions = plan.partitions.indices.map { (partition: plan.partitions[$0], offset: offsets[$0]) }
        do {
            let (request, version) = try client.fetchRequest(topic: plan.topic, partitions: positions, maxWaitMs: plan.maxWaitMs, minBytes: 1)
            fetches += 1
            client.connection.send(request, version: version).whenComplete { result in
                switch result {
                case .success(let response):
                    do {
                        try self.handle(response)
                        self.fetchNext()
                    } catch {
                        self.fail(error)
                    }
                case .failure(let error):
                    self.fail(error)
                }
            }
        } catch {
            fail(error)
        }
    }

    private func fail(_ error: any Error) {
        guard !done else { return }
        done = true
        promise.fail(error)
    }

    private func handle(_ response: FetchResponse) throws(ClientError) {
        let now = Clock.nanos()
        try ClientError.check(response.errorCode, "fetch from \(plan.topic)")
        var fresh = 0
        for topic in response.responses {
            for partition in topic.partitions {
                guard let slot = slots[partition.partitionIndex] else { continue }
                try ClientError.check(partition.errorCode, "fetch from \(plan.topic)-\(partition.partitionIndex) at offset \(offsets[slot])")
                guard let payload = partition.records, payload.byteCount > 0, let buffer = payload.singleBuffer else { continue }
                let from = offsets[slot]
                var iterator = RecordBatchIterator(buffer)
                while let (position, header) = iterator.next() {
                    guard header.nextOffset > offsets[slot] else { continue }
                    bytes += header.totalByteCount
                    if plan.measureLatency {
                        guard let batch = buffer.getSlice(at: buffer.readerIndex + position, length: header.totalByteCount) else { continue }
                        fresh += try recordLatencies(batch: batch, header: header, from: from, now: now)
                    } else {
                        fresh += Int(header.nextOffset - max(header.baseOffset, from))
                    }
                    offsets[slot] = header.nextOffset
                }
                if let invalid = iterator.invalidBatch {
                    throw ClientError(.protocolViolation, "\(plan.topic)-\(partition.partitionIndex): bad batch at byte \(invalid.position): \(invalid.error)")
                }
            }
        }
        records += fresh
        counters.consumedRecords.add(fresh, ordering: .relaxed)
    }

    /// Records the latencies of this run's records in `batch`; returns how many there were.
    private func recordLatencies(batch: ByteBuffer, header: RecordBatchHeader, from: Int64, now: UInt64) throws(ClientError) -> Int {
        let decoded: [Record]
        do {
            // Compressed batches (bench produce --compression) are decompressed first.
            decoded = header.compression == CompressionCodec.none
                ? try RecordBatch.records(in: batch) : try RecordBatch.decodeRecords(in: batch).records
        } catch {
            throw ClientError(.protocolViolation, "cannot decode batch at offset \(header.baseOffset): \(error)")
        }
        var matched = 0
        for record in decoded where header.baseOffset + Int64(record.offsetDelta) >= from {
            guard let value = record.value,
                  let sent = value.getInteger(at: value.readerIndex, endianness: .little, as: UInt64.self),
                  value.getInteger(at: value.readerIndex + 8, endianness: .little, as: UInt64.self) == plan.runId
            else { continue }
            LatencyHistogram.record(now &- min(sent, now), in: &histogram)
            matched += 1
        }
        return matched
    }
}
