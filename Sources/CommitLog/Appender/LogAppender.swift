public import DiskIO
public import Logging
public import NIOCore
import RecordFormat
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The single writer of every partition log.
///
/// One dedicated thread takes all queued appends (across partitions) as a group: it assigns offsets
/// (patching `baseOffset` in place, stamping `partitionLeaderEpoch` 0 and, for LogAppendTime topics,
/// the append time), reserves file positions, rolls segments when due, and writes the whole group —
/// batches and index entries — with one `io.submit`. Partitions whose flush policy asks for it
/// (`flush.messages` reached, `flush.ms` elapsed) then get one more submit of fdatasync operations: a
/// group commit, one fdatasync covering every batch waiting. Then high watermarks advance, index
/// entries are published, completions run, and `onAppended` is told. Appends arriving meanwhile queue
/// up and form the next group.
///
/// Partitions that need no flush are completed right after the write submit, before the sync submit.
///
/// Batches with a producer id go through the partition's `ProducerStateManager` at offset assignment,
/// in queue order: a retried duplicate completes with its original offsets without being written;
/// fenced epochs and sequence gaps fail (`.invalidProducerEpoch`, `.outOfOrderSequence`).
public final class LogAppender: @unchecked Sendable {
    private struct Item {
        var batch: ByteBuffer
        let log: PartitionLog?
        let completion: (@Sendable (Result<AppendResult, CommitLogError>) -> Void)?
        let task: (() -> Void)?
    }

    private struct Outcome {
        var error: CommitLogError?
        var baseOffset: Int64 = -1
        var lastOffset: Int64 = -1
        var logAppendTime: Int64?
    }

    /// Most appends in one group (bounds SQEs per submit).
    static let groupAppendsMax = 2048
    /// Most batch bytes in one group (bounds staging memory and what one submit pins).
    static let groupBytesMax = 32 << 20
    /// Largest single write made by joining staged batches.
    static let coalescedWriteBytesMax = 4 << 20

    let io: any FileIO
    let clock: any LogClock
    let logger: Logger

    /// Called on the appender thread after appends advanced a partition's high watermark.
    /// Set before `start()`.
    public var onAppended: (@Sendable (TopicPartition, Int64) -> Void)?
    /// Group and group-commit counters (metrics).
    public let statistics = StorageStatistics()

    private let lock = ConditionLock()
    // Guarded by `lock`.
    private var queue: [Item] = []
    private var stopping = false
    private var running = false

    // Appender thread only.
    private var thread: WorkerThread?
    private var batchItems: [Item] = []
    private var batch = PartitionIOBatch()
    private var outcomes: [Outcome] = []
    private var groupLogs: [PartitionLog] = []
    private var flushLogs: [PartitionLog] = []
    private let arena = ScratchArena()

    public init(io: any FileIO, clock: any LogClock, logger: Logger) {
        self.io = io
        self.clock = clock
        self.logger = logger
    }

    deinit {
        if running { shutdown() }
    }

    /// Starts the appender thread.
    public func start() {
        let shouldStart = lock.withLock { () -> Bool in
            guard !running, !stopping else { return false }
            running = true
            return true
        }
        guard shouldStart else { return }
        let worker = WorkerThread(name: "petrel-appender") { [self] in run() }
        thread = worker
        worker.start()
    }

    /// Finishes the queued work, then stops the thread. Later appends fail with `.shuttingDown`.
    public func shutdown() {
        let wasRunning = lock.withLock { () -> Bool in
            let wasRunning = running
            stopping = true
            lock.broadcast()
            return wasRunning
        }
        if wasRunning, let thread, !thread.isCurrent {
            thread.join()
        }
        lock.withLock { running = false }
    }

    /// Whether the calling thread may touch writer state: the appender thread, or any thread while
    /// the appender is not running (load, shutdown). For debug-build assertions.
    var isWriterContext: Bool {
        if let thread, thread.isCurrent { return true }
        return !lock.withLock { running }
    }

    /// Appends and tasks waiting for the appender thread (for tests and metrics).
    public var queuedCount: Int { lock.withLock { queue.count } }

    /// Whether the appender thread is running (appends are accepted).
    public var isRunning: Bool { lock.withLock { running && !stopping } }

    /// Queues one batch for `log`.
    ///
    /// `batch` is one already-validated (CRC, magic) record batch v2 exactly as received: its readable
    /// bytes are the whole batch. Its header is patched in place when the buffer is uniquely owned;
    /// otherwise (e.g. a slice of a request frame) the batch is copied once into reused staging memory
    /// and patched there, so the patched header and the payload always go to disk in one write (a
    /// separate header write could tear apart from the payload). `completion` runs on the appender
    /// thread.
    public func append(
        _ batch: ByteBuffer, to log: PartitionLog,
        completion: @escaping @Sendable (Result<AppendResult, CommitLogError>) -> Void
    ) {
        let accepted = lock.withLock { () -> Bool in
            guard running, !stopping else { return false }
            queue.append(Item(batch: batch, log: log, completion: completion, task: nil))
            if queue.count == 1 { lock.signal() }
            return true
        }
        if !accepted {
            completion(.failure(CommitLogError(.shuttingDown, "the appender is not running")))
        }
    }

    /// Runs `task` on the appender thread after the appends queued before it. Returns false (and does
    /// not run it) if the appender is not running.
    @discardableResult
    func enqueue(_ task: @escaping @Sendable () -> Void) -> Bool {
        lock.withLock { () -> Bool in
            guard running, !stopping else { return false }
            queue.append(Item(batch: ByteBuffer(), log: nil, completion: nil, task: task))
            if queue.count == 1 { lock.signal() }
            return true
        }
    }

    /// Runs `body` on the appender thread and waits for it; runs it inline when the appender is not
    /// running (or when called from the appender thread).
    func perform<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        if let thread, thread.isCurrent { return body() }
        let box = ResultBox<T>()
        let queued = enqueue {
            let value = body()
            box.done.withLock {
                box.value = value
                box.done.broadcast()
            }
        }
        guard queued else {
            // Refused because the appender is stopping: it may still be draining its queue. Wait
            // until shutdown has joined it, so `body` never races the appender over the same files.
            if thread != nil {
                while lock.withLock({ running }) { usleep(1000) }
            }
            return body()
        }
        box.done.lock()
        while box.value == nil { box.done.wait() }
        let value = box.value!
        box.done.unlock()
        return value
    }

    // MARK: The thread

    private func run() {
        while true {
            lock.lock()
            while queue.isEmpty && !stopping { lock.wait() }
            if queue.isEmpty && stopping {
                lock.unlock()
                return
            }
            swap(&queue, &batchItems)
            lock.unlock()
            process()
            batchItems.removeAll(keepingCapacity: true)
        }
    }

    private func process() {
        var start = 0
        var index = 0
        var appendCount = 0
        var byteCount = 0
        while index < batchItems.count {
            if let task = batchItems[index].task {
                if start < index { runGroup(start..<index) }
                task()
                index += 1
                start = index
                appendCount = 0
                byteCount = 0
                continue
            }
            let size = batchItems[index].batch.readableBytes
            if start < index, appendCount + 1 > Self.groupAppendsMax || byteCount + size > Self.groupBytesMax {
                runGroup(start..<index)
                start = index
                appendCount = 0
                byteCount = 0
            }
            appendCount += 1
            byteCount += size
            index += 1
        }
        if start < batchItems.count { runGroup(start..<batchItems.count) }
    }

    // MARK: One group

    /// Runs the appends `batchItems[range]` as one group, in named steps: reserve (offsets, positions,
    /// rolls, queued writes), one write submit, publish what needs no flush, the group commit (plus
    /// write-behind) and its publication, then flushing rolled segments.
    private func runGroup(_ range: Range<Int>) {
        let now = clock.wallMilliseconds()
        startGroup(range)
        reserveAll(range, now: now)
        // Index entries stay in memory: a segment's index files are written whole when it stops being
        // active (LogSegment.deactivate, at roll), so no index descriptor is held meanwhile.
        submitWrites()
        publishUnflushed(range, now: now)
        groupCommit(range, now: now)
        flushRolledSegments(now: now)
        endGroup()
    }

    private func startGroup(_ range: Range<Int>) {
        batch.removeAll()
        outcomes.removeAll(keepingCapacity: true)
        groupLogs.removeAll(keepingCapacity: true)
        flushLogs.removeAll(keepingCapacity: true)
        arena.reset()
        statistics.recordGroup(batches: range.count)
    }

    /// Step 1: assigns offsets and positions (rolling as needed) and queues the batch writes.
    private func reserveAll(_ range: Range<Int>, now: Int64) {
        for index in range {
            outcomes.append(reserve(index, now: now))
        }
    }

    /// Step 2: one submit for the whole group's writes.
    private func submitWrites() {
        batch.submit(io: io, failed: Self.noteFailure)
    }

    /// Step 3: partitions that need no flush complete now; the others wait for the group commit.
    private func publishUnflushed(_ range: Range<Int>, now: Int64) {
        for log in groupLogs {
            let writer = log.writer
            if let failure = writer.groupFailure {
                // Out of space: read-only, the unpublished tail truncated away; otherwise offline.
                log.writeFailed(failure, now: now)
            } else if writer.isOffline || writer.isClosed || writer.isReadOnly {
                continue  // its appends failed early; nothing to publish or flush
            } else if log.flushDue(now: now) {
                writer.groupNeedsFlush = true
                flushLogs.append(log)
            } else {
                publish(log)
            }
        }
        complete(range, flushing: false)
        notify(flushing: false)
    }

    /// Step 4: the group commit (fdatasync) for partitions whose flush policy asks for it, plus
    /// write-behind for the rest; then the flushed partitions are published and completed.
    private func groupCommit(_ range: Range<Int>, now: Int64) {
        batch.removeAll()
        for log in flushLogs {
            log.appendFlushOperations(to: &batch, onlyInactive: false)
        }
        for log in groupLogs where log.writer.groupFailure == nil && !log.writer.groupNeedsFlush {
            queueWriteBehind(log)
        }
        if !batch.isEmpty {
            let flushStart = flushLogs.isEmpty ? 0 : clock.monotonicNanoseconds()
            batch.submit(io: io, failed: Self.noteFailure)
            if !flushLogs.isEmpty {
                let nanoseconds = Int(clock.monotonicNanoseconds() &- flushStart)
                statistics.recordGroupCommit(batches: range.count, nanoseconds: nanoseconds)
                statistics.observer.withLock { $0 }?.groupCommitted(batches: range.count, nanoseconds: nanoseconds)
            }
        }
        for log in flushLogs where log.finishFlush(failure: log.writer.groupFailure, now: now, onlyInactive: false) {
            publish(log)
        }
        if !flushLogs.isEmpty {
            complete(range, flushing: true)
            notify(flushing: true)
        }
        for log in groupLogs where !log.writer.groupNeedsFlush {
            // A failed write-behind: the appends were acknowledged, but the disk is failing. (A log
            // made read-only in step 3 had its failure handled there and queued no write-behind.)
            if let failure = log.writer.groupFailure, !log.writer.isReadOnly { log.goOffline(failure) }
        }
    }

    /// Step 5: rolled segments become durable (Kafka flushes up to the new segment's base after a
    /// roll), which moves the recovery point past them.
    private func flushRolledSegments(now: Int64) {
        batch.removeAll()
        for log in groupLogs where log.writer.groupRolled && log.writer.groupFailure == nil {
            log.appendFlushOperations(to: &batch, onlyInactive: true)
        }
        guard !batch.isEmpty else { return }
        batch.submit(io: io, failed: Self.noteFailure)
        for log in groupLogs where log.writer.groupRolled {
            log.finishFlush(failure: log.writer.groupFailure, now: now, onlyInactive: true)
        }
    }

    private func endGroup() {
        for log in groupLogs { log.writer.endGroup() }
        groupLogs.removeAll(keepingCapacity: true)
        flushLogs.removeAll(keepingCapacity: true)
        batch.removeAll()
    }

    /// Records the first failed operation of each partition as its group failure.
    private static func noteFailure(_ log: PartitionLog, _ failure: DiskError) {
        if log.writer.groupFailure == nil { log.writer.groupFailure = failure }
    }

    // MARK: One append

    /// Assigns the offsets and file position of append `index` and queues its write.
    private func reserve(_ index: Int, now: Int64) -> Outcome {
        let log = batchItems[index].log!
        let writer = log.writer
        if !writer.inGroup { joinGroup(log) }
        if let refusal = refusal(log) { return Outcome(error: refusal) }
        let configuration = writer.configuration
        let header: RecordBatchHeader
        switch checkBatch(index, log: log, configuration: configuration) {
        case .success(let checked): header = checked
        case .failure(let error): return Outcome(error: error)
        }
        // Idempotent producers: checked here, in append order, so pipelined batches (several in one
        // group, too) see the state their predecessors left.
        let marker: ControlRecordType?
        switch checkProducer(index, header: header, log: log, configuration: configuration, now: now) {
        case .append(let checkedMarker): marker = checkedMarker
        case .answer(let outcome): return outcome
        }
        let baseOffset = writer.nextOffset
        let lastOffset = baseOffset + Int64(header.lastOffsetDelta)
        let byteCount = batchItems[index].batch.readableBytes
        if writer.active.shouldRoll(byteCount: byteCount, lastOffset: lastOffset, now: now, configuration: configuration) {
            do {
                let rolled = try log.roll(now: now)
                writer.noteGroupSegment(rolled.old)
                writer.noteGroupSegment(rolled.new)
                writer.groupRolled = true
            } catch {
                writer.groupFailure = error
                return Outcome(error: .storage(error, "\(log.topicPartition): rolling a new segment"))
            }
        }
        let segment = writer.active
        let (maxTimestamp, logAppendTime) = stampAndQueueWrite(
            index, log: log, segment: segment, header: header, baseOffset: baseOffset, lastOffset: lastOffset,
            configuration: configuration, now: now)
        if header.producerId >= 0, header.isControl {
            log.noteTransactionalMarker(producerId: header.producerId, epoch: header.producerEpoch, type: marker, markerOffset: baseOffset, now: now)
        } else if header.producerId >= 0 {
            writer.producers.update(
                producerId: header.producerId, epoch: header.producerEpoch, firstSequence: header.baseSequence,
                lastSequence: header.lastSequence, firstOffset: baseOffset, lastOffset: lastOffset, maxTimestamp: maxTimestamp,
                now: now, isTransactional: header.isTransactional)
        }
        writer.nextOffset = lastOffset + 1
        if writer.unflushedSegments.last !== segment { writer.unflushedSegments.append(segment) }
        if writer.groupSegments.last !== segment { writer.groupSegments.append(segment) }
        return Outcome(error: nil, baseOffset: baseOffset, lastOffset: lastOffset, logAppendTime: logAppendTime)
    }

    /// A partition's first append of the group: opens its group scratch and takes the current
    /// configuration and closed flag.
    private func joinGroup(_ log: PartitionLog) {
        log.writer.beginGroup()
        groupLogs.append(log)
        log.refreshWriterState()
    }

    /// Why the partition takes no appends now (closed, offline, read-only, an earlier failure of
    /// this group), or nil.
    private func refusal(_ log: PartitionLog) -> CommitLogError? {
        let writer = log.writer
        if writer.isClosed { return CommitLogError(.notFound, "\(log.topicPartition) was deleted or shut down") }
        if writer.isOffline { return CommitLogError(.offline, "\(log.topicPartition) is offline after a disk error") }
        if writer.isReadOnly { return CommitLogError(.readOnly, "\(log.topicPartition) is read-only: the disk is full") }
        if let failure = writer.groupFailure {
            return .storage(failure, "\(log.topicPartition): an earlier append of this group failed")
        }
        return nil
    }

    /// The batch's header, if the append is exactly one record batch v2 within `max.message.bytes`.
    private func checkBatch(_ index: Int, log: PartitionLog, configuration: LogConfiguration) -> Result<RecordBatchHeader, CommitLogError> {
        let byteCount = batchItems[index].batch.readableBytes
        guard let header = RecordBatchHeader(buffer: batchItems[index].batch), header.magic == 2,
            header.totalByteCount == byteCount, header.lastOffsetDelta >= 0
        else {
            return .failure(CommitLogError(.invalidBatch, "\(log.topicPartition): not exactly one record batch v2 (\(byteCount) bytes)"))
        }
        guard byteCount <= configuration.maxMessageBytes else {
            return .failure(CommitLogError(.messageTooLarge, "\(log.topicPartition): batch of \(byteCount) bytes exceeds max.message.bytes \(configuration.maxMessageBytes)"))
        }
        return .success(header)
    }

    private enum ProducerCheck {
        /// Write the batch (with the control record type of a transaction marker).
        case append(ControlRecordType?)
        /// Write nothing; answer with this (a duplicate's original offsets, or a refusal).
        case answer(Outcome)
    }

    /// The producer-state check of a batch with a producer id: a transaction marker's epoch, or an
    /// idempotent batch's epoch and sequence (a retried duplicate is answered with its original offsets).
    private func checkProducer(
        _ index: Int, header: RecordBatchHeader, log: PartitionLog, configuration: LogConfiguration, now: Int64
    ) -> ProducerCheck {
        guard header.producerId >= 0 else { return .append(nil) }
        let writer = log.writer
        if header.isControl {
            // A transaction marker from the coordinator: only the epoch is checked.
            let marker = ControlRecordType(controlBatch: batchItems[index].batch)
            do { try writer.producers.checkMarker(producerId: header.producerId, epoch: header.producerEpoch) } catch {
                return .answer(Outcome(error: CommitLogError(error.kind, "\(log.topicPartition): \(error.message)")))
            }
            return .append(marker)
        }
        let decision: ProducerStateManager.Decision
        do {
            decision = try writer.producers.check(
                producerId: header.producerId, epoch: header.producerEpoch, firstSequence: header.baseSequence,
                lastSequence: header.lastSequence, now: now, expirationMs: configuration.producerIdExpirationMs)
        } catch {
            return .answer(Outcome(error: CommitLogError(error.kind, "\(log.topicPartition): \(error.message)")))
        }
        if case .duplicate(let original) = decision {
            // Kafka answers a retried batch with the original offsets and writes nothing.
            return .answer(Outcome(
                error: nil, baseOffset: original.firstOffset, lastOffset: original.lastOffset,
                logAppendTime: configuration.messageTimestampType == .logAppendTime ? original.maxTimestamp : nil))
        }
        return .append(nil)
    }

    /// Patches the batch header (base offset, partition leader epoch 0, for LogAppendTime topics the
    /// append time), reserves its position in `segment` and queues its write. Returns the batch's
    /// max timestamp and its log append time (nil for CreateTime).
    private func stampAndQueueWrite(
        _ index: Int, log: PartitionLog, segment: LogSegment, header: RecordBatchHeader, baseOffset: Int64, lastOffset: Int64,
        configuration: LogConfiguration, now: Int64
    ) -> (maxTimestamp: Int64, logAppendTime: Int64?) {
        let byteCount = batchItems[index].batch.readableBytes
        let fd = segment.file.fd
        if configuration.messageTimestampType == .logAppendTime {
            RecordBatch.setBaseOffset(baseOffset, in: &batchItems[index].batch, at: batchItems[index].batch.readerIndex)
            RecordBatch.setPartitionLeaderEpoch(0, in: &batchItems[index].batch, at: batchItems[index].batch.readerIndex)
            RecordBatch.stampLogAppendTime(now, in: &batchItems[index].batch, at: batchItems[index].batch.readerIndex)
            let position = segment.reserve(lastOffset: lastOffset, byteCount: byteCount, maxTimestamp: now, now: now)
            queueWrite(fd: fd, at: position, batchItems[index].batch, from: 0, log: log)
            return (now, now)
        }
        let patchedInPlace = batchItems[index].batch.modifyIfUniquelyOwned { buffer -> Bool in
            RecordBatch.setBaseOffset(baseOffset, in: &buffer, at: buffer.readerIndex)
            RecordBatch.setPartitionLeaderEpoch(0, in: &buffer, at: buffer.readerIndex)
            return true
        } ?? false
        let position = segment.reserve(lastOffset: lastOffset, byteCount: byteCount, maxTimestamp: header.maxTimestamp, now: now)
        if patchedInPlace {
            queueWrite(fd: fd, at: position, batchItems[index].batch, from: 0, log: log)
        } else {
            // Shared buffer: copy it into reused staging memory and patch the copy. One write per
            // batch keeps the CRC-less first 16 bytes in the same write as the rest, so a torn
            // write can never leave a valid-looking batch with a stale base offset or epoch.
            let staged = arena.allocate(byteCount, aligned: false)
            batchItems[index].batch.withUnsafeReadableBytes { staged.copyMemory(from: $0) }
            RecordBatch.setBaseOffset(baseOffset, in: staged)
            RecordBatch.setPartitionLeaderEpoch(0, in: staged)
            queueStagedWrite(fd: fd, at: position, UnsafeRawBufferPointer(staged), log: log)
        }
        return (header.maxTimestamp, nil)
    }

    /// Queues a write of staged bytes, extending the previous operation instead when it writes the
    /// same file right up to `position` from memory that ends right where `bytes` starts — consecutive
    /// batches of one partition then go down as one write (fewer syscalls/SQEs, same bytes).
    private func queueStagedWrite(fd: Int32, at position: Int64, _ bytes: UnsafeRawBufferPointer, log: PartitionLog) {
        if let last = batch.operations.indices.last, batch.owners[last] === log,
            case .write(let lastFD, let lastOffset, let lastBytes) = batch.operations[last].kind, lastFD == fd,
            lastOffset + Int64(lastBytes.count) == position, let lastBase = lastBytes.baseAddress,
            lastBase + lastBytes.count == bytes.baseAddress, lastBytes.count + bytes.count <= Self.coalescedWriteBytesMax
        {
            batch.operations[last] = IOOperation(.write(fd: fd, offset: lastOffset, bytes: UnsafeRawBufferPointer(start: lastBase, count: lastBytes.count + bytes.count)))
            return
        }
        batch.append(IOOperation(.write(fd: fd, offset: position, bytes: bytes)), owner: log)
    }

    private func queueWrite(fd: Int32, at position: Int64, _ buffer: ByteBuffer, from skip: Int, log: PartitionLog) {
        // The buffer is kept alive and unmodified in `batchItems` until the submit returns.
        let bytes = buffer.withUnsafeReadableBytes { UnsafeRawBufferPointer(rebasing: $0[skip...]) }
        batch.append(IOOperation(.write(fd: fd, offset: position, bytes: bytes)), owner: log)
    }

    private func queueWriteBehind(_ log: PartitionLog) {
        let threshold = log.writer.configuration.writeBehindBytes
        let segment = log.writer.active
        guard threshold > 0, segment.size - segment.writeBehindPosition >= Int64(threshold) else { return }
        batch.append(
            IOOperation(.syncFileRange(fd: segment.file.fd, offset: segment.writeBehindPosition, length: segment.size - segment.writeBehindPosition)),
            owner: log)
        segment.writeBehindPosition = segment.size
    }

    // MARK: Publication

    /// Publishes a partition's completed appends to readers.
    private func publish(_ log: PartitionLog) {
        let writer = log.writer
        // An offline log keeps what readers saw; its failed reservations are never published.
        guard !writer.isOffline, !writer.isClosed else { return }
        let previous: Int64
        var aborted: [AbortedTransaction]?
        (previous, writer.groupLogStartOffset) = log.state.withLock { s in
            for segment in writer.groupSegments { segment.commitLocked() }
            log.publishPendingSegmentsLocked(&s)
            let previous = s.highWatermark
            s.highWatermark = writer.nextOffset
            assert(log.invariantsHoldLocked(s, previousHighWatermark: previous), "\(log.topicPartition): storage invariant broken at publish")
            aborted = log.publishTransactionsLocked(&s)
            return (previous, s.logStartOffset)
        }
        if let aborted { log.writeTransactionIndex(aborted) }
        writer.groupAdvanced = writer.nextOffset > previous
    }

    private func complete(_ range: Range<Int>, flushing: Bool) {
        for index in range {
            guard let log = batchItems[index].log, log.writer.groupNeedsFlush == flushing,
                let completion = batchItems[index].completion
            else { continue }
            let outcome = outcomes[index - range.lowerBound]
            if let error = outcome.error {
                completion(.failure(error))
            } else if let failure = log.writer.groupFailure {
                completion(.failure(.storage(failure, "\(log.topicPartition): append failed")))
            } else {
                completion(.success(AppendResult(
                    baseOffset: Offset(outcome.baseOffset), lastOffset: Offset(outcome.lastOffset),
                    logAppendTime: outcome.logAppendTime,
                    logStartOffset: Offset(log.writer.groupLogStartOffset))))
            }
        }
    }

    private func notify(flushing: Bool) {
        guard let onAppended else { return }
        for log in groupLogs where log.writer.groupNeedsFlush == flushing && log.writer.groupFailure == nil && log.writer.groupAdvanced {
            onAppended(log.topicPartition, log.writer.nextOffset)
        }
    }
}

/// Hands a value from the appender thread to a waiting caller.
private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
    let done = ConditionLock()
}
