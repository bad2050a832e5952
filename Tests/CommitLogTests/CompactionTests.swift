@testable import CommitLog
import DiskIO
import DiskIOTesting
import NIOCore
import RecordCompression
import RecordFormat
import TestSupport
import Testing

@Suite struct CompactionTests {
    /// Appends `workload` and returns every record as stored (offsets assigned).
    private func fill(_ h: Harness, _ log: PartitionLog, _ workload: [[(String?, String?)]], codec: CompressionCodec = .none) async throws -> [StoredRecord] {
        for pairs in workload {
            try await h.appendOK(try keyedBatch(pairs, timestamp: h.clock.wallMilliseconds(), codec: codec), to: log)
        }
        return try h.storedRecords(log)
    }

    private func activeBase(_ log: PartitionLog) -> Int64 { log.segmentBaseOffsets.last! }

    private func checkOrder(_ records: [StoredRecord]) {
        for (a, b) in zip(records, records.dropFirst()) where a.offset >= b.offset {
            Issue.record("offsets not increasing: \(a) then \(b)")
        }
    }

    @Test func keyMapHasAFixedBudgetAndRefusesNewKeysWhenFull() {
        var map = KeyOffsetMap(memoryBytes: 24 * 10)
        #expect(map.slotCount == 10 && map.entriesMax == 9)
        for index in 0..<9 {
            let put = map.put(ByteBuffer(string: "k\(index)"), offset: Int64(index))
            #expect(put)
        }
        let putNew = map.put(ByteBuffer(string: "new"), offset: 100)
        #expect(!putNew)
        let putExisting = map.put(ByteBuffer(string: "k3"), offset: 50)  // existing keys still update
        #expect(putExisting)
        #expect(map.get(ByteBuffer(string: "k3")) == 50)
        #expect(map.get(ByteBuffer(string: "new")) == nil)
        map.clear()
        #expect(map.count == 0 && map.get(ByteBuffer(string: "k3")) == nil)
    }

    @Test func plannerUsesTheDirtyRatioLagsAndNeverTheActiveSegment() {
        var configuration = LogConfiguration()
        configuration.cleanupPolicy = .compact
        let now: Int64 = 1_000_000
        let segments = [
            CompactionPlanner.Segment(baseOffset: 0, endOffset: 10, sizeBytes: 100, largestTimestamp: now - 5000, firstBatchTimestamp: now - 9000),
            CompactionPlanner.Segment(baseOffset: 10, endOffset: 20, sizeBytes: 100, largestTimestamp: now - 4000, firstBatchTimestamp: now - 4500),
            CompactionPlanner.Segment(baseOffset: 20, endOffset: 30, sizeBytes: 100, largestTimestamp: now - 100, firstBatchTimestamp: now - 200),
            CompactionPlanner.Segment(baseOffset: 30, endOffset: 35, sizeBytes: 50, largestTimestamp: now, firstBatchTimestamp: now),
        ]
        var plan = CompactionPlanner.plan(segments: segments, logStartOffset: 0, checkpoint: 10, configuration: configuration, now: now, pendingDeleteHorizonMs: nil)
        #expect(plan.firstDirtyOffset == 10 && plan.firstUncleanableOffset == 30)
        #expect(plan.cleanBytes == 100 && plan.dirtyBytes == 200 && plan.isEligible)
        configuration.minCleanableDirtyRatio = 0.7
        plan = CompactionPlanner.plan(segments: segments, logStartOffset: 0, checkpoint: 10, configuration: configuration, now: now, pendingDeleteHorizonMs: nil)
        #expect(!plan.isEligible)
        configuration.maxCompactionLagMs = 4000  // the first dirty segment's first batch is 4.5 s old
        plan = CompactionPlanner.plan(segments: segments, logStartOffset: 0, checkpoint: 10, configuration: configuration, now: now, pendingDeleteHorizonMs: nil)
        #expect(plan.lagExceeded && plan.isEligible)
        configuration.maxCompactionLagMs = .max
        configuration.minCleanableDirtyRatio = 0
        configuration.minCompactionLagMs = 1000  // segment [20,30) is too young
        plan = CompactionPlanner.plan(segments: segments, logStartOffset: 0, checkpoint: 10, configuration: configuration, now: now, pendingDeleteHorizonMs: nil)
        #expect(plan.firstUncleanableOffset == 20 && plan.dirtyBytes == 100)
        // A checkpoint past the log end resets to the log start; nothing dirty, a passed horizon still counts.
        configuration.minCompactionLagMs = 0
        plan = CompactionPlanner.plan(segments: segments, logStartOffset: 0, checkpoint: 30, configuration: configuration, now: now, pendingDeleteHorizonMs: now - 1)
        #expect(plan.dirtyBytes == 0 && plan.horizonPassed && plan.isEligible)
        configuration.cleanupPolicy = .delete
        plan = CompactionPlanner.plan(segments: segments, logStartOffset: 0, checkpoint: nil, configuration: configuration, now: now, pendingDeleteHorizonMs: nil)
        #expect(!plan.isEligible)
    }

    /// The seeded random workload, cleaned with a map that holds every key and with one far smaller
    /// than the key set (several rounds): both end with the last record per key below the active
    /// segment, offsets and order kept; tombstones go once their horizon passed.
    @Test(arguments: [1 << 20, 24 * 40])
    func randomKeyedWorkloadMatchesTheReference(mapBytes: Int) async throws {
        let seed = TestSeed().value
        let h = try Harness()
        let log = try h.createLog(configuration: compactedConfiguration())
        let all = try await fill(h, log, randomWorkload(seed: seed, batches: 300, keys: 120))
        let cleaner = try #require(h.manager.startCleaner(configurationWith(mapBytes: mapBytes), startThread: false))
        let passes = cleaner.cleanUntilIdle()
        #expect(!passes.isEmpty, "seed \(seed)")
        if mapBytes < 120 * 24 { #expect(passes.count > 1, "seed \(seed): a small map needs several rounds") }
        let cleanedUpTo = try #require(cleaner.firstDirtyOffset(log.topicPartition))
        #expect(cleanedUpTo == activeBase(log), "seed \(seed)")
        var stored = try h.storedRecords(log)
        #expect(stored == expectedAfterCompaction(all, cleanedUpTo: cleanedUpTo, tombstonesExpired: false), "seed \(seed) (PETREL_TEST_SEED=\(seed))")
        checkOrder(stored)
        #expect(log.highWatermark == all.last!.offset + 1)

        // Tombstones carry a horizon (bit 6, base timestamp = now + delete.retention.ms) ...
        let withTombstones = try h.storedBatches(log).filter { $0.header.baseOffset < cleanedUpTo && $0.records.contains { $0.value == nil } }
        #expect(withTombstones.allSatisfy { $0.header.hasDeleteHorizon && $0.header.baseTimestamp == h.clock.wallMilliseconds() + 86_400_000 })
        // ... and are gone after it, without new dirty data.
        h.clock.advance(by: 86_400_001)
        #expect(cleaner.cleanOnce() != nil)
        stored = try h.storedRecords(log)
        #expect(stored == expectedAfterCompaction(all, cleanedUpTo: cleanedUpTo, tombstonesExpired: true), "seed \(seed) (PETREL_TEST_SEED=\(seed))")
        #expect(!stored.contains { $0.offset < cleanedUpTo && $0.value == nil })
        checkOrder(stored)

        // Still valid after an unclean restart that rescans every segment (offsets stay contiguous).
        h.manager.appender.shutdown()
        try h.io.writeFileAtomically("/data/recovery-point-offset-checkpoint", Array("0\n0\n".utf8))
        let reloaded = try #require(try h.restart(configuration: compactedConfiguration()).first)
        #expect(try h.storedRecords(reloaded) == stored, "seed \(seed)")
    }

    private func configurationWith(mapBytes: Int) -> CleanerConfiguration {
        var configuration = CleanerConfiguration()
        configuration.dedupeBufferBytes = mapBytes
        configuration.backoffMs = 10
        return configuration
    }

    @Test(arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
    func compressedBatchesAreRecompressedWithTheirCodec(codec: CompressionCodec) async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: compactedConfiguration(segmentBytes: 1024))
        var workload: [[(String?, String?)]] = []
        for round in 0..<30 { workload.append((0..<5).map { ("k\($0)", "v\(round)-\($0)-" + String(repeating: "z", count: 30)) }) }
        let all = try await fill(h, log, workload, codec: codec)
        let cleaner = try #require(h.manager.startCleaner(configurationWith(mapBytes: 1 << 16), startThread: false))
        cleaner.cleanUntilIdle()
        let cleanedUpTo = try #require(cleaner.firstDirtyOffset(log.topicPartition))
        let batches = try h.storedBatches(log)
        // Every batch with records keeps the codec (empty headers sealing a segment are uncompressed).
        #expect(batches.filter { $0.header.recordsCount > 0 }.allSatisfy { $0.header.compression == codec })
        #expect(batches.filter { $0.header.baseOffset < cleanedUpTo }.contains { Int($0.header.recordsCount) < Int($0.header.lastOffsetDelta) + 1 })
        #expect(batches.flatMap(\.records) == expectedAfterCompaction(all, cleanedUpTo: cleanedUpTo, tombstonesExpired: false))
    }

    @Test func keylessRecordsAreDroppedAndControlOfRangesIsKept() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: compactedConfiguration(segmentBytes: 400))
        var workload: [[(String?, String?)]] = [[(nil, "keyless"), ("a", "1")]]
        for round in 0..<12 { workload.append([("a", "a\(round)"), ("b", "b\(round)")]) }
        let all = try await fill(h, log, workload)
        let cleaner = try #require(h.manager.startCleaner(configurationWith(mapBytes: 1 << 16), startThread: false))
        cleaner.cleanUntilIdle()
        let cleanedUpTo = try #require(cleaner.firstDirtyOffset(log.topicPartition))
        let stored = try h.storedRecords(log)
        #expect(!stored.contains { $0.key == nil && $0.offset < cleanedUpTo })
        #expect(stored == expectedAfterCompaction(all, cleanedUpTo: cleanedUpTo, tombstonesExpired: false))
        // Segments still meet: each one's last batch ends where the next begins.
        for segment in log.currentSegments.dropLast() {
            let end = log.currentSegments.first { $0.baseOffset > segment.baseOffset }!.baseOffset
            let last = try #require(try h.storedBatches(log).last { $0.header.baseOffset < end })
            #expect(last.header.lastOffset == end - 1)
        }
        // The cleaner checkpoint is Kafka's text format.
        let text = String(decoding: try #require(try h.io.readWholeFile("/data/cleaner-offset-checkpoint")), as: UTF8.self)
        #expect(text == "0\n1\norders 0 \(cleanedUpTo)\n")
    }

    @Test func lastBatchOfAnActiveProducerIsKeptEmpty() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: compactedConfiguration(segmentBytes: 300))
        try await h.appendOK(try keyedBatch([("p", "1"), ("q", "1")], timestamp: 1, producer: (7, 0, 0)), to: log)
        for round in 0..<10 { try await h.appendOK(try keyedBatch([("p", "x\(round)"), ("q", "y\(round)")], timestamp: 2), to: log) }
        let cleaner = try #require(h.manager.startCleaner(configurationWith(mapBytes: 1 << 16), startThread: false))
        cleaner.cleanUntilIdle()
        let first = try #require(try h.storedBatches(log).first)
        #expect(first.header.producerId == 7 && first.header.recordsCount == 0 && first.header.baseOffset == 0 && first.header.lastOffset == 1)
        // The producer's sequence survives a restart: its next batch (sequence 2) is accepted, a retry of 0 is a duplicate.
        try h.manager.shutdown()
        let reloaded = try #require(try h.restart(configuration: compactedConfiguration(segmentBytes: 300)).first)
        let next = try await h.appendOK(try keyedBatch([("p", "z")], timestamp: 3, producer: (7, 0, 2)), to: reloaded)
        #expect(next.baseOffset.value == reloaded.highWatermark - 1)
        let duplicate = try await h.appendOK(try keyedBatch([("p", "z")], timestamp: 3, producer: (7, 0, 2)), to: reloaded)
        #expect(duplicate.baseOffset == next.baseOffset)
    }

    @Test func minCompactionLagKeepsYoungSegmentsDirty() async throws {
        let h = try Harness()
        var configuration = compactedConfiguration(segmentBytes: 300)
        configuration.minCompactionLagMs = 60_000
        let log = try h.createLog(configuration: configuration)
        _ = try await fill(h, log, (0..<10).map { [("a", "v\($0)"), ("b", "w\($0)")] })
        let cleaner = try #require(h.manager.startCleaner(configurationWith(mapBytes: 1 << 16), startThread: false))
        #expect(cleaner.cleanOnce() == nil)
        h.clock.advance(by: 60_001)
        #expect(cleaner.cleanOnce() != nil)
    }

    @Test func aFailingPartitionIsRetriedWithBackoffAndDoesNotStopOthers() async throws {
        let h = try Harness()
        let bad = try h.createLog("bad", configuration: compactedConfiguration(segmentBytes: 300))
        let good = try h.createLog("good", configuration: compactedConfiguration(segmentBytes: 300))
        let workload: [[(String?, String?)]] = (0..<10).map { [("a", "v\($0)"), ("b", "w\($0)")] }
        _ = try await fill(h, bad, workload)
        let goodRecords = try await fill(h, good, workload)
        var cleanerConfiguration = configurationWith(mapBytes: 1 << 16)
        cleanerConfiguration.backoffMs = 1000
        let cleaner = try #require(h.manager.startCleaner(cleanerConfiguration, startThread: false))
        let fault = h.disk.injectFault(.read, errno: 5, path: "/data/bad-0/", persistent: true)
        // "bad" is dirtier-or-equal and tried first or second; either way "good" gets cleaned.
        let passes = cleaner.cleanUntilIdle()
        #expect(cleaner.errorCount == 1)
        #expect(passes.map(\.topicPartition.topic) == ["good"])
        let cleanedUpTo = try #require(cleaner.firstDirtyOffset(good.topicPartition))
        #expect(try h.storedRecords(good) == expectedAfterCompaction(goodRecords, cleanedUpTo: cleanedUpTo, tombstonesExpired: false))
        h.disk.removeFault(fault)
        #expect(cleaner.cleanOnce() == nil)  // still backing off
        h.clock.advance(by: 1001)
        #expect(cleaner.cleanOnce()?.topicPartition.topic == "bad")
    }

    @Test func cleanerThreadCleansInTheBackgroundAndStopsAtShutdown() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: compactedConfiguration(segmentBytes: 300))
        _ = try await fill(h, log, (0..<20).map { [("a", "v\($0)"), ("b", "w\($0)")] })
        let cleaner = try #require(h.manager.startCleaner(configurationWith(mapBytes: 1 << 16)))
        cleaner.wakeUp()
        await waitUntil { cleaner.passCount > 0 }
        #expect(cleaner.passCount > 0)
        try h.manager.shutdown()
    }
}
