import CommitLog
import KafkaWire
import Security
import NIOCore
import RecordCompression
import Synchronization


extension Broker {
    /// One partition of a fetch, resolved to its log (or an error).
    struct FetchTarget: Sendable {
        var topicIndex: Int
        var partitionIndex: Int32
        var log: PartitionLog?
        var error: KafkaErrorCode
        var fetchOffset: Int64
        var partitionMaxBytes: Int
        /// isolation.level=read_committed: stop at the last stable offset, list aborted transactions.
        var readCommitted = false
    }

    /// What one evaluation of a fetch found: per target either an error or slices of the log.
    struct FetchEvaluation: Sendable {
        var results: [(error: KafkaErrorCode, read: LogReadResult?)]
        var byteCount: Int
        var hasError: Bool
    }

    /// Fetch with long poll: answered at once when MinBytes are available (or on any error),
    /// otherwise parked until an append to one of its partitions satisfies it or MaxWaitMs passes.
    /// Log bytes are never decoded: responses carry file regions sent with sendfile.
    func handleFetch(_ context: RequestContext, _ request: FetchRequest, reply: Reply<FetchResponse>) {
        // Fetch v7+ carries KIP-227 session fields (FetchSessions.swift).
        let version = context.header.apiVersion
        if version < 4 && !configuration.legacyMessageFormats {
            reply.close("Fetch v\(version) (message format v0/v1) is not served: petrel.legacy.message.formats.enable=false")
            return
        }
        // Fetch v0-1 clients read magic 0 message sets, v2-3 magic 1: down-convert for them.
        let legacyMagic: Int8? = version < 2 ? 0 : version < 4 ? 1 : nil
        var targets: [FetchTarget] = []
        var responseTopics: [FetchResponse.FetchableTopicResponse] = []
        for (topicIndex, fetchTopic) in request.topics.enumerated() {
            let topic: Topic?
            var missing: KafkaErrorCode = .unknownTopicOrPartition
            if version >= 13 {
                topic = topics.topic(id: fetchTopic.topicId)
                missing = .unknownTopicId
            } else {
                topic = topics.topic(named: fetchTopic.topic)
            }
            responseTopics.append(.init(topic: fetchTopic.topic, topicId: fetchTopic.topicId, partitions: []))
            let mayRead = authorized(context, .read, .topic, topic?.name ?? fetchTopic.topic)
            for partition in fetchTopic.partitions {
                var target = FetchTarget(
                    topicIndex: topicIndex, partitionIndex: partition.partition, log: nil, error: .none,
                    fetchOffset: partition.fetchOffset, partitionMaxBytes: max(0, Int(partition.partitionMaxBytes)))
                if !mayRead {
                    target.error = .topicAuthorizationFailed
                } else if let topic, let log = topic.partition(partition.partition) {
                    target.log = log
                    if partition.currentLeaderEpoch > 0 { target.error = .unknownLeaderEpoch }
                } else {
                    target.error = missing
                }
                target.readCommitted = version >= 4 && request.isolationLevel == 1
                targets.append(target)
            }
        }
        // KIP-227: an incremental fetch reads its whole session.
        let fetchSession: FetchSessionContext?
        switch applyFetchSession(request, version: version, targets: &targets, responseTopics: &responseTopics) {
        case .proceed(let context): fetchSession = context
        case .refused(let code):
            metrics?.countError(.fetch, code: code.rawValue)
            reply.send(FetchResponse(throttleTimeMs: 0, errorCode: code.rawValue, sessionId: 0, responses: []))
            return
        }
        let maxBytes = version >= 3 ? max(0, Int(request.maxBytes)) : Int(Int32.max)
        let minBytes = max(0, Int(request.minBytes))
        let maxWait = max(0, Int64(request.maxWaitMs))
        let template = FetchResponse(throttleTimeMs: 0, errorCode: 0, sessionId: fetchSession?.responseSessionId ?? 0, responses: responseTopics)

        let targetList = targets
        let first = evaluateFetch(targetList, maxBytes: maxBytes)
        if first.hasError || first.byteCount >= max(minBytes, 1) || maxWait == 0 || targetList.isEmpty {
            sendFetchResponse(template, targetList, first, legacyMagic: legacyMagic, session: fetchSession, reply: reply)
            return
        }
        // Park: the first of (an append that satisfies MinBytes, the MaxWaitMs timer) answers.
        let waiter = ParkedFetch()
        let eventLoop = context.eventLoop
        let complete: @Sendable (Bool) -> Void = { [self] final in
            eventLoop.preconditionInEventLoop()
            guard !waiter.isDone else { return }
            let evaluation = evaluateFetch(targetList, maxBytes: maxBytes)
            let answerNow = final || isShuttingDown.load(ordering: .acquiring)
            guard answerNow || evaluation.hasError || evaluation.byteCount >= max(minBytes, 1) else { return }
            waiter.finish()
            if let id = waiter.waiterId { fetchWaiters.remove(id) }
            waiter.timer?.cancel()
            sendFetchResponse(template, targetList, evaluation, legacyMagic: legacyMagic, session: fetchSession, reply: reply)
        }
        let partitions = targetList.compactMap { $0.log?.topicPartition }
        waiter.waiterId = fetchWaiters.add(partitions: partitions) {
            // Called on the appender thread; coalesce wake-ups into one event-loop task.
            if waiter.markWakePending() {
                eventLoop.execute {
                    waiter.clearWakePending()
                    complete(false)
                }
            }
        }
        waiter.timer = eventLoop.scheduleTask(in: .milliseconds(maxWait)) { complete(true) }
        // An append may have landed between the first evaluation and registering.
        complete(false)
    }

    func evaluateFetch(_ targets: [FetchTarget], maxBytes: Int) -> FetchEvaluation {
        var evaluation = FetchEvaluation(results: [], byteCount: 0, hasError: false)
        evaluation.results.reserveCapacity(targets.count)
        for target in targets {
            guard target.error == .none, let log = target.log else {
                evaluation.results.append((target.error, nil))
                evaluation.hasError = true
                continue
            }
            if log.isOffline {
                evaluation.results.append((.kafkaStorageError, nil))
                evaluation.hasError = true
                continue
            }
            let remaining = maxBytes - evaluation.byteCount
            let limit = min(target.partitionMaxBytes, max(remaining, 0))
            do {
                var read = target.readCommitted
                    ? try log.readCommitted(from: Offset(target.fetchOffset), maxBytes: max(limit, 1)).0
                    : try log.read(from: Offset(target.fetchOffset), maxBytes: max(limit, 1))
                // KIP-74: only the first partition with data may exceed the limits (one whole batch).
                if evaluation.byteCount > 0 && read.byteCount > limit {
                    read.slices = []
                    read.byteCount = 0
                }
                evaluation.byteCount += read.byteCount
                evaluation.results.append((.none, read))
            } catch {
                let code = Self.errorCode(for: error)
                evaluation.results.append((code, nil))
                evaluation.hasError = true
            }
        }
        return evaluation
    }

    func sendFetchResponse(
        _ template: FetchResponse, _ targets: [FetchTarget], _ evaluation: FetchEvaluation, legacyMagic: Int8? = nil,
        session: FetchSessionContext? = nil, reply: Reply<FetchResponse>
    ) {
        var response = template
        let lease = SendfileLease()
        // Client quotas: a throttled fetch is answered without records (Kafka's throttled response).
        let throttleMs = clientQuotas.record(
            .fetch, user: reply.context.quotaUser, clientId: reply.context.header.clientId ?? "", amount: Double(evaluation.byteCount), nowMs: clock.wallMilliseconds())
        for (target, result) in zip(targets, evaluation.results) {
            var partition = FetchResponse.PartitionData(partitionIndex: target.partitionIndex, errorCode: result.error.rawValue)
            partition.abortedTransactions = nil
            if let log = target.log {
                partition.highWatermark = result.read?.highWatermark.value ?? log.highWatermark
                let lastStable = log.lastStableOffset
                partition.lastStableOffset = min(lastStable, partition.highWatermark)
                partition.logStartOffset = result.read?.logStartOffset.value ?? log.logStartOffset
                if target.readCommitted, let read = result.read, read.byteCount > 0 {
                    // The aborted transactions whose records may be in the returned range.
                    partition.abortedTransactions = log.abortedTransactions(from: target.fetchOffset, upTo: lastStable).map {
                        .init(producerId: $0.producerId, firstOffset: $0.firstOffset)
                    }
                }
            } else {
                partition.highWatermark = -1
                partition.lastStableOffset = -1
                partition.logStartOffset = -1
            }
            partition.preferredReadReplica = -1
            if throttleMs > 0 {
                partition.records = Records.empty
            } else if let read = result.read, read.byteCount > 0, let legacyMagic {
                target.log?.traffic.recordOut(bytes: read.byteCount)
                partition.records = makeLegacyRecords(read, magic: legacyMagic, fromOffset: target.fetchOffset)
            } else if let read = result.read, read.byteCount > 0 {
                target.log?.traffic.recordOut(bytes: read.byteCount)
                partition.records = makeRecords(read, lease: lease)
            } else {
                partition.records = Records.empty
            }
            response.responses[target.topicIndex].partitions.append(partition)
        }
        if evaluation.hasError { metrics?.countErrors(response) }
        if throttleMs > 0 {
            response.throttleTimeMs = Int32(clamping: throttleMs)
            if session != nil { response.responses = [] }  // the session's cached state stays as it was
            reply.send(response, throttleMs: throttleMs)
            return
        }
        session?.finish(&response)
        reply.send(response, lease: lease)
    }

    /// Reads the slices and down-converts their batches to a message set of `magic` (Kafka 3.x's
    /// down-conversion for Fetch v0-3; costs a copy and a decode per record, unlike sendfile).
    func makeLegacyRecords(_ read: LogReadResult, magic: Int8, fromOffset: Int64) -> Records {
        var bytes = ByteBufferAllocator().buffer(capacity: read.byteCount)
        for slice in read.slices where slice.length > 0 {
            guard let count = try? slice.read(appendingTo: &bytes), count == slice.length else { break }
        }
        let converted = LegacyMessageSet.downConvert(bytes, magic: magic, fromOffset: fromOffset, allocator: ByteBufferAllocator())
        return converted.readableBytes > 0 ? Records(chunks: [.bytes(converted)]) : Records.empty
    }

    /// Turns log slices into response chunks: zero-copy file regions (sendfile) by default, or
    /// one read (copy) per slice when `petrel.fetch.zero.copy=false`.
    func makeRecords(_ read: LogReadResult, lease: SendfileLease) -> Records {
        var chunks: [Records.Chunk] = []
        chunks.reserveCapacity(read.slices.count)
        for slice in read.slices where slice.length > 0 {
            if configuration.fetchZeroCopy {
                // The region borrows the segment's descriptor; the lease keeps the segment file
                // open until the frame is written, then the connection releases it.
                chunks.append(.file(lease.region(for: slice)))
            } else {
                // A failed read leaves the slice out; the client fetches again from where it got to.
                var buffer = ByteBufferAllocator().buffer(capacity: slice.length)
                if let readCount = try? slice.read(appendingTo: &buffer), readCount > 0 { chunks.append(.bytes(buffer)) }
            }
        }
        return Records(chunks: chunks)
    }
}

/// State of one parked fetch; touched on its event loop except for the wake flag.
final class ParkedFetch: @unchecked Sendable {
    private let flags = Atomic<UInt8>(0)  // bit 0: done, bit 1: wake pending
    var waiterId: UInt64?
    var timer: Scheduled<Void>?

    var isDone: Bool { flags.load(ordering: .acquiring) & 1 != 0 }
    func finish() { flags.bitwiseOr(1, ordering: .acquiringAndReleasing) }
    /// True if this call set the pending flag (so the caller should schedule the wake-up).
    func markWakePending() -> Bool {
        let old = flags.bitwiseOr(2, ordering: .acquiringAndReleasing).oldValue
        return old & 3 == 0
    }
    func clearWakePending() { flags.bitwiseAnd(~2, ordering: .acquiringAndReleasing) }
}
