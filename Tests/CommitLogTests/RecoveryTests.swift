@testable import CommitLog
import DiskIO
import DiskIOTesting
import NIOCore
import RecordFormat
import SeededRandom
import TestSupport
import Testing
import Dispatch

@Suite struct RecoveryTests {
    static func configuration() -> LogConfiguration {
        var configuration = testConfiguration()
        configuration.segmentBytes = 2000
        configuration.indexIntervalBytes = 200
        configuration.segmentIndexBytes = 1024
        configuration.retentionMs = -1  // the batches carry 1970s timestamps
        return configuration
    }

    /// Appends `count` batches of 1-3 records; returns their bytes as stored (offset-patched).
    static func fill(_ h: Harness, _ log: PartitionLog, count: Int) async throws -> [[UInt8]] {
        for i in 0..<count {
            _ = try await h.appendOK(makeBatch(recordCount: 1 + i % 3, valueBytes: 40 + i % 7, timestamp: 1_000 + Int64(i) * 10), to: log)
        }
        return try storedBatches(h, log)
    }

    static func storedBatches(_ h: Harness, _ log: PartitionLog) throws -> [[UInt8]] {
        var result: [[UInt8]] = []
        var offset = log.logStartOffset
        while offset < log.highWatermark {
            let bytes = try h.bytes(of: try log.read(from: Offset(offset), maxBytes: 1))
            let header = try #require(try Harness.batches(in: bytes).first)
            result.append(bytes)
            offset = header.nextOffset
        }
        return result
    }

    @Test func cleanRestartTrustsSegmentsAndKeepsIndexes() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: Self.configuration())
        let stored = try await Self.fill(h, log, count: 60)
        let bases = log.segmentBaseOffsets
        let hw = log.highWatermark
        #expect(bases.count > 2)
        let maxTimestamp = try log.offsetOfMaxTimestamp()
        try h.manager.shutdown()
        #expect(h.io.fileExists("/data/.kafka_cleanshutdown"))
        #expect(String(decoding: try #require(try h.io.readWholeFile("/data/recovery-point-offset-checkpoint")), as: UTF8.self) == "0\n1\norders 0 \(hw)\n")
        // The active segment's indexes were trimmed on close, with the final time entry.
        let activeIndex = try #require(h.disk.currentContents(of: segmentPath(h.root, "orders-0", bases.last!, ".index")))
        #expect(activeIndex.count % 8 == 0 && activeIndex.count < 1024)
        let indexesBefore = bases.map { h.disk.currentContents(of: segmentPath(h.root, "orders-0", $0, ".index")) }

        let reloaded = try #require(try h.restart(configuration: Self.configuration()).first)
        #expect(!h.io.fileExists("/data/.kafka_cleanshutdown"))
        #expect(reloaded.highWatermark == hw)
        #expect(reloaded.segmentBaseOffsets == bases)
        #expect(try Self.storedBatches(h, reloaded) == stored)
        #expect(try reloaded.offsetOfMaxTimestamp()! == maxTimestamp!)
        // Inactive indexes were not rewritten.
        for (i, base) in bases.dropLast().enumerated() {
            #expect(h.disk.currentContents(of: segmentPath(h.root, "orders-0", base, ".index")) == indexesBefore[i])
        }
        // Appends continue after the last offset.
        #expect(try await h.appendOK(makeBatch(), to: reloaded).baseOffset.value == hw)
    }

    @Test func uncleanRestartTruncatesATornTail() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: Self.configuration())
        let stored = try await Self.fill(h, log, count: 10)
        h.manager.appender.shutdown()  // a crash: no flush, no checkpoint, no marker
        let path = segmentPath(h.root, "orders-0", 0, ".log")
        let size = try #require(h.disk.currentContents(of: path)).count
        // Tear the last batch: cut 5 bytes off.
        let fd = try h.io.open(path, mode: .readWrite)
        try h.io.truncate(fd, to: Int64(size - 5))
        h.io.close(fd)

        let reloaded = try #require(try h.restart(configuration: Self.configuration()).first)
        let survivors = try Self.storedBatches(h, reloaded)
        #expect(survivors == Array(stored.dropLast()))
        #expect(h.disk.currentContents(of: path)?.count == size - stored.last!.count)
        #expect(try await h.appendOK(makeBatch(), to: reloaded).baseOffset.value == reloaded.highWatermark - 1)
    }

    @Test func corruptByteInTheMiddleTruncatesThereAndDropsLaterSegments() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: Self.configuration())
        let stored = try await Self.fill(h, log, count: 60)
        let bases = log.segmentBaseOffsets
        #expect(bases.count >= 3)
        h.manager.appender.shutdown()
        // Flip a byte inside the 4th batch of the first segment (below no recovery point: none was written).
        let path = segmentPath(h.root, "orders-0", 0, ".log")
        let position = stored[0].count + stored[1].count + stored[2].count + 70
        let fd = try h.io.open(path, mode: .readWrite)
        try h.io.write(fd, bytes: [0xFF ^ h.disk.currentContents(of: path)![position]], at: Int64(position))
        h.io.close(fd)

        let reloaded = try #require(try h.restart(configuration: Self.configuration()).first)
        #expect(try Self.storedBatches(h, reloaded) == Array(stored.prefix(3)))
        #expect(reloaded.segmentBaseOffsets == [0])
        for base in bases.dropFirst() {
            #expect(!h.io.fileExists(segmentPath(h.root, "orders-0", base, ".log")))
            #expect(!h.io.fileExists(segmentPath(h.root, "orders-0", base, ".index")))
        }
        // The rebuilt index of the truncated segment is what appending would have produced.
        let segment = try #require(reloaded.currentSegments.first)
        #expect(segment.committedSize == Int64(stored.prefix(3).map(\.count).reduce(0, +)))
    }

    @Test func uncleanRestartScansOnlyFromTheRecoveryPoint() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: Self.configuration())
        let stored = try await Self.fill(h, log, count: 60)
        let bases = log.segmentBaseOffsets
        h.manager.runPeriodicTasks()  // writes the recovery-point checkpoint (first run)
        await waitUntil { h.io.fileExists("/data/recovery-point-offset-checkpoint") }
        h.manager.appender.shutdown()
        // Segments below the recovery point are trusted (their indexes checked); the active one is rescanned.
        let checkpoint = String(decoding: try #require(try h.io.readWholeFile("/data/recovery-point-offset-checkpoint")), as: UTF8.self)
        #expect(checkpoint == "0\n1\norders 0 \(bases.last!)\n")
        let reloaded = try #require(try h.restart(configuration: Self.configuration()).first)
        #expect(try Self.storedBatches(h, reloaded) == stored)
        #expect(reloaded.segmentBaseOffsets == bases)
    }

    @Test func corruptIndexIsRebuiltOnCleanRestart() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: Self.configuration())
        let stored = try await Self.fill(h, log, count: 40)
        let bases = log.segmentBaseOffsets
        let firstIndex = try #require(h.disk.currentContents(of: segmentPath(h.root, "orders-0", 0, ".index")))
        #expect(firstIndex.count >= 16)
        try h.manager.shutdown()
        // Break the first index (entries out of order) and delete the second's time index.
        let path = segmentPath(h.root, "orders-0", 0, ".index")
        let fd = try h.io.open(path, mode: .readWrite)
        try h.io.write(fd, bytes: [0, 0, 0, 0, 0, 0, 0, 1], at: 8)
        h.io.close(fd)
        try h.io.unlink(segmentPath(h.root, "orders-0", bases[1], ".timeindex"))

        let reloaded = try #require(try h.restart(configuration: Self.configuration()).first)
        #expect(h.disk.currentContents(of: path) == firstIndex)
        #expect(h.io.fileExists(segmentPath(h.root, "orders-0", bases[1], ".timeindex")))
        #expect(try Self.storedBatches(h, reloaded) == stored)
    }

    /// Found by FuzzIndexLoading: an empty `.timeindex` passed the sanity checks, so after a clean
    /// restart the segment's max timestamp was unknown and timestamp lookups skipped the segment.
    @Test func emptyTimeIndexOfATimestampedSegmentIsRebuilt() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: Self.configuration())
        _ = try await Self.fill(h, log, count: 60)
        let bases = log.segmentBaseOffsets
        #expect(bases.count > 2)
        let first = try #require(try log.offset(forTimestamp: 0))
        let max = try #require(try log.offsetOfMaxTimestamp())
        try h.manager.shutdown()
        let path = segmentPath(h.root, "orders-0", 0, ".timeindex")
        let timeIndex = try #require(h.disk.currentContents(of: path))
        #expect(!timeIndex.isEmpty)
        let fd = try h.io.open(path, mode: .readWrite)
        try h.io.truncate(fd, to: 0)
        h.io.close(fd)

        let reloaded = try #require(try h.restart(configuration: Self.configuration()).first)
        #expect(h.disk.currentContents(of: path) == timeIndex)
        let again = try #require(try reloaded.offset(forTimestamp: 0))
        #expect(again.offset == first.offset && again.timestamp == first.timestamp && first.offset == Offset(0))
        let maxAgain = try #require(try reloaded.offsetOfMaxTimestamp())
        #expect(maxAgain.offset == max.offset && maxAgain.timestamp == max.timestamp)
    }

    /// Found by FuzzIndexLoading: the load's sanity check looks at the last offset-index entry only
    /// (as Kafka's does), so a well-formed entry in the middle pointing inside a batch, or at a later
    /// batch, survived a clean restart and made reads fail or skip records. Reads now rescan the
    /// segment from its start when the indexed position does not lead to the wanted offset.
    @Test func wrongMiddleIndexEntriesDoNotBreakReads() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: Self.configuration())
        let stored = try await Self.fill(h, log, count: 60)
        let expected = try Self.storedBatches(h, log)
        #expect(stored == expected)
        #expect(log.segmentBaseOffsets.count > 2, "segment 0 must be a closed segment with its index on disk")
        try h.manager.shutdown()
        let path = segmentPath(h.root, "orders-0", 0, ".index")
        var index = try #require(h.disk.currentContents(of: path))
        #expect(index.count >= 16, "need at least two entries")
        // Entry 0 (not the last, so the load keeps it) now points 5 bytes into its batch.
        func put(_ value: UInt32, at position: Int) {
            index[position] = UInt8(value >> 24); index[position + 1] = UInt8((value >> 16) & 0xFF)
            index[position + 2] = UInt8((value >> 8) & 0xFF); index[position + 3] = UInt8(value & 0xFF)
        }
        let firstPosition = UInt32(index[4]) << 24 | UInt32(index[5]) << 16 | UInt32(index[6]) << 8 | UInt32(index[7])
        put(firstPosition + 5, at: 4)
        let fd = try h.io.open(path, mode: .readWrite)
        try index.withUnsafeBytes { try h.io.write(fd, $0, at: 0) }
        h.io.close(fd)

        let reloaded = try #require(try h.restart(configuration: Self.configuration()).first)
        #expect(h.disk.currentContents(of: path) == index, "the load kept the wrong entry (only the last is checked)")
        // Every offset, not only batch starts (the wrong entry names a batch's last offset).
        for offset in reloaded.logStartOffset..<reloaded.highWatermark {
            let batch = try #require(try Harness.batches(in: h.bytes(of: reloaded.read(from: Offset(offset), maxBytes: 1))).first)
            #expect(batch.baseOffset <= offset && offset <= batch.lastOffset, "read from \(offset) returned \(batch.baseOffset)...\(batch.lastOffset)")
        }
        #expect(try Self.storedBatches(h, reloaded) == expected)
    }

    /// A batch at `baseOffset` with `lastOffsetDelta` and a valid CRC (a record count to match).
    static func batch(baseOffset: Int64, lastOffsetDelta: Int32) -> [UInt8] {
        var buffer = makeBatch()
        var header = try! #require(RecordBatchHeader(buffer: buffer))
        header.baseOffset = baseOffset
        header.lastOffsetDelta = lastOffsetDelta
        header.write(into: &buffer, at: 0)
        RecordBatch.updateCRC(in: &buffer, at: 0)
        return Array(buffer.readableBytesView)
    }

    /// Found by FuzzSegmentRecovery: after a clean shutdown the last segment's tail is trusted; a batch
    /// there reaching past the segment's u32 relative offsets made the indexer trap at the next
    /// shutdown. Now the index is rebuilt by the validating scan, which stops before that batch.
    @Test func trustedBatchPastTheRelativeOffsetRangeIsNotTrusted() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: Self.configuration())
        let stored = try await Self.fill(h, log, count: 3)
        try h.manager.shutdown()
        let path = segmentPath(h.root, "orders-0", 0, ".log")
        let fd = try h.io.open(path, mode: .readWrite)
        let size = try h.io.fileSize(fd)
        try h.io.write(fd, bytes: Self.batch(baseOffset: 1000, lastOffsetDelta: Int32.max), at: size)
        h.io.close(fd)

        let reloaded = try #require(try h.restart(configuration: Self.configuration()).first)
        #expect(try Self.storedBatches(h, reloaded) == stored)
        try h.manager.shutdown()  // trapped here before
        #expect(h.io.fileExists("/data/.kafka_cleanshutdown"))
    }

    /// A batch whose base offset + lastOffsetDelta overflows Int64 ends recovery there instead of trapping.
    @Test func recoveryStopsAtABatchWhoseLastOffsetOverflows() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: Self.configuration())
        let stored = try await Self.fill(h, log, count: 3)
        h.manager.appender.shutdown()  // unclean
        let path = segmentPath(h.root, "orders-0", 0, ".log")
        let fd = try h.io.open(path, mode: .readWrite)
        let size = try h.io.fileSize(fd)
        try h.io.write(fd, bytes: Self.batch(baseOffset: Int64.max - 1, lastOffsetDelta: 5), at: size)
        h.io.close(fd)

        let reloaded = try #require(try h.restart(configuration: Self.configuration()).first)
        #expect(try Self.storedBatches(h, reloaded) == stored)
        #expect(h.disk.currentContents(of: path)?.count == Int(size))
    }

    @Test func preallocatedIndexTailIsNotAnEntry() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: Self.configuration())
        let stored = try await Self.fill(h, log, count: 8)  // one segment, untrimmed index
        h.manager.appender.shutdown()
        let reloaded = try #require(try h.restart(configuration: Self.configuration()).first)
        let segment = try #require(reloaded.currentSegments.last)
        #expect(segment.offsetIndex.entries.allSatisfy { $0.position > 0 })
        #expect(try Self.storedBatches(h, reloaded) == stored)
    }

    @Test func flushMessagesOneMakesEveryAckDurable() async throws {
        let h = try Harness()
        var durable = Self.configuration()
        durable.flushMessages = 1
        let log = try h.createLog("durable", configuration: durable)
        let other = try h.createLog("lazy", configuration: Self.configuration())
        var acked: [[UInt8]] = []
        for i in 0..<25 {
            _ = try await h.appendOK(makeBatch(recordCount: 1 + i % 2), to: log)
            _ = try await h.appendOK(makeBatch(recordCount: 1), to: other)
        }
        acked = try Self.storedBatches(h, log)
        h.manager.appender.shutdown()
        var rng = SplitMix64(seed: 7)
        h.disk.crash(using: &rng, options: .dropAll)
        let logs = try h.restart(configuration: Self.configuration())
        let recovered = try #require(logs.first { $0.topicPartition.topic == "durable" })
        #expect(try Self.storedBatches(h, recovered) == acked)
        // The lazy partition lost what was not flushed (its rolled segments excepted).
        let lazy = try #require(logs.first { $0.topicPartition.topic == "lazy" })
        #expect(lazy.highWatermark < 25)
    }

    @Test func groupCommitSharesOneSync() async throws {
        let h = try Harness()
        var durable = testConfiguration()
        durable.flushMessages = 1
        let logs = try (0..<4).map { try h.createLog("t", Int32($0), configuration: durable) }
        // Hold the appender thread so that 40 appends queue up and form one group.
        let gate = DispatchSemaphore(value: 0)
        h.manager.appender.enqueue { gate.wait() }
        let syncsBefore = h.disk.counters.syncs
        let submitsBefore = h.disk.counters.submits
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask { _ = try await h.appendOK(makeBatch(recordCount: 1), to: logs[i % 4]) }
            }
            await waitUntil { h.manager.appender.queuedCount >= 40 }
            gate.signal()
            try await group.waitForAll()
        }
        // One fdatasync per partition for all 40 batches, in one submit after one write submit.
        #expect(h.disk.counters.syncs - syncsBefore == 4)
        #expect(h.disk.counters.submits - submitsBefore == 2)
        #expect(logs.map(\.highWatermark) == [10, 10, 10, 10])
    }
}
