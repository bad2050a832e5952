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
    /// The store's random choices (seeded by `randomSeed`).
    let random: StoreRandom
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
    /// The descriptor budget (`petrel.log.open.files.max`): every partition's active `.log` plus an LRU of
    /// inactive ones (Segment/SegmentFileCache.swift).
    public let files: SegmentFileCache

    /// Most partitions this manager accepts within its descriptor budget: each holds one descriptor
    /// for good (its active segment), and 5% of the budget (at least 16) is kept for reading
    /// inactive segments and rolling. `Int.max` when unbounded.
    public var partitionsMax: Int {
        let capacity = files.capacity
        guard capacity != .max else { return .max }
        return max(0, capacity - max(16, capacity / 20))
    }

    /// Partition logs registered now.
    public var logCount: Int { registry.withLock { $0.logs.count } }

    /// Throws `.openFilesBudgetExceeded` unless `count` more partitions fit in the descriptor budget.
    public func checkPartitionBudget(adding count: Int) throws(CommitLogError) {
        let current = logCount
        let limit = partitionsMax
        guard current + count > limit else { return }
        throw CommitLogError(
            .openFilesBudgetExceeded,
            "creating \(count) partition(s) would make \(current + count), more than the \(limit) that fit in the open-file budget "
                + "petrel.log.open.files.max=\(files.capacity) (each partition keeps its active segment open)")
    }
    /// The compaction thread, once `startCleaner` ran (Compaction/LogCleaner.swift).
    let cleanerSlot = Mutex<LogCleaner?>(nil)
    /// Appender and retention counters (metrics).
    public var statistics: StorageStatistics { appender.statistics }
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
    private struct CheckpointState {
        /// What `recovery-point-offset-checkpoint` holds now, and when it was last considered.
        var recoveryPoints: [TopicPartition: Int64] = [:]
        var writtenMs: Int64 = 0
    }

    /// Serializes checkpoint writes (any thread but the appender's).
    private let checkpointState = Mutex(CheckpointState())
    // Appender thread (or the caller while the appender is stopped).
    private var lastProducerExpirationMs: Int64 = 0

    /// Creates the data directory if needed. Does not load anything: call `loadLogs`.
    /// - Throws: `.storage` if the directory cannot be created.
    /// - Parameter openFilesMax: the descriptor budget for segment files (`petrel.log.open.files.max`).
    public init(
        dataDirectory: String, io: any FileIO, clock: any LogClock, logger: Logger, openFilesMax: Int = .max,
        randomSeed: UInt64? = nil
    ) throws(CommitLogError) {
        self.dataDirectory = dataDirectory
        self.random = StoreRandom(seed: randomSeed)
        self.io = io
        self.clock = clock
        self.logger = logger
        self.appender = LogAppender(io: io, clock: clock, logger: logger)
        self.producerIds = ProducerIdAllocator(dataDirectory: dataDirectory, io: io)
        self.fileDeleter = SegmentFileDeleter(io: io, logger: logger)
        self.files = SegmentFileCache(io: io, capacity: openFilesMax)
        do throws(DiskError) {
            let existed = io.isDirectory(dataDirectory)
            try io.createDirectory(dataDirectory)
            // A new data directory (and any parent made with it) is durable only once its parent is
            // synced; a crash before that would lose it with everything written below.
            if !existed { try Self.syncAncestors(of: dataDirectory, io: io) }
        } catch {
            throw .storage(error, "creating data directory \(dataDirectory)")
        }
    }

    /// Syncs every directory from `path`'s parent up to the root (relative paths: up to `.`).
    private static func syncAncestors(of path: String, io: any FileIO) throws(DiskError) {
        var current = path
        while let slash = current.lastIndex(of: "/") {
            current = slash == current.startIndex ? "/" : String(current[..<slash])
            try io.syncDirectory(current)
            if current == "/" { return }
        }
        try io.syncDirectory(".")
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
                clock: clock, logger: logger, files: files, random: random)
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
        let loadedMs = clock.wallMilliseconds()
        checkpointState.withLock { $0 = CheckpointState(recoveryPoints: recoveryPoints, writtenMs: loadedMs) }
        lastProducerExpirationMs = loadedMs
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
        prepare(log)
        registry.withLock { $0.logs[log.topicPartition] = log }
    }

    /// Wires a log to this manager (checkpoints, deferred file deletion).
    private func prepare(_ log: PartitionLog) {
        log.onLogStartOffsetChanged = { [weak self] _ in self?.checkpointLogStartOffsets() }
        log.fileDeleter = fileDeleter
        #if DEBUG
        log.writer.ownerCheck = { [weak appender] in appender?.isWriterContext ?? true }
        #endif
    }

    // MARK: Creating, finding, deleting

    /// Creates an empty partition log (directory and first segment, durably).
    /// - Throws: `.alreadyExists` if it is registered or its directory exists, `.storage` on disk errors.
    public func createLog(_ topicPartition: TopicPartition, configuration: LogConfiguration) throws(CommitLogError) -> PartitionLog {
        try createLogs([topicPartition], configuration: configuration)[0]
    }

    /// Creates empty partition logs, all or none: every directory and first segment is created,
    /// then the directory entries are made durable in one batch (`FileIO.syncDirectories`, then the
    /// data directory once), and only then are the logs registered. On any failure the directories
    /// made so far are removed and nothing is registered.
    ///
    /// Runs on the caller's thread (the broker's admin thread): appends, fetches and other clients
    /// never wait for it — the registry lock is taken only to check and to register.
    /// - Throws: `.alreadyExists` if one is registered or its directory exists, `.storage` on disk errors.
    public func createLogs(_ partitions: [TopicPartition], configuration: LogConfiguration) throws(CommitLogError) -> [PartitionLog] {
        let directories = partitions.map { SegmentFileName.join(dataDirectory, $0.directoryName) }
        for (topicPartition, directory) in zip(partitions, directories) {
            if registry.withLock({ $0.logs[topicPartition] != nil }) || io.fileExists(directory) {
                throw CommitLogError(.alreadyExists, "partition log \(topicPartition) already exists")
            }
        }
        // Refused up front, before anything exists on disk.
        try checkPartitionBudget(adding: partitions.count)
        var logs: [PartitionLog] = []
        logs.reserveCapacity(partitions.count)
        var made: [String] = []
        func rollBack() {
            for log in logs { log.close() }
            logs.removeAll()
            for directory in made { try? io.removeDirectory(directory) }
            try? io.syncDirectory(dataDirectory)
        }
        do throws(DiskError) {
            for (topicPartition, directory) in zip(partitions, directories) {
                try io.createDirectory(directory)
                made.append(directory)
                let segment = try LogSegment.create(directory: directory, baseOffset: 0, configuration: configuration, io: io, random: random)
                logs.append(PartitionLog(
                    topicPartition: topicPartition, directory: directory, configuration: configuration, segments: [segment],
                    logStartOffset: 0, recoveryPoint: 0, io: io, clock: clock, logger: logger, files: files, random: random))
            }
            try io.syncDirectories(directories)
            try io.syncDirectory(dataDirectory)
        } catch {
            rollBack()
            throw .storage(error, "creating \(partitions.count) partition log(s)")
        }
        let raced = registry.withLock { r -> Bool in
            if partitions.contains(where: { r.logs[$0] != nil }) { return true }
            for log in logs { r.logs[log.topicPartition] = log }
            return false
        }
        if raced {
            rollBack()
            throw CommitLogError(.alreadyExists, "a partition log was created concurrently")
        }
        for log in logs { prepare(log) }
        if partitions.count == 1 {
            logger.info("created partition log", metadata: ["partition": "\(partitions[0])"])
        } else {
            logger.info("created partition logs", metadata: ["count": "\(partitions.count)", "first": "\(partitions.first.map { "\($0)" } ?? "")"])
        }
        return logs
    }

    public func log(for topicPartition: TopicPartition) -> PartitionLog? {
        registry.withLock { $0.logs[topicPartition] }
    }

    public var allLogs: [PartitionLog] {
        registry.withLock { Array($0.logs.values) }.sorted {
            ($0.topicPartition.topic, $0.topicPartition.partition) < ($1.topicPartition.topic, $1.topicPartition.partition)
        }
    }

    /// Deletes a partition log as Kafka does (see `deleteLogs`).
    /// - Throws: `.notFound` if there is no such log, `.storage` if the rename fails.
    public func deleteLog(_ topicPartition: TopicPartition) throws(CommitLogError) {
        try deleteLogs([topicPartition])
    }

    /// Deletes partition logs as Kafka does: unregisters them and marks them closed (queued and later
    /// appends fail with `.notFound`), renames each directory to `<topic>-<p>.<uuid hex>-delete`,
    /// syncs the data directory once, rewrites both checkpoints once, and removes the renamed
    /// directories `file.delete.delay.ms` later from `runPeriodicTasks` (or at the next load).
    ///
    /// Runs entirely on the caller's thread (the broker's admin thread), never on the appender: an
    /// append group still writing to a log finishes into the renamed files, and the descriptors close
    /// when the last user (that group, a fetch still sending) lets go of the segment.
    /// - Throws: `.notFound` (and deletes nothing) if one of them is not registered; `.storage` with
    ///   the first rename failure (the other logs are still deleted).
    public func deleteLogs(_ partitions: [TopicPartition]) throws(CommitLogError) {
        let logs = try registry.withLock { (r) throws(CommitLogError) -> [PartitionLog] in
            if let missing = partitions.first(where: { r.logs[$0] == nil }) {
                throw CommitLogError(.notFound, "no partition log \(missing)")
            }
            return partitions.map { r.logs.removeValue(forKey: $0)! }
        }
        guard !logs.isEmpty else { return }
        var failure: (path: String, error: DiskError)?
        var renamedPaths: [(path: String, dueMs: Int64)] = []
        let now = clock.wallMilliseconds()
        for log in logs {
            log.markClosed()
            // The cache lets go of the inactive segments; every descriptor closes when its last
            // user (an append group finishing, a fetch still sending) releases the segment.
            files.forget(log.currentSegments)
            let renamed = SegmentFileName.join(
                dataDirectory, SegmentFileName.deletedDirectory(log.topicPartition.directoryName, uuidHex: random.hex(32)))
            do {
                try io.rename(log.directory, to: renamed)
                renamedPaths.append((renamed, now + max(0, log.configuration.fileDeleteDelayMs)))
            } catch {
                if failure == nil { failure = (log.directory, error) }
            }
        }
        do { try io.syncDirectory(dataDirectory) } catch {
            if failure == nil { failure = (dataDirectory, error) }
        }
        registry.withLock { r in
            for (path, due) in renamedPaths { r.pendingDeletions.append(PendingDeletion(path: path, dueMs: due)) }
        }
        writeRecoveryCheckpoint(force: true)
        checkpointLogStartOffsets()
        logger.info("deleted partition logs", metadata: ["count": "\(logs.count)", "first": "\(logs[0].topicPartition)"])
        if let failure { throw .storage(failure.error, "renaming \(failure.path) for deletion") }
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
        // Off the appender thread: checkpoints, directory removal and retention touch many files,
        // which must not delay appends.
        let now = clock.wallMilliseconds()
        let checkpointDue = checkpointState.withLock { now - $0.writtenMs >= recoveryPointCheckpointIntervalMs }
        if checkpointDue { writeRecoveryCheckpoint(force: false) }
        removeDeletedDirectories(now: now)
        runRetentionIfDue()
    }

    /// Removes renamed `-delete` directories whose `file.delete.delay.ms` passed (maintenance thread).
    private func removeDeletedDirectories(now: Int64) {
        let due = registry.withLock { r -> [PendingDeletion] in
            guard r.pendingDeletions.contains(where: { $0.dueMs <= now }) else { return [] }
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

    private func performPeriodicTasks() {
        let now = clock.wallMilliseconds()
        // Unsorted: sorting thousands of partitions on every tick would stall appends.
        let logs = registry.withLock { Array($0.logs.values) }
        var batch = PartitionIOBatch()
        var flushed: [PartitionLog] = []
        var rolled: [PartitionLog] = []
        for log in logs {
            guard !log.writer.isOffline, !log.writer.isClosed else { continue }
            log.refreshWriterConfiguration()
            if log.writer.isReadOnly, now - log.writer.lastSpaceProbeMs >= diskFullProbeIntervalMs { log.probeSpace(now: now) }
            if !log.writer.isReadOnly, log.writer.active.isDueForTimeRoll(now: now, configuration: log.writer.configuration) {
                do {
                    let segments = try log.roll(now: now)
                    log.commitOutOfGroup([segments.old, segments.new])
                    rolled.append(log)
                } catch {
                    log.writeFailed(error, now: now)
                    if log.writer.isOffline { continue }
                }
            }
            if log.flushDue(now: now) {
                log.appendFlushOperations(to: &batch, onlyInactive: false)
                flushed.append(log)
            } else if rolled.last === log {
                log.appendFlushOperations(to: &batch, onlyInactive: true)
            }
        }
        if !batch.isEmpty {
            var failures: [ObjectIdentifier: DiskError] = [:]
            batch.submit(io: io) { log, error in
                if failures[ObjectIdentifier(log)] == nil { failures[ObjectIdentifier(log)] = error }
            }
            for log in flushed + rolled.filter({ log in !flushed.contains { $0 === log } }) {
                log.finishFlush(failure: failures[ObjectIdentifier(log)], now: now, onlyInactive: !flushed.contains { $0 === log })
            }
        }
        if now - lastProducerExpirationMs >= producerIdExpirationCheckIntervalMs {
            lastProducerExpirationMs = now
            for log in logs where !log.writer.isOffline && !log.writer.isClosed { log.expireProducers(now: now) }
        }
    }

    /// Writes `recovery-point-offset-checkpoint` if it changed. Any thread (recovery points are read
    /// atomically); never called on the appender, which it would stall for the write and fsync.
    @discardableResult
    private func writeRecoveryCheckpoint(force: Bool) -> DiskError? {
        do {
            try checkpointState.withLock { (c) throws(DiskError) in
                var points: [TopicPartition: Int64] = [:]
                for log in registry.withLock({ Array($0.logs.values) }) { points[log.topicPartition] = log.writer.recoveryPoint }
                c.writtenMs = clock.wallMilliseconds()
                guard force || points != c.recoveryPoints else { return }
                try CheckpointFile.write(points, to: recoveryCheckpointPath, io: io)
                c.recoveryPoints = points
            }
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
            try checkpointState.withLock { _ throws(DiskError) in try CheckpointFile.write(starts, to: logStartCheckpointPath, io: io) }
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
            if log.writer.isOffline {
                clean = false
                log.close()
                continue
            }
            do {
                try log.flushNow(now: now)
                let active = log.writer.active
                try active.deactivate()
                log.commitOutOfGroup([active])
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
