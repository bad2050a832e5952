import CommitLog
import KafkaWire
import NIOCore
import RecordCompression
import RecordFormat
import Synchronization

extension Broker {
    /// Produce: validates each partition's batch (exactly one magic-2 batch, CRC, size), hands it to
    /// the appender, and answers when every partition has completed. Errors are per partition and
    /// never affect other partitions. acks=0 gets no response.
    func handleProduce(_ context: RequestContext, _ request: ProduceRequest, reply: Reply<ProduceResponse>) {
        let version = context.header.apiVersion
        if version < 3 {
            // Kafka 4 advertises Produce v0 (librdkafka needs it for its codec checks) but closes
            // the connection if v0-2 (magic 0/1 message sets) is actually sent (KAFKA-18659).
            reply.close("Produce v\(version) (message format v0/v1) is not supported")
            return
        }
        let acks = request.acks
        var immediateError: KafkaErrorCode?
        if acks != 0 && acks != 1 && acks != -1 { immediateError = .invalidRequiredAcks }
        if request.transactionalId != nil { immediateError = .transactionalIdAuthorizationFailed }

        let partitionCount = request.topicData.reduce(0) { $0 + $1.partitionData.count }
        let aggregate = ProduceAggregate(request: request, partitionCount: partitionCount)
        let eventLoop = context.eventLoop
        let finish: @Sendable (ProduceResponse) -> Void = { response in
            // Completions arrive on the appender thread: encode on the connection's event loop.
            let answer: @Sendable () -> Void = {
                if acks != 0 {
                    reply.send(response)
                } else if let failed = response.responses.lazy.flatMap(\.partitionResponses).first(where: { $0.errorCode != 0 }) {
                    // acks=0 has no response to carry the error: like Kafka, close the connection so
                    // the producer notices and refreshes its metadata.
                    reply.close("acks=0 produce failed: \(KafkaErrorCode(rawValue: failed.errorCode)) \(failed.errorMessage ?? "")")
                } else {
                    reply.noResponse()
                }
            }
            if eventLoop.inEventLoop { answer() } else { eventLoop.execute(answer) }
        }
        if partitionCount == 0 {
            finish(aggregate.response())
            return
        }
        for (topicIndex, topicData) in request.topicData.enumerated() {
            let topic = topics.topic(named: topicData.name)
            for (partitionIndex, partitionData) in topicData.partitionData.enumerated() {
                let slot = (topicIndex, partitionIndex)
                if let immediateError {
                    aggregate.fail(slot, immediateError, message: nil, finish: finish)
                    continue
                }
                guard let topic, let log = topic.partition(partitionData.index) else {
                    aggregate.fail(slot, .unknownTopicOrPartition, message: "This server does not host this topic-partition.", finish: finish)
                    continue
                }
                switch log.storageStatus {
                case .online: break
                case .readOnly:
                    aggregate.fail(slot, .kafkaStorageError, message: "The partition's log is read-only: the disk is full.", finish: finish)
                    continue
                case .offline:
                    aggregate.fail(slot, .kafkaStorageError, message: "The partition's log is offline after a disk error.", finish: finish)
                    continue
                }
                guard let records = partitionData.records, records.byteCount > 0, let batch = records.singleBuffer else {
                    aggregate.fail(slot, .invalidRecord, message: "Produce request must contain one record batch", finish: finish)
                    continue
                }
                if batch.readableBytes > log.configuration.maxMessageBytes {
                    aggregate.fail(
                        slot, .messageTooLarge,
                        message: "The batch is \(batch.readableBytes) bytes, larger than max.message.bytes \(log.configuration.maxMessageBytes)",
                        finish: finish)
                    continue
                }
                let header: RecordBatchHeader
                do {
                    header = try RecordBatch.validateFromClient(batch, requireExactLength: true)
                } catch {
                    aggregate.fail(slot, Self.errorCode(for: error), message: error.message, finish: finish)
                    continue
                }
                if let problem = Self.timestampProblem(header, configuration: log.configuration, clock: clock) {
                    aggregate.fail(slot, .invalidTimestamp, message: problem, finish: finish)
                    continue
                }
                if header.compression == .zstd && version < 7 {
                    aggregate.fail(slot, .unsupportedCompressionType, message: "zstd needs Produce v7 or later", finish: finish)
                    continue
                }
                if log.configuration.cleanupPolicy.contains(.compact), let problem = Self.keylessRecordProblem(batch, log: log) {
                    aggregate.fail(slot, problem.code, message: problem.message, finish: finish)
                    continue
                }
                var stored = batch
                if let target = log.configuration.compressionType, header.compression != target {
                    // The topic sets compression.type: re-encode with its codec, as Kafka does.
                    do {
                        stored = try Self.recompress(batch, header: header, to: target)
                    } catch {
                        aggregate.fail(slot, .corruptMessage, message: "cannot re-encode the batch with \(target.name): \(error)", finish: finish)
                        continue
                    }
                }
                logManager.appender.append(stored, to: log) { result in
                    switch result {
                    case .success(let appended):
                        aggregate.succeed(slot, appended, finish: finish)
                    case .failure(let error):
                        aggregate.fail(slot, Self.errorCode(for: error), message: error.message, finish: finish)
                    }
                }
            }
        }
    }

    /// Kafka refuses records without a key on compacted topics (INVALID_RECORD, "Compacted topic
    /// cannot accept message without key"); the records are decoded (decompressed) to check.
    static func keylessRecordProblem(_ batch: ByteBuffer, log: PartitionLog) -> (code: KafkaErrorCode, message: String)? {
        let records: [Record]
        do { records = try RecordBatch.decodeRecords(in: batch).records } catch {
            return (.corruptMessage, "The batch's records could not be decoded: \(error)")
        }
        guard records.contains(where: { $0.key == nil }) else { return nil }
        return (.invalidRecord, "Compacted topic cannot accept message without key in topic partition \(log.topicPartition).")
    }

    /// Kafka's CreateTime window (`message.timestamp.before.max.ms` / `after.max.ms`), checked on
    /// the batch header without decoding records: the newest timestamp (maxTimestamp) against the
    /// upper bound, the first record's (baseTimestamp) against the lower bound.
    static func timestampProblem(_ header: RecordBatchHeader, configuration: LogConfiguration, clock: any LogClock) -> String? {
        let after = configuration.messageTimestampAfterMaxMs
        let before = configuration.messageTimestampBeforeMaxMs
        // Unchecked by default: no clock read on the produce path then.
        guard configuration.messageTimestampType == .createTime, after != .max || before != .max else { return nil }
        let now = clock.wallMilliseconds()
        if after != .max, header.maxTimestamp > now &+ after {
            return "Timestamp \(header.maxTimestamp) of a record in the batch is more than \(after) ms after the broker time \(now) (message.timestamp.after.max.ms)"
        }
        if before != .max, header.baseTimestamp >= 0, header.baseTimestamp < now &- before {
            return "Timestamp \(header.baseTimestamp) of a record in the batch is more than \(before) ms before the broker time \(now) (message.timestamp.before.max.ms)"
        }
        return nil
    }

    /// Re-encodes a validated batch with `codec` (offsets, producer fields and timestamps kept).
    static func recompress(_ batch: ByteBuffer, header: RecordBatchHeader, to codec: CompressionCodec) throws -> ByteBuffer {
        var plain = batch
        if let current = header.compression, current != .none {
            plain = try RecordBatch.decompressed(batch, header: header, codec: current)
        }
        return codec == .none ? plain : try RecordBatch.compressed(plain, codec: codec)
    }

    static func errorCode(for error: RecordBatchError) -> KafkaErrorCode {
        switch error.kind {
        case .truncated, .corrupt: .corruptMessage
        case .unsupportedMagic, .invalid: .invalidRecord
        }
    }

    static func errorCode(for error: CommitLogError) -> KafkaErrorCode {
        switch error.kind {
        case .corruptBatch: .corruptMessage
        case .invalidBatch: .invalidRecord
        case .messageTooLarge: .messageTooLarge
        case .offsetOutOfRange: .offsetOutOfRange
        case .storage, .offline, .readOnly: .kafkaStorageError
        case .notFound: .unknownTopicOrPartition
        case .alreadyExists: .topicAlreadyExists
        case .shuttingDown: .notLeaderOrFollower
        case .outOfOrderSequence: .outOfOrderSequenceNumber
        case .invalidProducerEpoch: .invalidProducerEpoch
        case .transactionsUnsupported: .transactionalIdAuthorizationFailed
        }
    }
}

/// Collects per-partition outcomes of one Produce request; the last one to arrive sends the response.
final class ProduceAggregate: Sendable {
    private struct State {
        var response: ProduceResponse
        var remaining: Int
    }

    private let state: Mutex<State>

    init(request: ProduceRequest, partitionCount: Int) {
        let response = ProduceResponse(
            responses: request.topicData.map { topic in
                ProduceResponse.TopicProduceResponse(
                    name: topic.name,
                    partitionResponses: topic.partitionData.map { ProduceResponse.PartitionProduceResponse(index: $0.index) })
            })
        state = Mutex(State(response: response, remaining: partitionCount))
    }

    func response() -> ProduceResponse { state.withLock { $0.response } }

    func succeed(_ slot: (Int, Int), _ result: AppendResult, finish: @Sendable (ProduceResponse) -> Void) {
        complete {
            $0.responses[slot.0].partitionResponses[slot.1].errorCode = 0
            $0.responses[slot.0].partitionResponses[slot.1].baseOffset = result.baseOffset
            $0.responses[slot.0].partitionResponses[slot.1].logAppendTimeMs = result.logAppendTime
            $0.responses[slot.0].partitionResponses[slot.1].logStartOffset = result.logStartOffset
        } finish: { finish($0) }
    }

    func fail(_ slot: (Int, Int), _ code: KafkaErrorCode, message: String?, finish: @Sendable (ProduceResponse) -> Void) {
        complete {
            $0.responses[slot.0].partitionResponses[slot.1].errorCode = code.rawValue
            $0.responses[slot.0].partitionResponses[slot.1].baseOffset = -1
            $0.responses[slot.0].partitionResponses[slot.1].logAppendTimeMs = -1
            $0.responses[slot.0].partitionResponses[slot.1].logStartOffset = -1
            $0.responses[slot.0].partitionResponses[slot.1].errorMessage = message
        } finish: { finish($0) }
    }

    private func complete(_ update: (inout ProduceResponse) -> Void, finish: (ProduceResponse) -> Void) {
        let done: ProduceResponse? = state.withLock {
            update(&$0.response)
            $0.remaining -= 1
            return $0.remaining == 0 ? $0.response : nil
        }
        if let done { finish(done) }
    }
}
