@testable import CommitLog
import DiskIO
import DiskIOTesting
import NIOCore
import RecordFormat
import Testing
import Dispatch

@Suite struct AppendReadTests {
    @Test func appendsAssignOffsetsAndReadsReturnWholeBatches() async throws {
        let h = try Harness()
        let log = try h.createLog()
        var sizes: [Int] = []
        for i in 0..<5 {
            let batch = makeBatch(recordCount: i + 1)
            sizes.append(batch.readableBytes)
            let result = try await h.appendOK(batch, to: log)
            let expectedBase = Int64((0...i).reduce(0, +))  // 0, 1, 3, 6, 10
            #expect(result.baseOffset == Offset(expectedBase))
            #expect(result.lastOffset == Offset(expectedBase + Int64(i)))
            #expect(result.logAppendTime == nil)
            #expect(result.logStartOffset == Offset(0))
        }
        #expect(log.highWatermark == 15)

        // All of it.
        let all = try log.read(from: Offset(0), maxBytes: 1 << 20)
        #expect(all.highWatermark == Offset(15))
        #expect(all.byteCount == sizes.reduce(0, +))
        let headers = try h.batches(of: all)
        #expect(headers.map(\.baseOffset) == [0, 1, 3, 6, 10])
        #expect(headers.allSatisfy { $0.partitionLeaderEpoch == 0 })

        // An offset in the middle of a batch returns the batch containing it.
        let middle = try log.read(from: Offset(7), maxBytes: 1 << 20)
        #expect(try h.batches(of: middle).map(\.baseOffset) == [6, 10])
        #expect(middle.slices.first?.position == FilePosition(Int64(sizes[0] + sizes[1] + sizes[2])))

        // maxBytes keeps whole batches only.
        let two = try log.read(from: Offset(0), maxBytes: sizes[0] + sizes[1] + sizes[2] - 1)
        #expect(try h.batches(of: two).map(\.baseOffset) == [0, 1])
        // KIP-74: at least one whole batch, even when larger than maxBytes.
        let one = try log.read(from: Offset(3), maxBytes: 1)
        #expect(try h.batches(of: one).map(\.baseOffset) == [3])
        #expect(one.byteCount == sizes[2])

        // At the high watermark: empty. Past it or below the start: out of range.
        #expect(try log.read(from: Offset(15), maxBytes: 100).slices.isEmpty)
        #expect(throws: CommitLogError.self) { try log.read(from: Offset(16), maxBytes: 100) }
        #expect(throws: CommitLogError.self) { try log.read(from: Offset(-1), maxBytes: 100) }
    }

    @Test func sharedBuffersAreNotModified() async throws {
        let h = try Harness()
        let log = try h.createLog()
        _ = try await h.appendOK(makeBatch(), to: log)
        let batch = makeBatch(recordCount: 3)
        let original = Array(batch.readableBytesView)
        // `batch` stays referenced here, so the appender must not patch it in place.
        let result = try await h.appendOK(batch, to: log)
        #expect(result.baseOffset == Offset(1))
        #expect(Array(batch.readableBytesView) == original)
        let stored = try h.bytes(of: try log.read(from: Offset(1), maxBytes: 1 << 20))
        #expect(Array(stored[16...]) == Array(original[16...]))
        #expect(try Harness.batches(in: stored).first?.baseOffset == 1)
    }

    @Test func consecutiveBatchesOfAPartitionGoDownAsOneWrite() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.indexIntervalBytes = 100
        let log = try h.createLog(configuration: configuration)
        let shared = makeBatch(recordCount: 2, valueBytes: 200)  // one buffer for all: staged copies
        let gate = DispatchSemaphore(value: 0)
        h.manager.appender.enqueue { gate.wait() }
        let writesBefore = h.disk.counters.writes
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 { group.addTask { _ = try await h.appendOK(shared, to: log) } }
            await waitUntil { h.manager.appender.queuedCount >= 20 }
            gate.signal()
            try await group.waitForAll()
        }
        // One write for the 20 batches; their index entries stay in memory until the segment rolls.
        #expect(h.disk.counters.writes - writesBefore == 1)
        let headers = try h.allBatches(log)
        #expect(headers.map(\.baseOffset) == (0..<20).map { Int64($0 * 2) })
        #expect(log.currentSegments[0].offsetIndex.count > 5)
        for header in headers { #expect(try log.read(from: Offset(header.lastOffset), maxBytes: 1).slices.first.map { Int64($0.length) } == Int64(header.totalByteCount)) }
    }

    @Test func invalidAndOversizedBatchesAreRefused() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.maxMessageBytes = 200
        let log = try h.createLog(configuration: configuration)
        let big = makeBatch(recordCount: 1, valueBytes: 300)
        let tooLarge = await h.append(big, to: log)
        #expect(throws: CommitLogError.self) { try tooLarge.get() }
        if case .failure(let error) = tooLarge { #expect(error.kind == .messageTooLarge) }
        var garbage = ByteBuffer()
        garbage.writeBytes([UInt8](repeating: 7, count: 70))
        if case .failure(let error) = await h.append(garbage, to: log) { #expect(error.kind == .invalidBatch) } else { Issue.record("accepted garbage") }
        // The log is unharmed.
        #expect(try await h.appendOK(makeBatch(), to: log).baseOffset.value == 0)
        #expect(!log.isOffline)
    }

    @Test func logAppendTimeStampsTheBatch() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.messageTimestampType = .logAppendTime
        let log = try h.createLog(configuration: configuration)
        h.clock.advance(by: 5000)
        let now = h.clock.wallMilliseconds()
        let result = try await h.appendOK(makeBatch(recordCount: 2, timestamp: 1000), to: log)
        #expect(result.logAppendTime == now)
        let header = try #require(try h.batches(of: try log.read(from: Offset(0), maxBytes: 4096)).first)  // CRC-validated
        #expect(header.isLogAppendTime)
        #expect(header.maxTimestamp == now)
        #expect(try log.offset(forTimestamp: now)?.offset == Offset(0))
    }

    @Test func readByTimestampAndMaxTimestamp() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.indexIntervalBytes = 100
        let log = try h.createLog(configuration: configuration)
        // Offsets 0-2: ts 100,110,120; 3-5: ts 200,190,210; 6-8: ts 300,305,310 ... (batches of 3)
        var stamps: [[Int64]] = []
        for batch in 0..<10 {
            let base = Int64(batch + 1) * 100
            stamps.append(batch == 1 ? [200, 190, 210] : [base, base + 5, base + 10])
        }
        stamps[6] = [50, 1500, 60]  // a late, large timestamp in the middle: offset 19
        for ts in stamps { _ = try await h.appendOK(makeBatch(timestamps: ts), to: log) }

        #expect(try log.offset(forTimestamp: 0)! == (Offset(0), 100))
        #expect(try log.offset(forTimestamp: 105)! == (Offset(1), 105))
        #expect(try log.offset(forTimestamp: 195)! == (Offset(3), 200))  // first record >= 195 in the batch order
        #expect(try log.offset(forTimestamp: 205)! == (Offset(5), 210))
        #expect(try log.offset(forTimestamp: 1000)! == (Offset(19), 1500))
        #expect(try log.offset(forTimestamp: 1501) == nil)
        let max = try #require(try log.offsetOfMaxTimestamp())
        #expect(max == (Offset(19), 1500))
        #expect(try h.createLog("empty").offsetOfMaxTimestamp() == nil)
    }

    @Test func deleteRecordsMovesTheLogStartOffset() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.segmentBytes = 300
        let log = try h.createLog(configuration: configuration)
        for _ in 0..<12 { _ = try await h.appendOK(makeBatch(recordCount: 2, valueBytes: 30), to: log) }
        let segmentsBefore = log.segmentBaseOffsets
        #expect(segmentsBefore.count > 3)
        #expect(throws: CommitLogError.self) { try log.deleteRecords(before: Offset(25)) }
        let start = try log.deleteRecords(before: Offset(segmentsBefore[2] + 1)).value
        #expect(start == segmentsBefore[2] + 1)
        #expect(log.logStartOffset == start)
        #expect(log.segmentBaseOffsets == Array(segmentsBefore[2...]))
        #expect(!h.io.fileExists(segmentPath(h.root, "orders-0", segmentsBefore[0], ".log")))
        #expect(throws: CommitLogError.self) { try log.read(from: Offset(start - 1), maxBytes: 100) }
        // Reading at the new start returns the batch containing it.
        #expect(try h.batches(of: try log.read(from: Offset(start), maxBytes: 10)).first?.baseOffset == segmentsBefore[2])
        // Persisted: survives a restart.
        let text = String(decoding: try #require(try h.io.readWholeFile("/data/log-start-offset-checkpoint")), as: UTF8.self)
        #expect(text == "0\n1\norders 0 \(start)\n")
        try h.manager.shutdown()
        let reloaded = try #require(try h.restart(configuration: configuration).first)
        #expect(reloaded.logStartOffset == start)
        #expect(try await h.appendOK(makeBatch(), to: reloaded).logStartOffset.value == start)
    }

    @Test func deleteRecordsWithoutAnOffsetDeletesUpToTheHighWatermark() async throws {
        let h = try Harness()
        let log = try h.createLog()
        for _ in 0..<3 { _ = try await h.appendOK(makeBatch(recordCount: 2), to: log) }
        #expect(throws: CommitLogError.self) { try log.deleteRecords(before: Offset(-2)) }
        #expect(log.logStartOffset == 0)
        #expect(try log.deleteRecords(before: nil) == Offset(6))  // Kafka's -1 on the wire
        #expect(log.logStartOffset == 6)
        #expect(try log.read(from: Offset(6), maxBytes: 100).slices.isEmpty)
        #expect(throws: CommitLogError.self) { try log.read(from: Offset(5), maxBytes: 100) }
    }

    @Test func concurrentReadersSeeOnlyCompletedAppends() async throws {
        let h = try Harness()
        let log = try h.createLog()
        let appends = 300
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for i in 0..<appends { _ = try await h.appendOK(makeBatch(recordCount: 1 + i % 4, valueBytes: 50), to: log) }
            }
            for _ in 0..<2 {
                group.addTask {
                    var reads = 0
                    while reads < 2000 {
                        let hw = log.highWatermark
                        let result = try log.read(from: Offset(0), maxBytes: 1 << 20)
                        let headers = try h.batches(of: result)
                        #expect((headers.last?.nextOffset ?? 0) <= result.highWatermark.value)
                        #expect(result.highWatermark.value >= hw)
                        var next: Int64 = 0
                        for header in headers {
                            #expect(header.baseOffset == next)
                            next = header.nextOffset
                        }
                        reads += 1
                        if hw > 0, reads % 100 == 0 { await Task.yield() }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
