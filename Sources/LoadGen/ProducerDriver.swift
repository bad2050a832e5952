import Foundation
import Histogram
import KafkaWire
import NIOCore
import SeededRandom
import RecordCompression
import RecordFormat
import Synchronization
import WireClient

/// One producer connection's share of a bench: which partitions, how many records, at what rate.
struct ProducerPlan: Sendable {
    var topic: String
    var partitions: [Int32]
    var recordSize: Int
    var keys: BenchWorkload.Keys
    var acks: Int16
    var batchBytes: Int
    /// Codec for each batch's records (the batch is built plain, then its payload compressed).
    var codec: CompressionCodec = .none
    var lingerNanos: UInt64
    var inFlight: Int
    /// Records per second for this connection; nil: unthrottled.
    var rate: Double?
    /// Stop after this many records (nil: until the deadline).
    var recordLimit: Int?
    /// Stop generating at this uptime (nil: until the limit).
    var deadlineNanos: UInt64?
    var seed: UInt64
    /// Written into value bytes 8..<16 (when the value has room) so an e2e consumer can tell this
    /// run's records from older ones in the same topic.
    var runId: UInt64
    /// Cap on one request's record bytes over all partitions.
    var requestBytesMax: Int { max(batchBytes, 1 << 20) }
}

/// What a producer connection measured.
struct ProducerOutcome: Sendable {
    var records: Int
    var requests: Int
    var histogram: Histogram<UInt64>
    var startNanos: UInt64
    var endNanos: UInt64
}

/// Drives one connection: builds batches into pooled buffers, keeps up to `inFlight` Produce
/// requests outstanding, and records every record's latency when its request is acknowledged.
///
/// All state is confined to the connection's event loop; only `start()` is called from outside.
final class ProducerDriver: @unchecked Sendable {
    private let connection: KafkaConnection
    private let plan: ProducerPlan
    private let counters: BenchCounters
    private let eventLoop: any EventLoop
    private let produceVersion: Int16
    private let promise: EventLoopPromise<ProducerOutcome>

    private var histogram = LatencyHistogram.make()
    private var schedule: SendSchedule?
    private var nextRecord = 0
    private var acked = 0
    private var requests = 0
    private var inFlight = 0
    private var generating = true
    private var failed = false
    private var stickyIndex = 0
    private var pool: [ByteBuffer] = []
    /// Batches of the requests in flight, oldest first (a connection answers in order). Kept here,
    /// not in the completion closures, so that they are uniquely held again once answered.
    private var inFlightBatches = CircularBuffer<[ByteBuffer]>(initialCapacity: 8)
    private var value: [UInt8]
    private var rng: SplitMix64
    private var wakeup: Scheduled<Void>?
    private var startNanos: UInt64 = 0
    private var encoders: [RecordBatchEncoder?]

    /// Generates per-record payloads when compressing.
    private var filler: SplitMix64

    init(connection: KafkaConnection, plan: ProducerPlan, counters: BenchCounters) throws(ClientError) {
        precondition(!plan.partitions.isEmpty, "a producer needs partitions")
        self.connection = connection
        self.plan = plan
        self.counters = counters
        self.eventLoop = connection.eventLoop
        self.produceVersion = try connection.version(for: ProduceRequest.self)
        self.promise = connection.eventLoop.makePromise()
        self.rng = SplitMix64(seed: plan.seed)
        // Random filler (refreshed per record when compressing, see sendRequest).
        var filler = SplitMix64(seed: plan.seed ^ 0x5EED)
        self.value = (0..<plan.recordSize).map { _ in UInt8(truncatingIfNeeded: filler.next()) }
        self.filler = filler
        if plan.recordSize >= 16 {
            value.withUnsafeMutableBytes { $0.storeBytes(of: plan.runId.littleEndian, toByteOffset: 8, as: UInt64.self) }
        }
        self.encoders = Array(repeating: nil, count: plan.partitions.count)
    }

    /// Starts producing; completes when every record is acknowledged (or fails on the first error).
    func start() -> EventLoopFuture<ProducerOutcome> {
        eventLoop.execute {
            self.startNanos = Clock.nanos()
            if let rate = self.plan.rate { self.schedule = SendSchedule(startNanos: self.startNanos, rate: rate) }
            self.pump()
        }
        return promise.futureResult
    }

    // MARK: - Sending

    private func pump() {
        eventLoop.preconditionInEventLoop()
        while generating && inFlight < plan.inFlight {
            let now = Clock.nanos()
            var available = Int.max
            if let limit = plan.recordLimit { available = limit - nextRecord }
            if let deadline = plan.deadlineNanos, now >= deadline { available = 0 }
            if available <= 0 {
                generating = false
                break
            }
            if let schedule {
                let due = schedule.dueCount(at: now) - nextRecord
                let firstDue = schedule.intendedNanos(nextRecord)
                if due <= 0 {
                    wake(at: firstDue &+ 1)
                    return
                }
                // Linger: wait for more records unless a batch is already full or the oldest waited enough.
                let recordBytes = plan.recordSize + 20
                let fillCount = max(1, plan.batchBytes / recordBytes)
                if due < fillCount && now < firstDue &+ plan.lingerNanos {
                    let fullAt = schedule.intendedNanos(nextRecord + fillCount - 1)
                    wake(at: min(firstDue &+ plan.lingerNanos, fullAt) &+ 1)
                    return
                }
                available = min(available, due)
            }
            sendRequest(recordsMax: available, now: now)
        }
        finishIfDone()
    }

    private func wake(at nanos: UInt64) {
        guard wakeup == nil else { return }
        wakeup = eventLoop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(nanos)) {
            self.wakeup = nil
            self.pump()
        }
    }

    private func takeBuffer() -> ByteBuffer {
        pool.popLast() ?? connection.channel.allocator.buffer(capacity: plan.batchBytes + plan.recordSize + 128)
    }

    private func sendRequest(recordsMax: Int, now: UInt64) {
        let first = nextRecord
        let timestampMs = Int64(Date().timeIntervalSince1970 * 1000)
        var requestBytes = 0
        var count = 0
        let keyed = plan.keys != .none
        let compressing = plan.codec != .none
        let stickySlot = stickyIndex % plan.partitions.count
        stickyIndex &+= 1
        value.withUnsafeMutableBytes { valueBytes in
            while count < recordsMax {
                let index = first + count
                let intended = schedule?.intendedNanos(index) ?? now
                if valueBytes.count >= 8 { valueBytes.storeBytes(of: intended.littleEndian, toByteOffset: 0, as: UInt64.self) }
                if compressing && valueBytes.count > 16 {
                    // A fresh payload per record when compressing, random uppercase letters like
                    // kafka-producer-perf-test's, so codecs see realistic entropy rather than one
                    // repeated value.
                    var position = 16
                    while position < valueBytes.count {
                        var word = filler.next()
                        for _ in 0..<8 where position < valueBytes.count {
                            valueBytes[position] = 65 &+ UInt8(truncatingIfNeeded: (word & 0xFF) % 26)
                            word >>= 8
                            position += 1
                        }
                    }
                }
                var key: UInt64 = 0
                let slot: Int
                switch plan.keys {
                case .none: slot = stickySlot
                case .random:
                    key = rng.next()
                    slot = Int(key % UInt64(plan.partitions.count))
                case .distinct(let n):
                    key = rng.next() % UInt64(n)
                    slot = Int(key % UInt64(plan.partitions.count))
                }
                if encoders[slot] == nil { encoders[slot] = RecordBatchEncoder(reusing: takeBuffer()) }
                let recordBytes = encoders[slot]!.recordByteCount(keyCount: keyed ? 8 : nil, valueCount: valueBytes.count, timestamp: timestampMs)
                // Stop before overfilling a batch or the request (always at least one record).
                if count > 0 && (encoders[slot]!.byteCount + recordBytes > plan.batchBytes || requestBytes + recordBytes > plan.requestBytesMax) {
                    break
                }
                withUnsafeBytes(of: key.bigEndian) { keyBytes in
                    encoders[slot]!.append(key: keyed ? keyBytes : nil, value: UnsafeRawBufferPointer(valueBytes), timestamp: timestampMs)
                }
                requestBytes += recordBytes
                count += 1
            }
        }
        nextRecord += count

        var partitionData: [ProduceRequest.PartitionProduceData] = []
        var batches: [ByteBuffer] = []
        var compressionError: (any Error)?
        for slot in encoders.indices {
            // `take()` moves the encoder out, so `finish()` sees a uniquely held buffer and
            // writes the header in place instead of copying the batch.
            guard var encoder = encoders[slot].take() else { continue }
            guard encoder.count > 0 else {
                pool.append(encoder.finishInPlace())
                continue
            }
            let plain = encoder.finishInPlace()
            let batch: ByteBuffer
            if plan.codec == .none {
                batch = plain
                batches.append(plain)
            } else {
                // One compression per batch (the codec's output array and one new buffer); the plain
                // batch goes straight back to the pool, the compressed one lives with the request.
                do {
                    batch = try RecordBatch.compressed(plain, codec: plan.codec)
                } catch {
                    compressionError = error
                    pool.append(plain)
                    continue
                }
                pool.append(plain)
            }
            partitionData.append(ProduceRequest.PartitionProduceData(index: plan.partitions[slot], records: Records(batch)))
        }
        if let compressionError {
            inFlight += 1  // fail() accounts for one request
            for batch in batches { pool.append(batch) }
            fail(ClientError(.invalidArgument, "compress a \(plan.codec.name) batch: \(compressionError)"))
            return
        }
        let request = ProduceRequest(
            transactionalId: nil, acks: plan.acks, timeoutMs: 30_000,
            topicData: [ProduceRequest.TopicProduceData(name: plan.topic, partitionData: partitionData)]
        )
        inFlight += 1
        requests += 1
        let sentAt = now
        let recordCount = count
        inFlightBatches.append(batches)
        batches = []
        partitionData = []
        if plan.acks == 0 {
            connection.sendWithoutResponse(request, version: produceVersion).whenComplete { result in
                switch result {
                case .success: self.completed(first: first, count: recordCount, sentAt: sentAt)
                case .failure(let error): self.fail(error)
                }
            }
        } else {
            connection.send(request, version: produceVersion).whenComplete { result in
                switch result {
                case .success(let response):
                    if let error = Self.firstError(response, topic: self.plan.topic) {
                        self.fail(error)
                    } else {
                        self.completed(first: first, count: recordCount, sentAt: sentAt)
                    }
                case .failure(let error): self.fail(error)
                }
            }
        }
    }

    private static func firstError(_ response: ProduceResponse, topic: String) -> ClientError? {
        for topicResponse in response.responses {
            for partition in topicResponse.partitionResponses where partition.errorCode != 0 {
                let code = KafkaErrorCode(rawValue: partition.errorCode)
                var message = "produce to \(topic)-\(partition.index): \(code)"
                if let text = partition.errorMessage, !text.isEmpty { message += " (\(text))" }
                return ClientError(.broker(code), message)
            }
        }
        return nil
    }

    private func completed(first: Int, count: Int, sentAt: UInt64) {
        let now = Clock.nanos()
        if let schedule {
            for index in first..<(first + count) {
                let intended = schedule.intendedNanos(index)
                LatencyHistogram.record(now &- min(intended, now), in: &histogram)
            }
        } else {
            LatencyHistogram.record(now &- sentAt, count: UInt64(count), in: &histogram)
        }
        acked += count
        counters.producedRecords.add(count, ordering: .relaxed)
        inFlight -= 1
        // The request has been written and answered: nothing else holds these buffers now.
        if var batches = inFlightBatches.popFirst() {
            while let batch = batches.popLast() { pool.append(batch) }
        }
        pump()
    }

    private func fail(_ error: any Error) {
        counters.errors.add(1, ordering: .relaxed)
        inFlight -= 1
        guard !failed else { return }
        failed = true
        generating = false
        wakeup?.cancel()
        promise.fail(error)
    }

    private func finishIfDone() {
        guard !generating, inFlight == 0, !failed else { return }
        wakeup?.cancel()
        wakeup = nil
        promise.succeed(ProducerOutcome(records: acked, requests: requests, histogram: histogram, startNanos: startNanos, endNanos: Clock.nanos()))
    }
}
