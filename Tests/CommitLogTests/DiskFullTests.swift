@testable import CommitLog
import DiskIO
import DiskIOTesting
import NIOCore
import RecordFormat
import SeededRandom
import TestSupport
import Testing

/// ENOSPC makes a partition read-only, not offline: acknowledged data stays readable, the torn or
/// unpublished tail is truncated away, a periodic probe brings writes back (PartitionLog+DiskFull).
@Suite struct DiskFullTests {
    /// A disk that tears the write that does not fit, as a real file system's short write does.
    static func tearingDisk() -> SimulatedDisk {
        let disk = SimulatedDisk()
        disk.partialWritesWhenFull = true
        return disk
    }

    /// Waits for the appender to run everything queued before (e.g. a periodic-task run).
    static func drain(_ h: Harness) {
        h.manager.appender.perform {}
    }

    static func logFileSize(_ h: Harness, _ log: PartitionLog, base: Int64 = 0) -> Int? {
        h.disk.currentContents(of: segmentPath(h.root, log.topicPartition.directoryName, base, ".log"))?.count
    }

    @Test func fullDiskKeepsAckedDataReadableAndTruncatesTheTornBatch() async throws {
        let h = try Harness(io: Self.tearingDisk())
        let log = try h.createLog()
        for i in 0..<10 { #expect(try await h.appendOK(makeBatch(recordCount: 3, valueBytes: 50), to: log).baseOffset.value == Int64(i * 3)) }
        let committed = log.sizeInBytes
        // Room for half a batch: the next write is torn.
        h.disk.capacityBytes = h.disk.usedBytes + 60
        guard case .failure(let error) = await h.append(makeBatch(recordCount: 3, valueBytes: 50), to: log) else {
            Issue.record("append succeeded on a full disk")
            return
        }
        #expect(error.kind == .storage)
        #expect(error.diskError?.isNoSpace == true)
        #expect(log.isReadOnly)
        #expect(!log.isOffline)
        #expect(log.storageStatus == .readOnly)
        #expect(log.highWatermark == 30)
        // The torn bytes are gone from the file, not just hidden.
        #expect(Self.logFileSize(h, log) == Int(committed))
        // Every acknowledged batch is readable, nothing else.
        let batches = try h.allBatches(log)
        #expect(batches.count == 10)
        #expect(batches.last?.lastOffset == 29)
        // Appends are refused without touching the disk while read-only.
        guard case .failure(let refused) = await h.append(makeBatch(), to: log) else {
            Issue.record("read-only log appended")
            return
        }
        #expect(refused.kind == .readOnly)
        #expect(Self.logFileSize(h, log) == Int(committed))
    }

    @Test func writesResumeAfterSpaceIsFreedWithoutARestart() async throws {
        let h = try Harness(io: Self.tearingDisk())
        h.manager.diskFullProbeIntervalMs = 2000
        let log = try h.createLog()
        for _ in 0..<5 { try await h.appendOK(makeBatch(recordCount: 2, valueBytes: 40), to: log) }
        h.disk.capacityBytes = h.disk.usedBytes + 30
        guard case .failure = await h.append(makeBatch(recordCount: 2, valueBytes: 40), to: log) else {
            Issue.record("append succeeded on a full disk")
            return
        }
        #expect(log.isReadOnly)

        // Still full: the probe fails and the log stays read-only.
        h.clock.advance(by: 2000)
        h.manager.runPeriodicTasks()
        Self.drain(h)
        #expect(log.isReadOnly)

        // Space freed, but the probe interval has not passed since the last probe: no probe yet.
        h.disk.capacityBytes = nil
        h.clock.advance(by: 1000)
        h.manager.runPeriodicTasks()
        Self.drain(h)
        #expect(log.isReadOnly)

        h.clock.advance(by: 1000)
        h.manager.runPeriodicTasks()
        Self.drain(h)
        #expect(!log.isReadOnly)
        #expect(log.storageStatus == .online)
        // The probe file is gone; offsets continue right after the acknowledged ones.
        #expect(!h.io.fileExists("\(log.directory)/\(PartitionLog.spaceProbeFileName)"))
        #expect(try await h.appendOK(makeBatch(recordCount: 2, valueBytes: 40), to: log).baseOffset.value == 10)
        #expect(try await h.appendOK(makeBatch(recordCount: 2, valueBytes: 40), to: log).baseOffset.value == 12)
        #expect(try h.allBatches(log).map(\.baseOffset) == [0, 2, 4, 6, 8, 10, 12])

        // After an orderly restart every acknowledged batch is there exactly once.
        try h.manager.shutdown()
        #expect(h.io.fileExists("/data/.kafka_cleanshutdown"))
        let logs = try h.restart()
        let reloaded = try #require(logs.first)
        #expect(reloaded.highWatermark == 14)
        #expect(try h.allBatches(reloaded).map(\.baseOffset) == [0, 2, 4, 6, 8, 10, 12])
    }

    @Test func noSpaceDuringRollRollsBackToThePublishedSegment() async throws {
        let h = try Harness(io: Self.tearingDisk())
        var configuration = testConfiguration()
        configuration.segmentBytes = 600
        configuration.segmentIndexBytes = 1024
        let log = try h.createLog(configuration: configuration)
        var acked: [Int64] = []
        var failed = false
        h.disk.capacityBytes = h.disk.usedBytes + 2500  // a couple of rolls' worth of data and index files
        for _ in 0..<80 {
            switch await h.append(makeBatch(recordCount: 1, valueBytes: 100), to: log) {
            case .success(let result): acked.append(result.baseOffset.value)
            case .failure(let error):
                #expect(error.kind == .storage)
                #expect(error.diskError?.isNoSpace == true)
                failed = true
            }
            if failed { break }
        }
        #expect(failed)
        #expect(log.isReadOnly)
        #expect(!log.isOffline)
        #expect(acked == Array(0..<Int64(acked.count)))
        #expect(try h.allBatches(log).map(\.baseOffset) == acked)
        // No segment file past the published ones.
        let published = Set(log.segmentBaseOffsets.map { SegmentFileName.log($0) })
        let logFiles = try h.io.listDirectory(log.directory).filter { $0.hasSuffix(".log") }
        #expect(Set(logFiles) == published)

        // Space back: the log rolls and appends again, offsets contiguous.
        h.disk.capacityBytes = nil
        h.clock.advance(by: h.manager.diskFullProbeIntervalMs)
        h.manager.runPeriodicTasks()
        Self.drain(h)
        #expect(!log.isReadOnly)
        for _ in 0..<10 { acked.append(try await h.appendOK(makeBatch(recordCount: 1, valueBytes: 100), to: log).baseOffset.value) }
        #expect(acked == Array(0..<Int64(acked.count)))
        #expect(try h.allBatches(log).map(\.baseOffset) == acked)
        try h.manager.shutdown()
        let reloaded = try #require(try h.restart(configuration: configuration).first)
        #expect(try h.allBatches(reloaded).map(\.baseOffset) == acked)
    }

    @Test func crashWhileReadOnlyKeepsEveryDurableAckAndNoTornBatch() async throws {
        let disk = Self.tearingDisk()
        let h = try Harness(io: disk)
        var configuration = testConfiguration()
        configuration.flushMessages = 1  // every acknowledgement is durable
        let log = try h.createLog(configuration: configuration)
        for _ in 0..<6 { try await h.appendOK(makeBatch(recordCount: 2, valueBytes: 70), to: log) }
        disk.capacityBytes = disk.usedBytes + 50
        guard case .failure = await h.append(makeBatch(recordCount: 2, valueBytes: 70), to: log) else {
            Issue.record("append succeeded on a full disk")
            return
        }
        #expect(log.isReadOnly)
        // Power loss while read-only; then the disk has space again.
        var rng = SplitMix64(seed: 42)
        disk.crash(using: &rng)
        disk.capacityBytes = nil
        let reloaded = try #require(try h.restart(configuration: configuration).first)
        #expect(reloaded.highWatermark == 12)
        #expect(try h.allBatches(reloaded).map(\.baseOffset) == [0, 2, 4, 6, 8, 10])
        #expect(Self.logFileSize(h, reloaded) == Int(reloaded.sizeInBytes))
        #expect(try await h.appendOK(makeBatch(recordCount: 2, valueBytes: 70), to: reloaded).baseOffset.value == 12)
    }

    @Test func failedIdempotentBatchLeavesNoProducerState() async throws {
        let h = try Harness(io: Self.tearingDisk())
        let log = try h.createLog()
        #expect(try await h.appendOK(idempotentBatch(producerId: 9, sequence: 0, count: 2), to: log).baseOffset.value == 0)
        h.disk.capacityBytes = h.disk.usedBytes + 20
        // The failed batch (sequence 2) must not count as written: its retry is neither a duplicate
        // (answered with offsets that were never published) nor does it break the sequence.
        guard case .failure = await h.append(idempotentBatch(producerId: 9, sequence: 2, count: 2), to: log) else {
            Issue.record("append succeeded on a full disk")
            return
        }
        h.disk.capacityBytes = nil
        h.clock.advance(by: h.manager.diskFullProbeIntervalMs)
        h.manager.runPeriodicTasks()
        Self.drain(h)
        #expect(!log.isReadOnly)
        #expect(try await h.appendOK(idempotentBatch(producerId: 9, sequence: 2, count: 2), to: log).baseOffset.value == 2)
        #expect(try await h.appendOK(idempotentBatch(producerId: 9, sequence: 4, count: 1), to: log).baseOffset.value == 4)
        #expect(try h.allBatches(log).map(\.baseOffset) == [0, 2, 4])
    }

    @Test func eioStaysFatal() async throws {
        let h = try Harness()
        let log = try h.createLog()
        try await h.appendOK(makeBatch(), to: log)
        h.disk.injectFault(.submit, errno: 5, path: "orders-0/", persistent: false)
        guard case .failure = await h.append(makeBatch(), to: log) else {
            Issue.record("append succeeded")
            return
        }
        #expect(log.isOffline)
        #expect(!log.isReadOnly)
        h.clock.advance(by: 10_000)
        h.manager.runPeriodicTasks()
        Self.drain(h)
        #expect(log.isOffline)
        guard case .failure(let error) = await h.append(makeBatch(), to: log) else {
            Issue.record("offline log appended")
            return
        }
        #expect(error.kind == .offline)
    }
}
