@testable import CommitLog
import DiskIO
import DiskIOTesting
import NIOCore
import RecordFormat
import Testing

func marker(_ type: ControlRecordType, producerId: Int64, epoch: Int16 = 0) -> ByteBuffer {
    type.markerBatch(producerId: producerId, producerEpoch: epoch, coordinatorEpoch: 0, timestamp: 1_700_000_000_000)
}

/// Transactional batches, COMMIT/ABORT markers, the last stable offset, the aborted-transaction
/// index (`.txnindex`) and their recovery.
@Suite struct TransactionLogTests {
    @Test func lastStableOffsetStopsAtTheEarliestOpenTransaction() async throws {
        let h = try Harness()
        let log = try h.createLog()
        try await h.appendOK(idempotentBatch(producerId: 1, sequence: 0), to: log)  // 0: plain idempotent
        try await h.appendOK(idempotentBatch(producerId: 2, sequence: 0, count: 2, transactional: true), to: log)  // 1-2
        try await h.appendOK(idempotentBatch(producerId: 3, sequence: 0, transactional: true), to: log)  // 3
        #expect(log.highWatermark == 4)
        #expect(log.lastStableOffset == 1)
        // read_committed reads stop before the open transaction.
        let (read, lso) = try log.readCommitted(from: Offset(0), maxBytes: 1 << 20)
        #expect(lso == Offset(1))
        #expect(try RecordBatch.validateFraming(ByteBuffer(bytes: try h.bytes(of: read)), requireExactLength: true).lastOffset == 0)
        try await h.appendOK(marker(.commit, producerId: 2), to: log)  // 4
        #expect(log.lastStableOffset == 3)
        try await h.appendOK(marker(.abort, producerId: 3), to: log)  // 5
        #expect(log.lastStableOffset == 6)
        #expect(log.allAbortedTransactions == [AbortedTransaction(producerId: 3, firstOffset: 3, lastOffset: 5, lastStableOffset: 6)])
        #expect(log.abortedTransactions(from: 0, upTo: 6).count == 1)
        #expect(log.abortedTransactions(from: 6, upTo: 6).isEmpty)
        // The index is Kafka's: 34 bytes per entry, in the segment the marker is in.
        let index = try #require(try h.io.readWholeFile("/data/orders-0/00000000000000000000.txnindex"))
        #expect(index.count == 34)
        #expect(TransactionIndexFile.decode(index) == log.allAbortedTransactions)
    }

    @Test func fencedMarkerIsRefusedAndZombieDataAfterAnEpochBumpIsRefused() async throws {
        let h = try Harness()
        let log = try h.createLog()
        try await h.appendOK(idempotentBatch(producerId: 9, epoch: 2, sequence: 0, transactional: true), to: log)
        #expect(await h.append(marker(.commit, producerId: 9, epoch: 1), to: log).errorKind == .invalidProducerEpoch)
        try await h.appendOK(marker(.abort, producerId: 9, epoch: 3), to: log)  // coordinator fenced epoch 2
        #expect(await h.append(idempotentBatch(producerId: 9, epoch: 2, sequence: 1, transactional: true), to: log).errorKind == .invalidProducerEpoch)
        #expect(log.lastStableOffset == log.highWatermark)
    }

    @Test func openTransactionsAndAbortsSurviveCrashAndCleanRestart() async throws {
        let h = try Harness()
        let log = try h.createLog()
        try await h.appendOK(idempotentBatch(producerId: 4, sequence: 0, transactional: true), to: log)  // 0
        try await h.appendOK(marker(.abort, producerId: 4), to: log)  // 1
        try await h.appendOK(idempotentBatch(producerId: 5, sequence: 0, count: 3, transactional: true), to: log)  // 2-4
        try await h.appendOK(idempotentBatch(producerId: 6, sequence: 0, transactional: true), to: log)  // 5
        try await h.appendOK(marker(.abort, producerId: 6), to: log)  // 6
        // A crash losing the second .txnindex write: recovery replays the marker and restores it.
        h.manager.appender.shutdown()
        try h.io.writeFileAtomically(
            "/data/orders-0/00000000000000000000.txnindex",
            TransactionIndexFile.encode([AbortedTransaction(producerId: 4, firstOffset: 0, lastOffset: 1, lastStableOffset: 2)]))
        let reloaded = try #require(try h.restart().first)
        #expect(reloaded.lastStableOffset == 2)  // producer 5 is still open
        #expect(reloaded.allAbortedTransactions.map(\.lastOffset) == [1, 6])
        #expect(TransactionIndexFile.decode(try #require(try h.io.readWholeFile("/data/orders-0/00000000000000000000.txnindex"))).count == 2)
        try await h.appendOK(marker(.commit, producerId: 5), to: reloaded)
        #expect(reloaded.lastStableOffset == reloaded.highWatermark)
        // A clean restart (snapshot at the end) keeps it all.
        try h.manager.shutdown()
        let again = try #require(try h.restart().first)
        #expect(again.lastStableOffset == again.highWatermark)
        #expect(again.allAbortedTransactions.map(\.lastOffset) == [1, 6])
    }
}

extension TransactionLogTests {
    @Test func compactionRemovesAbortedRecordsKeepsMarkersAndNeverCleansOpenTransactions() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: compactedConfiguration(segmentBytes: 300))
        func txn(_ pairs: [(String?, String?)], producer: Int64, sequence: Int32) -> ByteBuffer {
            var builder = RecordBatchBuilder(producerId: producer, producerEpoch: 0, baseSequence: sequence, isTransactional: true)
            for (index, pair) in pairs.enumerated() {
                builder.append(key: pair.0.map { Array($0.utf8) }, value: pair.1.map { Array($0.utf8) }, timestamp: 1 + Int64(index))
            }
            return builder.build()
        }
        try await h.appendOK(try keyedBatch([("k", "committed")], timestamp: 1), to: log)  // 0
        try await h.appendOK(txn([("k", "aborted")], producer: 20, sequence: 0), to: log)  // 1: must not shadow offset 0
        try await h.appendOK(marker(.abort, producerId: 20), to: log)  // 2
        for round in 0..<10 { try await h.appendOK(try keyedBatch([("filler", "\(round)")], timestamp: 2), to: log) }
        var cleanerConfiguration = CleanerConfiguration()
        cleanerConfiguration.dedupeBufferBytes = 1 << 16
        cleanerConfiguration.backoffMs = 10
        let cleaner = try #require(h.manager.startCleaner(cleanerConfiguration, startThread: false))
        cleaner.cleanUntilIdle()
        let stored = try h.storedRecords(log)
        #expect(stored.contains { $0.offset == 0 }, "the committed value was removed by an aborted one")
        #expect(!stored.contains { $0.offset == 1 }, "the aborted record survived compaction")
        #expect(try h.storedBatches(log).contains { $0.header.isControl && $0.header.baseOffset == 2 })

        // An open transaction bounds the cleanable range.
        try await h.appendOK(txn([("open", "1")], producer: 21, sequence: 0), to: log)
        let openAt = log.highWatermark - 1
        for round in 0..<10 { try await h.appendOK(try keyedBatch([("filler", "again\(round)")], timestamp: 3), to: log) }
        cleaner.cleanUntilIdle()
        #expect(try h.storedRecords(log).contains { $0.offset == openAt })
        #expect((cleaner.firstDirtyOffset(log.topicPartition) ?? 0) <= openAt)
    }

    /// KIP-534 for markers: a marker stays while data of its transaction does; once none is left
    /// it gets a delete horizon (delete.retention.ms) and goes after it. A reload then still sees
    /// no open transaction.
    @Test func compactionRemovesMarkersAfterTheirDeleteHorizon() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: compactedConfiguration(segmentBytes: 300))
        func txn(_ key: String, _ value: String, producer: Int64, sequence: Int32) -> ByteBuffer {
            var builder = RecordBatchBuilder(producerId: producer, producerEpoch: 0, baseSequence: sequence, isTransactional: true)
            builder.append(key: Array(key.utf8), value: Array(value.utf8), timestamp: h.clock.wallMilliseconds())
            return builder.build()
        }
        try await h.appendOK(txn("a", "old", producer: 30, sequence: 0), to: log)  // 0: superseded below
        try await h.appendOK(marker(.commit, producerId: 30), to: log)  // 1: its data will be gone
        try await h.appendOK(txn("b", "kept", producer: 31, sequence: 0), to: log)  // 2: latest for b
        try await h.appendOK(marker(.commit, producerId: 31), to: log)  // 3: its data stays
        try await h.appendOK(txn("c", "aborted", producer: 32, sequence: 0), to: log)  // 4
        try await h.appendOK(marker(.abort, producerId: 32), to: log)  // 5
        try await h.appendOK(try keyedBatch([("a", "new")], timestamp: h.clock.wallMilliseconds()), to: log)  // 6
        // Producer 30's later transaction: offset 0 is no longer its last batch (a producer's last
        // batch stays, empty, for its sequence — and with it the marker after it).
        try await h.appendOK(txn("d", "x", producer: 30, sequence: 1), to: log)  // 7
        try await h.appendOK(marker(.commit, producerId: 30), to: log)  // 8
        for round in 0..<10 { try await h.appendOK(try keyedBatch([("filler", "\(round)")], timestamp: h.clock.wallMilliseconds()), to: log) }
        var cleanerConfiguration = CleanerConfiguration()
        cleanerConfiguration.dedupeBufferBytes = 1 << 16
        cleanerConfiguration.backoffMs = 10
        let cleaner = try #require(h.manager.startCleaner(cleanerConfiguration, startThread: false))
        func markers() throws -> [Int64: Bool] {
            Dictionary(uniqueKeysWithValues: try h.storedBatches(log).filter(\.header.isControl).map { ($0.header.baseOffset, $0.header.hasDeleteHorizon) })
        }
        cleaner.cleanUntilIdle()
        // Nothing goes before its horizon; the markers with nothing left to mark carry one (the
        // abort marker only once a later round no longer sees the aborted data).
        cleaner.cleanUntilIdle()
        try await h.appendOK(try keyedBatch([("filler", "x")], timestamp: h.clock.wallMilliseconds()), to: log)
        cleaner.cleanUntilIdle()
        let before = try markers()
        #expect(before[1] == true)
        #expect(before[3] == false, "a marker whose data is still there got a horizon")
        #expect(before[5] != nil)
        h.clock.advance(by: 86_400_001)
        try await h.appendOK(try keyedBatch([("filler", "y")], timestamp: h.clock.wallMilliseconds()), to: log)
        cleaner.cleanUntilIdle()
        try await h.appendOK(try keyedBatch([("filler", "z")], timestamp: h.clock.wallMilliseconds()), to: log)
        cleaner.cleanUntilIdle()
        let after = try markers()
        #expect(after[1] == nil, "the marker outlived its delete horizon")
        #expect(after[3] == false, "the marker of kept transactional data was removed")
        #expect(after[8] == false)
        #expect(try h.storedRecords(log).contains { $0.offset == 2 })
        // Reloaded after a crash (the log replayed), nothing looks open: the LSO is the log end.
        h.manager.appender.shutdown()
        let reloaded = try #require(try h.restart().first)
        #expect(reloaded.lastStableOffset == reloaded.highWatermark)
    }

    /// Retention deleting a segment takes its `.txnindex` and its aborted transactions along.
    @Test func retentionRemovesTheDeletedSegmentsTransactionIndex() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.segmentBytes = 1  // every batch rolls a segment
        configuration.retentionMs = 1000
        let log = try h.createLog(configuration: configuration)
        try await h.appendOK(idempotentBatch(producerId: 40, sequence: 0, transactional: true), to: log)  // 0
        try await h.appendOK(marker(.abort, producerId: 40), to: log)  // 1: .txnindex of segment 1
        h.clock.advance(by: 5000)
        for _ in 0..<3 { try await h.appendOK(makeBatch(timestamp: h.clock.wallMilliseconds()), to: log) }
        let index1 = "/data/orders-0/" + TransactionIndexFile.name(1)
        #expect(h.io.fileExists(index1))
        #expect(log.allAbortedTransactions.map(\.lastOffset) == [1])
        h.clock.advance(by: 500)
        #expect(h.manager.runRetention() == 2)
        #expect(log.logStartOffset == 2)
        #expect(!h.io.fileExists(index1), "the deleted segment's .txnindex is still there")
        #expect(log.allAbortedTransactions.isEmpty)
    }
}
