@testable import CommitLog
import DiskIO
import DiskIOTesting
import NIOCore
import RecordFormat
import Testing

@Suite struct RetentionTests {
    /// One batch per segment (every append rolls), timestamps as given.
    private func log(_ h: Harness, timestamps: [Int64], configure: (inout LogConfiguration) -> Void = { _ in }) async throws -> PartitionLog {
        var configuration = testConfiguration()
        configuration.segmentBytes = 1  // every non-empty segment rolls before the next batch
        configure(&configuration)
        let log = try h.createLog(configuration: configuration)
        for timestamp in timestamps { try await h.appendOK(makeBatch(recordCount: 2, valueBytes: 50, timestamp: timestamp), to: log) }
        return log
    }

    @Test func plannerStopsAtTheFirstSegmentThatDoesNotQualify() {
        var configuration = LogConfiguration()
        configuration.retentionMs = 1000
        let segments = [
            RetentionPlanner.Segment(baseOffset: 0, sizeBytes: 100, largestTimestamp: 100),
            RetentionPlanner.Segment(baseOffset: 10, sizeBytes: 100, largestTimestamp: 9_999_999),  // future: pins the rest
            RetentionPlanner.Segment(baseOffset: 20, sizeBytes: 100, largestTimestamp: 100),
            RetentionPlanner.Segment(baseOffset: 30, sizeBytes: 100, largestTimestamp: 100),  // active
        ]
        #expect(RetentionPlanner.plan(segments: segments, logStartOffset: 0, configuration: configuration, now: 5000).count == 1)
        configuration.retentionMs = -1
        configuration.retentionBytes = 150  // 400 total: 400-100 >= 150, 300-100 >= 150, 200-100 < 150
        let plan = RetentionPlanner.plan(segments: segments, logStartOffset: 0, configuration: configuration, now: 5000)
        #expect(plan.count == 2 && plan.reasons == [.retentionBytes, .retentionBytes])
        configuration.retentionBytes = 0  // never the active segment
        #expect(RetentionPlanner.plan(segments: segments, logStartOffset: 0, configuration: configuration, now: 5000).count == 3)
        configuration.retentionBytes = -1
        #expect(RetentionPlanner.plan(segments: segments, logStartOffset: 20, configuration: configuration, now: 5000).reasons == [.logStartOffset, .logStartOffset])
        configuration.cleanupPolicy = .compact  // no time/size deletion, but the log start rule still applies
        configuration.retentionMs = 0
        #expect(RetentionPlanner.plan(segments: segments, logStartOffset: 10, configuration: configuration, now: 5000).reasons == [.logStartOffset])
    }

    @Test func deletesByTimeExactlyTheExpiredSegmentsAndMovesTheLogStart() async throws {
        let h = try Harness()
        let t0 = h.clock.wallMilliseconds()
        // Segments: [0,2) t0, [2,4) t0+10s, [4,6) t0+20s, [6,8) t0+30s, then the active [8,10) t0+40s.
        let log = try await log(h, timestamps: [t0, t0 + 10_000, t0 + 20_000, t0 + 30_000, t0 + 40_000]) { $0.retentionMs = 25_000 }
        #expect(log.segmentBaseOffsets == [0, 2, 4, 6, 8])
        let held = try log.read(from: Offset(0), maxBytes: 100)  // a fetch in flight on the first segment
        h.clock.advance(by: 46_000)  // now - ts: 46s, 36s, 26s (> 25s) | 16s, 6s
        #expect(h.manager.runRetention() == 3)
        #expect(log.segmentBaseOffsets == [6, 8])
        #expect(log.logStartOffset == 6)
        #expect(throws: CommitLogError.self) { try log.read(from: Offset(5), maxBytes: 100) }
        #expect(try h.bytes(of: held).count == held.byteCount)
        // Renamed, not yet unlinked; the log start offset is checkpointed.
        for base: Int64 in [0, 2, 4] {
            #expect(!h.io.fileExists(segmentPath("/data", "orders-0", base, ".log")))
            #expect(h.io.fileExists(segmentPath("/data", "orders-0", base, ".log.deleted")))
        }
        let checkpoint = String(decoding: try #require(try h.io.readWholeFile("/data/log-start-offset-checkpoint")), as: UTF8.self)
        #expect(checkpoint.contains("orders 0 6"))
        h.clock.advance(by: 60_000)
        #expect(h.manager.runRetention() == 1)  // [6,8) expired meanwhile: renamed now
        let deleted = try h.io.listDirectory("/data/orders-0").filter { $0.hasSuffix(".deleted") }
        #expect(!deleted.isEmpty && deleted.allSatisfy { $0.hasPrefix(SegmentFileName.stem(6)) })
        #expect(try h.bytes(of: held).count == held.byteCount)  // unlinked, still readable
        // Restart keeps the new start.
        try h.manager.shutdown()
        let reloaded = try #require(try h.restart().first)
        #expect(reloaded.logStartOffset == 8)
        #expect(reloaded.segmentBaseOffsets == [8])
    }

    @Test func futureTimestampPinsItsSegmentAndTheActiveSegmentIsNeverDeleted() async throws {
        let h = try Harness()
        let t0 = h.clock.wallMilliseconds()
        let log = try await log(h, timestamps: [t0, t0 + 10_000_000, t0]) { $0.retentionMs = 1000 }
        h.clock.advance(by: 100_000)
        #expect(h.manager.runRetention() == 1)
        #expect(log.segmentBaseOffsets == [2, 4])
        // Everything expired, the active segment still stays.
        h.clock.advance(by: 100_000_000)
        h.manager.runRetention()
        #expect(log.segmentBaseOffsets == [4])
        #expect(log.logStartOffset == 4)
        #expect(try await h.appendOK(makeBatch(), to: log).baseOffset.value == 6)
    }

    @Test func deletesBySizeOldestFirst() async throws {
        let h = try Harness()
        let t0 = h.clock.wallMilliseconds()
        let log = try await log(h, timestamps: Array(repeating: t0, count: 6)) { $0.retentionBytes = -1 }
        let segmentSize = log.sizeInBytes / 6
        var configuration = log.configuration
        // Kafka's rule: delete while what remains stays >= retention.bytes (6 → 4 segments here).
        configuration.retentionBytes = segmentSize * 3 + segmentSize / 2
        log.updateConfiguration(configuration)
        #expect(h.manager.runRetention() == 2)
        #expect(log.segmentBaseOffsets == [4, 6, 8, 10])
        #expect(log.sizeInBytes >= configuration.retentionBytes && log.sizeInBytes - segmentSize < configuration.retentionBytes)
    }

    @Test func compactOnlyTopicsAreNotDeletedByTimeOrSize() async throws {
        let h = try Harness()
        let t0 = h.clock.wallMilliseconds()
        let log = try await log(h, timestamps: [t0, t0, t0]) {
            $0.cleanupPolicy = .compact
            $0.retentionMs = 1
            $0.retentionBytes = 1
        }
        h.clock.advance(by: 10_000)
        #expect(h.manager.runRetention() == 0)
        #expect(log.segmentBaseOffsets == [0, 2, 4])
        var configuration = log.configuration
        configuration.cleanupPolicy = [.compact, .delete]
        log.updateConfiguration(configuration)
        #expect(h.manager.runRetention() == 2)
    }

    @Test func periodicTasksRunRetentionAtTheCheckInterval() async throws {
        let h = try Harness()
        let t0 = h.clock.wallMilliseconds()
        let log = try await log(h, timestamps: [t0, t0, t0]) { $0.retentionMs = 1000 }
        h.manager.retentionCheckIntervalMs = 300_000
        h.manager.runPeriodicTasks()  // first check now: nothing expired yet
        h.clock.advance(by: 5000)
        h.manager.runPeriodicTasks()  // not due
        #expect(log.segmentBaseOffsets == [0, 2, 4])
        h.clock.advance(by: 300_000)
        h.manager.runPeriodicTasks()
        #expect(log.segmentBaseOffsets == [4])
    }

    @Test func deleteRecordsRenamesWholeSegmentsForDelayedDeletion() async throws {
        let h = try Harness()
        let t0 = h.clock.wallMilliseconds()
        let log = try await log(h, timestamps: [t0, t0, t0, t0])
        #expect(try log.deleteRecords(before: Offset(5)) == Offset(5))
        #expect(log.segmentBaseOffsets == [4, 6])
        #expect(h.io.fileExists(segmentPath("/data", "orders-0", 0, ".log.deleted")))
        #expect(h.manager.pendingFileDeletions.count >= 6)
        // A restart before the unlink removes the strays and keeps the start.
        try h.manager.shutdown()
        let reloaded = try #require(try h.restart().first)
        #expect(reloaded.logStartOffset == 5)
        #expect(try h.io.listDirectory("/data/orders-0").filter { $0.hasSuffix(".deleted") }.isEmpty)
    }
}
