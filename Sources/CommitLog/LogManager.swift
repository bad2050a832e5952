public import DiskIO
public import Logging
import Synchronization

/// All partition logs of one data directory: loading and recovery, creation and deletion, periodic
/// flushes/rolls/checkpoints, and the orderly shutdown that makes the next start clean.
///
/// Root files, as Kafka writes them: `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`
/// (text checkpoints) and the `.kafka_cleanshutdown` marker, present only between an orderly shutdown
/// and the next `loadLogs`; plus Petrel's `petrel-producer-ids` (see `ProducerIdAllocator`).
///
/// Call `appender.start()` (after setting `appender.onAppended`) once the logs are loaded.
public final class LogManager: @unchecked Sendable {
    public let dataDirectory: String
    public let appender: LogAppender
    /// Producer ids for InitProducerId, persisted in blocks in `petrel-producer-ids`.
    public let producerIds: ProducerIdAllocator
    let io: any FileIO
    let clock: any LogClock
    let logger: Logger

    /// How often the recovery-point checkpoint is rewritten when it changed
    /// (Kafka: `log.flush.offset.checkpoint.interval.ms`, 60 s).
    public var recoveryPointCheckpointIntervalMs: Int64 = 60_000
    /// How often idle producer ids are expired (Kafka: `producer.id.expiration.check.interval.ms`,
    /// 10 min). Appends treat an expired producer as unknown even before the sweep.
    public var producerIdExpirationCheckIntervalMs: Int64 = 600_000
    /// How often time/size retention runs (Kafka: `log.retention.check.interval.ms`, 300 s).
    public var retentionCheckIntervalMs: Int64 = 300_000
    /// How often a partition made read-only by a full disk probes for space again (Petrel:
    /// `petrel.disk.full.probe.interval.ms`, 2 s; see Partition/PartitionLog+DiskFull.swift).
    public var diskFullProbeIntervalMs: Int64 = 2000
    /// Segment files renamed `.deleted`, unlinked after `file.delete.delay.ms` (Retention/).
    let fileDeleter: SegmentFileDeleter
    /// The compaction thread, once `startCleaner` ran (Compaction/LogCleaner.swift).
    let cleanerSlot = Mutex<LogCleaner?>(nil)
    /// Maintenance thread (the `runPeriodicTasks` caller): when retention last ran.
    let lastRetentionCheckMs = Mutex<Int64>(0)

    private struct PendingDeletion {
        var path: String
        var dueMs: Int64
    }

    private struct Registry {
        var logs: [TopicPartition: PartitionLog] = [:]
        var pendingDeletions: [PendingDeletion] = []
        var isShutDown = false
    }

    private let registry = Mutex(Registry())
    /// A periodic-task run is queued on the appender and has not started yet.
    private let periodicTaskQueued = Atomic<Bool>(false)
    /// Serializes checkpoint writes.
    private let checkpointLock = Mutex(())
    // Appender thread (or the caller while the appender is stopped).
    private var lastRecoveryCheckpoint: [TopicPartition: Int64] = [:]
    private var lastRecoveryCheckpointMs: Int64 = 0
    private var lastProducerExpirationMs: Int64 = 0

    /// Creates the data directory if needed. Does not load anything: call `loadLogs`.
    /// - Throws: `.storage` if the directory cannot be created.
    public init(dataDirectory: String, io: any FileIO, clock: any LogClock, logger: Logger) throws(CommitLogError) {
        self.dataDirectory = dataDirectory
        self.io = io
        self.clock = clock
        self.logger = logger
        self.appender = LogAppender(io: io, clock: clock, logger: logger)
        self.producerIds = ProducerIdAllocator(dataDirectory: dataDirectory, io: io)
        self.fileDeleter = SegmentFileDeleter(io: io, logger: logger)
        do { try io.createDirectory(dataDirectory) } catch {
            throw .storage(error, "creating data directory \(dataDirectory)")
        }
    }

    private var recoveryCheckpointPath: String { SegmentFileName.join(dataDirectory, SegmentFileName.recoveryPointCheckpoint) }
    private var logStartCheckpointPath: String { SegmentFileName.join(dataDirectory, SegmentFileName.logStartOffsetCheckpoint) }
    private var cleanShutdownPath: String { SegmentFileName.join(dataDirectory, SegmentFileName.cleanShutdownMarker) }

    // MARK: Loading

    /// Scans the data directory for `<topic>-<partition>` directories, recovers each (see `LogLoader`),
    /// registers and returns them. Removes stray `-delete` directories, and the clean-shutdown marker
    /// (it is written again by `shutdown`).
    /// - Throws: `.storage` on a disk error reading the root directory or the checkpoints. A partition
    ///   that fails to load is logged and skipped, so the others still come up.
    public func loadLogs(configuration: (TopicPartition) -> LogConfiguration) throws(CommitLogError) -> [PartitionLog] {
        let hadCleanShutdown = io.fileExists(cleanShutdownPath)
        let names: [String]
        let recoveryPoints: [TopicPartition: Int64]
        let logStarts: [TopicPartition: Int64]
        do {
            names = try io.listDirectory(dataDirectory)
            recoveryPoints = try CheckpointFile.read(recoveryCheckpointPath, io: io) ?? [:]
            logStarts = try CheckpointFile.read(logStartCheckpointPath, io: io) ?? [:]
        } catch {
            throw .storage(error, "reading \(dataDirectory)")
        }
        var loaded: [PartitionLog] = []
        for name in names.sorted() {
            let path = SegmentFileName.join(dataDirectory, name)
            guard io.isDirectory(path) else { continue }
            if SegmentFileName.isDeletedDirectory(name) {
                do { try io.removeDirectory(path) } catch {
                    logger.warning("could not remove deleted partition directory", metadata: ["path": "\(path)", "error": "\(error)"])
                }
                continue
            }
            guard let topicPartition = TopicPartition(directoryName: name) else { continue }
            if registry.withLock({ $0.logs[topicPartition] != nil }) { continue }
            let loader = LogLoader(
                topicPartition: topicPartition, directory: path, configuration: configuration(topicPartition), io: io,
                clock: clock, logger: logger)
            do {
                let log = try loader.load(
                    hadCleanShutdown: hadCleanShutdown, recoveryPoint: recoveryPoints[topicPartition],
                    logStartOffset: logStarts[topicPartition])
                register(log)
                loaded.append(log)
                logger.info(
                    "loaded partition log",
                    metadata: [
                        "partition": "\(topicPartition)", "logEndOffset": "\(log.highWatermark)",
                        "logStartOffset": "\(log.logStartOffset)", "segments": "\(log.segmentBaseOffsets.count)",
                        "clean": "\(hadCleanShutdown)",
                    ])
            } catch {
                logger.error("could not load partition log", metadata: ["partition": "\(topicPartition)", "error": "\(error)"])
            }
        }
        lastRecoveryCheckpoint = recoveryPoints
        lastRecoveryCheckpointMs = clock.wallMilliseconds()
        lastProducerExpirationMs = lastRecoveryCheckpointMs
        if hadCleanShutdown {
            do {
                try io.unlink(cleanShutdownPath)
                try io.syncDirectory(dataDirectory)
            } catch {
                throw .storage(error, "removing the clean-shutdown marker")
            }
        }
        return loaded
    }

    private func register(_ log: PartitionLog) {
        log.onLogStartOffsetChanged = { [weak self] _ in self?.checkpointLogStartOffsets() }
        log.fileDeleter = fileDeleter
        registry.withLock { $0.logs[log.topicPartition] = log }
    }

    // MARK: Creating, finding, deleting

    /// Creates an empty partition log (directory and first segment, durably).
    /// - Throws: `.alreadyExists` if it is registered or its directory exists, `.storage` on disk errors.
    public func createLog(_ topicPartition: TopicPartition, configuration: LogConfiguration) throws(CommitLogError) -> PartitionLog {
        let directory = SegmentFileName.join(dataDirectory, topicPartition.directoryName)
        if registry.withLock({ $0.logs[topicPartition] != nil }) || io.fileExists(directory) {
            throw CommitLogError(.alreadyExists, "partition log \(topicPartition) already exists")
        }
        let segment: LogSegment
        do {
            try io.createDirectory(directory)
            segment = try LogSegment.create(directory: directory, baseOffset: 0, configuration: configuration, io: io)
            try io.syncDirectory(directory)
            try io.syncDirectory(dataDirectory)
        } catch {
            throw .storage(error, "creating partition log \(topicPartition)")
        }
        let log = PartitionLog(
            topicPartition: topicPartition, directory: directory, configuration: configuration, segments: [segment],
            logStartOffset: 0, recoveryPoint: 0, io: io, clock: clock, logger: logger)
        let raced = registry.withLock { r -> Bool in
            if r.logs[topicPartition] != nil { return true }
            return false
        }
        if raced { throw CommitLogError(.alreadyExists, "partition log \(topicPartition) already exists") }
        register(log)
        logger.info("created partition log", metadata: ["partition": "\(topicPartition)"])
        return log
    }

    public func log(for topicPartition: TopicPartition) -> PartitionLog? {
        registry.withLock { $0.logs[topicPartition] }
    }

    public var allLogs: [PartitionLog] {
        registry.withLock { Array($0.logs.values) }.sorted {
            ($0.topicPartition.topic, $0.topicPartition.partition) < ($1.topicPartition.topic, $1.topicPartition.partition)
        }
    }

    /// Deletes a partition log as Kafka does: unregisters it (queued and later appends fail with
    /// `.notFound`), renames its directory to `<topic>-<p>.<uuid hex>-delete`, and removes that
    /// `file.delete.delay.ms` later from `runPeriodicTasks` (or at the next load). Fetches in flight keep
    /// their open segment files.
    /// - Throws: `.notFound` if there is no such log, `.storage` if the rename fails.
    public func deleteLog(_ topicPartition: TopicPartition) throws(CommitLogError) {
        guard let log = registry.withLock({ $0.logs.removeValue(forKey: topicPartition) }) else {
            throw CommitLogError(.notFound, "no partition log \(topicPartition)")
        }
        let renamed = SegmentFileName.join(
            dataDirectory, SegmentFileName.deletedDirectory(topicPartition.directoryName, uuidHex: Self.randomHex()))
        let delay = log.configuration.fileDeleteDelayMs
        let failure: DiskError? = appender.perform { [self] in
            // On the appender thread: no group is using the log's descriptors now.
            log.close()
            for segment in log.state.withLock({ $0.segments }) { segment.closeIndexFiles() }
            do throws(DiskError) {
                try io.rename(log.directory, to: renamed)
                try io.syncDirectory(dataDirectory)
            } catch {
                return error
            }
            writeRecoveryCheckpoint(force: true)
            return nil
        }
        if let failure { throw .storage(failure, "renaming \(log.directory) for deletion") }
        let due = clock.wallMilliseconds() + max(0, delay)
        registry.withLock { $0.pendingDeletions.append(PendingDeletion(path: renamed, dueMs: due)) }
        checkpointLogStartOffsets()
        logger.info("deleted partition log", metadata: ["partition": "\(topicPartition)", "renamedTo": "\(renamed)"])
    }

    private static func randomHex() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        return String((0..<32).map { _ in digits[Int(generator.next() % 16)] })
    }

    // MARK: Periodic work

    /// `flush.ms` flushes, `segment.ms` rolls, the recovery-point checkpoint, producer-id expiry, and
    /// removal of deleted directories whose delay passed. Runs on the appender thread (queued behind pending appends);
    /// the broker calls it every 100 ms – 1 s.
    public func runPeriodicTasks() {
        // At most one run waits on the appender: calls while it is busy (a slow fsync) coalesce.
        if !periodicTaskQueued.exchange(true, ordering: .acquiringAndReleasing) {
            let queued = appender.enqueue { [self] in
                periodicTaskQueued.store(false, ordering: .releasing)
                performPeriodicTasks()
            }
            if !queued {
                periodicTaskQueued.store(false, ordering: .releasing)
                if !registry.withLock({ $0.isShutDown }) { performPeriodicTasks() }
            }
        }
        // Off the appender thread: retention renames files, which must not delay appends.
        runRetentionIfDue()
    }

    private func performPeriodicTasks() {
        let now = clock.wallMilliseconds()
        let logs = allLogs
        var operations: [IOOperation] = []
        var owners: [PartitionLog] = []
        var flushed: [PartitionLog] = []
        var rolled: [PartitionLog] = []
        for log in logs {
            guard !log.writerOffline, !log.writerClosed else { continue }
            log.writerConfiguration = log.configuration
            if log.writerReadOnly, now - log.lastSpaceProbeMs >= diskFullProbeIntervalMs { log.probeSpace(now: now) }
            if !log.writerReadOnly, log.active.isDueForTimeRoll(now: now, configuration: log.writerConfiguration) {
                do {
                    try log.roll(now: now)
                    try log.commitOutOfGroup()
                    rolled.append(log)
                } catch {
                    log.writeFailed(error, now: now)
                    if log.writerOffline { continue }
                }
            }
            if log.flushDue(now: now) {
                log.appendFlushOperations(to: &operations, owners: &owners, onlyInactive: false)
                flushed.append(log)
            } else if rolled.last === log {
                log.appendFlushOperations(to: &operations, owners: &owners, onlyInactive: true)
            }
        }
        if !operations.isEmpty {
            io.submit(&operations)
            var failures: [ObjectIdentifier: DiskError] = [:]
            for (index, operation) in operations.enumerated() {
                switch operation.result {
                case .success: continue
                case .failure(let error): failures[ObjectIdentifier(owners[index])] = error
                case nil: failures[ObjectIdentifier(owners[index])] = DiskError(.sync, path: owners[index].directory, errno: 5)
                }
            }
            for log in flushed + rolled.filter({ log in !flushed.contains { $0 === log } }) {
                if let error = failures[ObjectIdentifier(log)] {
                    log.goOffline(error)
                } else {
                    log.flushCompleted(now: now, onlyInactive: !flushed.contains { $0 === log })
                }
            }
        }
        if now - lastRecoveryCheckpointMs >= recoveryPointCheckpointIntervalMs { writeRecoveryCheckpoint(force: false) }
        if now - lastProducerExpirationMs >= producerIdExpirationCheckIntervalMs {
            lastProducerExpirationMs = now
            for log in logs where !log.writerOffline && !log.writerClosed { log.expireProducers(now: now) }
        }

        let due = registry.withLock { r -> [PendingDeletion] in
            let due = r.pendingDeletions.filter { $0.dueMs <= now }
            r.pendingDeletions.removeAll { $0.dueMs <= now }
            return due
        }
        for deletion in due {
            do { try io.removeDirectory(deletion.path) } catch {
                logger.warning("could not remove deleted partition directory", metadata: ["path": "\(deletion.path)", "error": "\(error)"])
            }
        }
    }

    /// Writes `recovery-point-offset-checkpoint` if it changed (appender thread, or stopped appender).
    @discardableResult
    private func writeRecoveryCheckpoint(force: Bool) -> DiskError? {
        var points: [TopicPartition: Int64] = [:]
        for log in allLogs { points[log.topicPartition] = log.recoveryPoint }
        lastRecoveryCheckpointMs = clock.wallMilliseconds()
        guard force || points != lastRecoveryCheckpoint else { return nil }
        do {
            try checkpointLock.withLock { _ throws(DiskError) in try CheckpointFile.write(points, to: recoveryCheckpointPath, io: io) }
            lastRecoveryCheckpoint = points
            return nil
        } catch {
            logger.error("could not write the recovery-point checkpoint", metadata: ["error": "\(error)"])
            return error
        }
    }

    /// Writes `log-start-offset-checkpoint` (after DeleteRecords, deletions, shutdown).
    @discardableResult
    func checkpointLogStartOffsets() -> DiskError? {
        var starts: [TopicPartition: Int64] = [:]
        for log in allLogs { starts[log.topicPartition] = log.logStartOffset }
        do {
            try checkpointLock.withLock { _ throws(DiskError) in try CheckpointFile.write(starts, to: logStartCheckpointPath, io: io) }
            return nil
        } catch {
            logger.error("could not write the log-start-offset checkpoint", metadata: ["error": "\(error)"])
            return error
        }
    }

    // MARK: Shutdown

    /// Stops the appender (finishing queued appends), flushes every log, writes each active segment's
    /// final time-index entry and trims its indexes, snapshots its producer state at the log end,
    /// writes both checkpoints, then the clean-shutdown
    /// marker — only if all of that succeeded and no partition is offline, so the next start trusts
    /// the segments only when it may.
    ///
    /// Crash points: before the marker is written the next start is unclean and recovers from the
    /// recovery point; the marker is written last, atomically.
    /// - Throws: `.storage` with the first disk error (the marker is then not written).
    public func shutdown() throws(CommitLogError) {
        stopCleaner()
        appender.shutdown()
        let alreadyDown = registry.withLock { r -> Bool in
            defer { r.isShutDown = true }
            return r.isShutDown
        }
        guard !alreadyDown else { return }
        let now = clock.wallMilliseconds()
        var firstError: CommitLogError?
        var clean = true
        for log in allLogs {
            if log.writerOffline {
                clean = false
                log.close()
                continue
            }
            do {
                try log.flushNow(now: now)
                let active = log.active
                try active.deactivate()
                log.groupSegments = [active]
                try log.commitOutOfGroup()
                for fd in [active.offsetIndexFD, active.timeIndexFD] {
                    if let fd { try io.fdatasync(fd) }
                }
                active.closeIndexFiles()
                // At the log end, so the next load replays nothing.
                log.writeProducerSnapshotLogging()
            } catch {
                log.goOffline(error)
                clean = false
                if firstError == nil { firstError = .storage(error, "shutting down \(log.topicPartition)") }
            }
            log.close()
        }
        if let error = writeRecoveryCheckpoint(force: true) {
            clean = false
            if firstError == nil { firstError = .storage(error, "writing the recovery-point checkpoint") }
        }
        if let error = checkpointLogStartOffsets() {
            clean = false
            if firstError == nil { firstError = .storage(error, "writing the log-start-offset checkpoint") }
        }
        if clean {
            do {
                try io.writeFileAtomically(cleanShutdownPath, Array(#"{"version":0,"brokerEpoch":-1}"#.utf8))
            } catch {
                if firstError == nil { firstError = .storage(error, "writing the clean-shutdown marker") }
            }
        }
        logger.info("log manager shut down", metadata: ["clean": "\(clean && firstError == nil)"])
        if let firstError { throw firstError }
    }
}
