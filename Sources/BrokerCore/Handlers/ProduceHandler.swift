import CommitLog
import KafkaWire
import Security
import NIOCore
import RecordCompression
import RecordFormat
import Synchronization
import TransactionCoordination

extension Broker {
    /// Produce: validates each partition's batch (exactly one magic-2 batch, CRC, size), hands it to
    /// the appender, and answers when every partition has completed. Errors are per partition and
    /// never affect other partitions. acks=0 gets no response.
    func handleProduce(_ context: RequestContext, _ request: ProduceRequest, reply: Reply<ProduceResponse>) {
        let version = context.header.apiVersion
        if version < 3 && !configuration.legacyMessageFormats {
            // Kafka 4 advertises Produce v0 (librdkafka needs it for its codec checks) but closes
            // the connection if v0-2 (magic 0/1 message sets) is actually sent (KAFKA-18659).
            reply.close("Produce v\(version) (message format v0/v1) is not supported")
            return
        }
        let acks = request.acks
        var immediateError: KafkaErrorCode?
        if acks != 0 && acks != 1 && acks != -1 { immediateError = .invalidRequiredAcks }
        if let transactionalId = request.transactionalId {
            if transactionalId.isEmpty {
                immediateError = .invalidRequest
            } else if !authorized(context, .write, .transactionalId, transactionalId) {
                immediateError = .transactionalIdAuthorizationFailed  // Kafka: WRITE on the transactional id
            }
        }

        let partitionCount = request.topicData.reduce(0) { $0 + $1.partitionData.count }
        let aggregate = ProduceAggregate(request: request, partitionCount: partitionCount)
        let eventLoop = context.eventLoop
        let metrics = self.metrics
        let quotas = clientQuotas
        let clock = self.clock
        let clientId = context.header.clientId ?? ""
        let quotaUser = context.quotaUser
        let requestBytes = request.topicData.reduce(0) { $0 + $1.partitionData.reduce(0) { $0 + ($1.records?.byteCount ?? 0) } }
        let finish: @Sendable (ProduceResponse) -> Void = { response in
            metrics?.countErrors(response)
            // Completions arrive on the appender thread: encode on the connection's event loop.
            let answer: @Sendable () -> Void = {
                let throttleMs = quotas.record(.produce, user: quotaUser, clientId: clientId, amount: Double(requestBytes), nowMs: clock.wallMilliseconds())
                if acks != 0 {
                    var response = response
                    response.throttleTimeMs = Int32(clamping: throttleMs)
                    reply.send(response, throttleMs: throttleMs)
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
            let mayWrite = authorized(context, .write, .topic, topicData.name)
            for (partitionIndex, partitionData) in topicData.partitionData.enumerated() {
                let slot = (topicIndex, partitionIndex)
                if let immediateError {
                    aggregate.fail(slot, immediateError, message: nil, finish: finish)
                    continue
                }
                guard mayWrite else {
                    aggregate.fail(slot, .topicAuthorizationFailed, message: nil, finish: finish)
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
                guard let records = partitionData.records, records.byteCount > 0, var batch = records.singleBuffer else {
                    aggregate.fail(slot, .invalidRecord, message: "Produce request must contain one record batch", finish: finish)
                    continue
                }
                if version < 3 {
                    // Produce v0-2 carries a v0/v1 message set: convert it to one v2 batch, which
                    // then passes every check a v3+ batch does (Kafka 3.x up-converted likewise).
                    if batch.readableBytes > log.configuration.maxMessageBytes {
                        aggregate.fail(slot, .messageTooLarge, message: "The message set is larger than max.message.bytes", finish: finish)
                        continue
                    }
                    do {
                        batch = try LegacyMessageSet.upConvert(
                            batch, now: clock.wallMilliseconds(), decompressedBytesMax: configuration.decompressedBatchBytesMax)
                    } catch {
                        aggregate.fail(slot, Self.errorCode(for: error), message: error.message, finish: finish)
                        continue
                    }
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
                if header.compression == .zstd && version < 7 {
                    aggregate.fail(slot, .unsupportedCompressionType, message: "zstd needs Produce v7 or later", finish: finish)
                    continue
                }
                // Kafka's LogValidator pass: every record is walked (decompressed first when the
                // batch is compressed), so nothing a consumer would choke on reaches the log.
                let deep: DeepValidation
                do {
                    deep = try RecordBatch.validateRecordsDeep(
                        batch, header: header, offsets: .sequential, decompressedBytesMax: configuration.decompressedBatchBytesMax)
                } catch {
                    aggregate.fail(slot, Self.errorCode(for: error), message: error.message, finish: finish)
                    continue
                }
                if let refusal = Self.recordRefusal(batch, header: header, deep: deep, log: log, clock: clock) {
                    aggregate.fail(slot, refusal.code, message: refusal.message, recordErrors: refusal.recordErrors, finish: finish)
                    continue
                }
                var stored = batch
                if let target = log.configuration.compressionType, header.compression != target {
                    // The topic sets compression.type: re-encode with its codec, as Kafka does.
                    do {
                        stored = try Self.recompress(batch, header: header, decompressedRecords: deep.decompressedRecords, to: target)
                    } catch {
                        aggregate.fail(slot, .corruptMessage, message: "cannot re-encode the batch with \(target.name): \(error)", finish: finish)
                        continue
                    }
                } else if log.configuration.messageTimestampType == .createTime, header.maxTimestamp != deep.summary.maxTimestamp {
                    // The header's maxTimestamp drives the time index and retention: like Kafka's
                    // LogValidator, store the records' real maximum.
                    stored = RecordBatch.withMaxTimestamp(deep.summary.maxTimestamp, batch)
                }
                let storedBytes = stored.readableBytes
                let appender = logManager.appender
                let toStore = stored
                let append: @Sendable () -> Void = {
                    appender.append(toStore, to: log) { result in
                        switch result {
                        case .success(let appended):
                            log.traffic.recordIn(bytes: storedBytes, messages: Int(appended.lastOffset - appended.baseOffset + 1))
                            aggregate.succeed(slot, appended, finish: finish)
                        case .failure(let error):
                            aggregate.fail(slot, Self.errorCode(for: error), message: error.message, finish: finish)
                        }
                    }
                }
                guard header.isTransactional else {
                    append()
                    continue
                }
                let partition = TransactionPartition(topic: topicData.name, partition: partitionData.index)
                guard version >= 12 else {
                    // KIP-890 part 1: the partition must be in the producer's Ongoing transaction.
                    if let refusal = transactionalRefusal(request.transactionalId, header, partition: partition) {
                        aggregate.fail(slot, refusal, message: "transactional produce refused: \(refusal)", finish: finish)
                    } else {
                        append()
                    }
                    continue
                }
                // Transactions v2 (KIP-890 part 2): the partition joins the transaction here.
                guard let transactionalId = request.transactionalId else {
                    aggregate.fail(slot, .transactionalIdNotFound, message: "a transactional batch needs a transactional id", finish: finish)
                    continue
                }
                transactionCoordinator.addPartitionImplicitly(
                    transactionalId: transactionalId, producerId: header.producerId, producerEpoch: header.producerEpoch,
                    partition: partition, write: append,
                    refuse: { error in
                        let code = Self.implicitAddError(error)
                        aggregate.fail(slot, code, message: "transactional produce refused: \(error)", finish: finish)
                    })
            }
        }
    }

    /// A refusal of some of the batch's records, with Kafka's per-record errors (KIP-467).
    struct RecordRefusal {
        var code: KafkaErrorCode
        var message: String
        var recordErrors: [ProduceResponse.BatchIndexAndErrorMessage]
    }

    /// The per-record rules Kafka's `LogValidator` applies after the walk: no keyless records on
    /// compacted topics (INVALID_RECORD) and, when `message.timestamp.before/after.max.ms` are set,
    /// every record's CreateTime inside the window (INVALID_TIMESTAMP). The walk's summary decides
    /// whether anything is wrong; only then are the records walked again to name the offenders.
    static func recordRefusal(
        _ batch: ByteBuffer, header: RecordBatchHeader, deep: DeepValidation, log: PartitionLog, clock: any LogClock
    ) -> RecordRefusal? {
        let configuration = log.configuration
        if configuration.cleanupPolicy.contains(.compact), deep.summary.keylessCount > 0 {
            let message = "Compacted topic cannot accept message without key in topic partition \(log.topicPartition)."
            let indices = offendingRecords(batch, header: header, deep: deep) { keyIsNull, _ in keyIsNull }
            return RecordRefusal(
                code: .invalidRecord, message: message,
                recordErrors: indices.map { .init(batchIndex: Int32($0), batchIndexErrorMessage: message) })
        }
        let after = configuration.messageTimestampAfterMaxMs
        let before = configuration.messageTimestampBeforeMaxMs
        // Unchecked by default: no clock read on the produce path then.
        guard configuration.messageTimestampType == .createTime, after != .max || before != .max else { return nil }
        let now = clock.wallMilliseconds()
        let upper = after == .max ? Int64.max : now &+ after
        let lower = before == .max ? Int64.min : now &- before
        guard deep.summary.maxTimestamp > upper || deep.summary.minTimestamp < lower else { return nil }
        let indices = offendingRecords(batch, header: header, deep: deep) { _, timestamp in timestamp > upper || timestamp < lower }
        var errors: [ProduceResponse.BatchIndexAndErrorMessage] = []
        for index in indices {
            errors.append(.init(batchIndex: Int32(index), batchIndexErrorMessage: nil))
        }
        let message =
            deep.summary.maxTimestamp > upper
            ? "Timestamp \(deep.summary.maxTimestamp) of a record in the batch is more than \(after) ms after the broker time \(now) (message.timestamp.after.max.ms)"
            : "Timestamp \(deep.summary.minTimestamp) of a record in the batch is more than \(before) ms before the broker time \(now) (message.timestamp.before.max.ms)"
        for position in errors.indices {
            errors[position].batchIndexErrorMessage =
                "Timestamp of record \(errors[position].batchIndex) is out of range [\(lower == .min ? "-inf" : String(lower)), \(upper == .max ? "+inf" : String(upper))]"
        }
        return RecordRefusal(code: .invalidTimestamp, message: message, recordErrors: errors)
    }

    /// Indices of the records matching `matches`, from the batch or its decompressed records.
    static func offendingRecords(
        _ batch: ByteBuffer, header: RecordBatchHeader, deep: DeepValidation, where matches: (Bool, Int64) -> Bool
    ) -> [Int] {
        if let plain = deep.decompressedRecords {
            return plain.withUnsafeBytes { RecordBatch.recordIndices($0, header: header, where: matches) }
        }
        return RecordBatch.recordIndices(in: batch, header: header, where: matches)
    }

    /// Re-encodes a validated batch with `codec` (offsets, producer fields and timestamps kept).
    /// `decompressedRecords` are the records the validating pass already decompressed, if any.
    static func recompress(
        _ batch: ByteBuffer, header: RecordBatchHeader, decompressedRecords: [UInt8]?, to codec: CompressionCodec
    ) throws -> ByteBuffer {
        var plain = batch
        if let decompressedRecords {
            plain = RecordBatch.uncompressed(batch, header: header, records: decompressedRecords)
        } else if let current = header.compression, current != .none {
            plain = try RecordBatch.decompressed(batch, header: header, codec: current)
        }
        return codec == .none ? plain : try RecordBatch.compressed(plain, codec: codec)
    }

    /// The produce error for a refused implicit AddPartitionsToTxn, as Kafka's partition leader
    /// answers it: a fenced producer is INVALID_PRODUCER_EPOCH, coordinator unavailability or a
    /// transaction still completing is NOT_ENOUGH_REPLICAS (which every producer retries).
    static func implicitAddError(_ error: KafkaErrorCode) -> KafkaErrorCode {
        switch error {
        case .producerFenced: .invalidProducerEpoch
        case .concurrentTransactions, .coordinatorLoadInProgress, .coordinatorNotAvailable, .notCoordinator: .notEnoughReplicas
        default: error
        }
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
        case .openFilesBudgetExceeded: .policyViolation
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
            $0.responses[slot.0].partitionResponses[slot.1].baseOffset = result.baseOffset.value
            $0.responses[slot.0].partitionResponses[slot.1].logAppendTimeMs = result.logAppendTime ?? -1
            $0.responses[slot.0].partitionResponses[slot.1].logStartOffset = result.logStartOffset.value
        } finish: { finish($0) }
    }

    func fail(
        _ slot: (Int, Int), _ code: KafkaErrorCode, message: String?,
        recordErrors: [ProduceResponse.BatchIndexAndErrorMessage] = [], finish: @Sendable (ProduceResponse) -> Void
    ) {
        complete {
            $0.responses[slot.0].partitionResponses[slot.1].recordErrors = recordErrors
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
