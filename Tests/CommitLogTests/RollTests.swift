@testable import CommitLog
import DiskIO
import DiskIOTesting
import NIOCore
import RecordFormat
import Testing

@Suite struct RollTests {
    @Test func rollsBySizeAndTrimsIndexesOfInactiveSegments() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.segmentBytes = 1000
        configuration.indexIntervalBytes = 150
        configuration.segmentIndexBytes = 4096
        let log = try h.createLog(configuration: configuration)
        let batchBytes = makeBatch(recordCount: 2, valueBytes: 50).readableBytes
        for _ in 0..<20 { _ = try await h.appendOK(makeBatch(recordCount: 2, valueBytes: 50), to: log) }
        let perSegment = Int64(1000 / batchBytes)  // a batch that would not fit starts a new segment
        let bases = log.segmentBaseOffsets
        #expect(bases.count == Int((20 + perSegment - 1) / perSegment))
        #expect(bases == (0..<Int64(bases.count)).map { $0 * perSegment * 2 })

        // Inactive segments: .log within segment.bytes; indexes trimmed to their entries and equal to the
        // in-memory copies; the active segment's index files stay empty (no descriptor held: they are
        // written whole when it stops being active).
        let segments = log.currentSegments
        for segment in segments.dropLast() {
            let size = try #require(h.disk.currentContents(of: segment.logPath)).count
            #expect(size <= 1000)
            let offsetBytes = try #require(h.disk.currentContents(of: segment.offsetIndexPath))
            let timeBytes = try #require(h.disk.currentContents(of: segment.timeIndexPath))
            #expect(offsetBytes == OffsetIndex.encode(segment.offsetIndex.entries))
            #expect(timeBytes == TimeIndex.encode(segment.timeIndex.entries))
            #expect(!segment.offsetIndex.entries.isEmpty)
            // The final time entry carries the segment's max timestamp.
            #expect(segment.timeIndex.entries.last?.timestamp == segment.maxTimestamp)
        }
        let active = try #require(segments.last)
        #expect(h.disk.currentContents(of: active.offsetIndexPath)?.count == 0)
        #expect(h.disk.currentContents(of: active.timeIndexPath)?.count == 0)

        // Reads cross segment boundaries.
        let all = try h.allBatches(log)
        #expect(all.count == 20)
        #expect(all.map(\.baseOffset) == (0..<20).map { Int64($0 * 2) })
        let spanning = try log.read(from: Offset(bases[1] - 1), maxBytes: 3 * batchBytes)
        #expect(try h.batches(of: spanning).map(\.baseOffset) == [bases[1] - 2, bases[1], bases[1] + 2])
        #expect(spanning.slices.count == 2)
    }

    @Test func rollsWhenTheIndexIsFull() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.indexIntervalBytes = 0  // an entry for every batch but the first
        configuration.segmentIndexBytes = 8 * 4  // 4 offset entries, 2 time entries (one kept for the final entry)
        let log = try h.createLog(configuration: configuration)
        for i in 0..<10 { _ = try await h.appendOK(makeBatch(recordCount: 1, timestamp: 1000 + Int64(i)), to: log) }
        // Time index holds 32/12 = 2 entries; full at 1 (Kafka keeps one for the final entry): batches 0,1 then roll.
        #expect(log.segmentBaseOffsets == [0, 2, 4, 6, 8])
        for segment in log.currentSegments.dropLast() {
            #expect(segment.offsetIndex.count == 1)
            #expect(segment.timeIndex.count == 1)
        }
    }

    @Test func rollsByTime() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.segmentMs = 1000
        let log = try h.createLog(configuration: configuration)
        _ = try await h.appendOK(makeBatch(), to: log)
        h.clock.advance(by: 600)
        _ = try await h.appendOK(makeBatch(), to: log)
        #expect(log.segmentBaseOffsets == [0])
        h.clock.advance(by: 500)  // 1100 ms after the segment's first batch
        _ = try await h.appendOK(makeBatch(), to: log)
        #expect(log.segmentBaseOffsets == [0, 2])
        // Without appends, the periodic task rolls too.
        h.clock.advance(by: 1001)
        h.manager.runPeriodicTasks()
        await waitUntil { log.segmentBaseOffsets == [0, 2, 3] }
        #expect(log.segmentBaseOffsets == [0, 2, 3])
        // An empty active segment never rolls.
        h.clock.advance(by: 5000)
        h.manager.runPeriodicTasks()
        _ = try await h.appendOK(makeBatch(), to: log)
        #expect(log.segmentBaseOffsets == [0, 2, 3])
        #expect(try h.allBatches(log).map(\.baseOffset) == [0, 1, 2, 3])
    }

    @Test func rollFlushesTheOldSegmentAndMovesTheRecoveryPoint() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.segmentBytes = 500
        let log = try h.createLog(configuration: configuration)
        for _ in 0..<10 { _ = try await h.appendOK(makeBatch(recordCount: 1, valueBytes: 100), to: log) }
        let bases = log.segmentBaseOffsets
        #expect(bases.count > 2)
        // Inactive segments are durable: their contents survive a crash that loses every unsynced write.
        for base in bases.dropLast() {
            let path = segmentPath(h.root, "orders-0", base, ".log")
            #expect(h.disk.durableContents(of: path) == h.disk.currentContents(of: path))
            #expect(h.disk.unsyncedChangeCount(of: segmentPath(h.root, "orders-0", base, ".index")) == 0)
        }
        let recoveryPoint = h.manager.appender.perform { log.writer.recoveryPoint }
        #expect(recoveryPoint == bases.last)
    }
}

/// Polls `condition` (for effects of work queued on the appender thread).
func waitUntil(timeoutMs: Int = 5000, _ condition: () -> Bool) async {
    var waited = 0
    while !condition() && waited < timeoutMs {
        try? await Task.sleep(nanoseconds: 1_000_000)
        waited += 1
    }
}
