@testable import CommitLog
import DiskIO
import DiskIOTesting
import Foundation
import NIOCore
import RecordFormat
import Testing

/// The descriptor budget (`petrel.log.open.files.max`, Segment/SegmentFileCache.swift): inactive
/// segments close least recently used first and reopen transparently; admin work refuses what
/// would not fit.
@Suite struct FileBudgetTests {
    /// Small segments so a few appends make several inactive ones.
    func smallSegments() -> LogConfiguration {
        var configuration = testConfiguration()
        configuration.segmentBytes = 400
        configuration.indexIntervalBytes = 100
        return configuration
    }

    @Test func inactiveSegmentsCloseUnderTheBoundAndReopenForReads() async throws {
        let h = try Harness(openFilesMax: 40)
        let logs = try (0..<4).map { try h.createLog("t", Int32($0), configuration: smallSegments()) }
        for log in logs {
            for _ in 0..<30 { _ = try await h.appendOK(makeBatch(recordCount: 2, valueBytes: 60), to: log) }
        }
        let segmentCount = logs.reduce(0) { $0 + $1.segmentBaseOffsets.count }
        #expect(segmentCount > 40)  // more segments than the budget
        // Read everything, twice, in an order that defeats the LRU: every batch is there.
        for _ in 0..<2 {
            for log in logs {
                let batches = try h.allBatches(log)
                #expect(batches.map(\.baseOffset) == (0..<30).map { Int64($0 * 2) })
                #expect(h.manager.files.openFileCount <= 40)
                // What the disk sees: the budget, plus the few slices of reads not yet released —
                // nothing held by index files.
                #expect(h.disk.openDescriptorCount <= 43)
            }
        }
        #expect(h.manager.files.evictionCount > 0)
        // A closed segment reopens for a point read in its middle.
        let log = logs[0]
        let bases = log.segmentBaseOffsets
        let target = bases[1] + 2
        let result = try log.read(from: Offset(target), maxBytes: 1)
        #expect(try h.batches(of: result).first?.baseOffset == target)
        // Reads by timestamp open closed segments too.
        let found = try #require(try log.offset(forTimestamp: 1_700_000_000_000))
        #expect(found.offset == Offset(0))
    }

    @Test func aSliceKeepsItsDescriptorAfterEviction() async throws {
        let h = try Harness(openFilesMax: 18)
        let log = try h.createLog("t", 0, configuration: smallSegments())
        for _ in 0..<30 { _ = try await h.appendOK(makeBatch(recordCount: 2, valueBytes: 60), to: log) }
        let held = try log.read(from: Offset(0), maxBytes: 1)
        let slice = try #require(held.slices.first)
        // Read every other segment: the first one is evicted from the cache...
        let others = try (1..<20).map { try log.read(from: Offset(Int64($0 * 2)), maxBytes: 1) }
        #expect(log.currentSegments[0].handle == nil)
        // ...but the slice still reads through its own (leased) descriptor.
        #expect(try h.batches(of: held).first?.baseOffset == 0)
        #expect(slice.length > 0)
        _ = others
    }

    @Test func createRefusesWhatWouldExceedTheBudgetAndCreatesNothing() throws {
        let h = try Harness(openFilesMax: 100)
        #expect(h.manager.partitionsMax == 84)  // 100 minus max(16, 5%)
        _ = try h.manager.createLogs((0..<80).map { TopicPartition(topic: "a", partition: $0) }, configuration: testConfiguration())
        #expect(h.manager.files.openFileCount == 80)
        do {
            _ = try h.manager.createLogs((0..<10).map { TopicPartition(topic: "b", partition: $0) }, configuration: testConfiguration())
            Issue.record("expected a refusal")
        } catch {
            #expect(error.kind == .openFilesBudgetExceeded)
            #expect(error.message.contains("petrel.log.open.files.max=100"))
        }
        #expect(!h.io.fileExists("/data/b-0"))
        #expect(h.manager.log(for: TopicPartition(topic: "b", partition: 0)) == nil)
        _ = try h.manager.createLogs((0..<4).map { TopicPartition(topic: "b", partition: $0) }, configuration: testConfiguration())
        // Deleting gives the budget back.
        try h.manager.deleteLogs((0..<80).map { TopicPartition(topic: "a", partition: $0) })
        #expect(h.manager.logCount == 4)
        _ = try h.manager.createLogs((0..<70).map { TopicPartition(topic: "c", partition: $0) }, configuration: testConfiguration())
    }

    @Test func createLogsIsAllOrNothing() throws {
        let h = try Harness()
        _ = try h.createLog("x", 3)
        #expect(throws: CommitLogError.self) {
            _ = try h.manager.createLogs((0..<5).map { TopicPartition(topic: "x", partition: $0) }, configuration: testConfiguration())
        }
        #expect(!h.io.fileExists("/data/x-0"))
        #expect(h.manager.logCount == 1)
    }

    @Test func activeSegmentsHoldNoIndexDescriptorsAndIndexesSurviveRollAndRestart() async throws {
        let h = try Harness()
        let log = try h.createLog("t", 0, configuration: smallSegments())
        for _ in 0..<30 { _ = try await h.appendOK(makeBatch(recordCount: 2, valueBytes: 60), to: log) }
        // Only the active .log is open: every inactive segment was flushed and left to the LRU, and
        // no segment holds an index descriptor.
        for segment in log.currentSegments {
            #expect(segment.offsetIndexFD == nil && segment.timeIndexFD == nil)
            #expect(segment.pinned == (segment === log.currentSegments.last))
        }
        let expected = log.currentSegments.map { ($0.offsetIndex.entries, $0.timeIndex.entries) }
        try h.manager.shutdown()
        let reloaded = try #require(try h.restart(configuration: smallSegments()).first)
        let actual = reloaded.currentSegments.map { ($0.offsetIndex.entries, $0.timeIndex.entries) }
        #expect(actual.count == expected.count)
        for (a, e) in zip(actual, expected) {
            #expect(a.0 == e.0)
        }
        #expect(try h.allBatches(reloaded).count == 30)
    }

    @Test func deletionDoesNotWaitForTheAppender() async throws {
        let h = try Harness()
        let logs = try h.manager.createLogs((0..<50).map { TopicPartition(topic: "d", partition: $0) }, configuration: testConfiguration())
        _ = try await h.appendOK(makeBatch(), to: logs[0])
        // Park the appender: a deletion must complete anyway.
        let gate = DispatchSemaphore(value: 0)
        #expect(h.manager.appender.enqueue { gate.wait() })
        try h.manager.deleteLogs(logs.map(\.topicPartition))
        #expect(h.manager.logCount == 0)
        #expect(!h.io.fileExists("/data/d-0"))
        // Appends queued behind the parked appender fail as deleted, not as written.
        let pending = Task { await h.append(makeBatch(), to: logs[1]) }
        gate.signal()
        let result = await pending.value
        #expect(throws: CommitLogError.self) { try result.get() }
    }
}
