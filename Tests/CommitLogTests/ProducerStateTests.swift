@testable import CommitLog
import DiskIO
import DiskIOTesting
import Dispatch
import NIOCore
import RecordFormat
import Synchronization
import Testing

/// A batch of `count` records from an idempotent producer.
func idempotentBatch(
    producerId: Int64, epoch: Int16 = 0, sequence: Int32, count: Int = 1, transactional: Bool = false,
    timestamp: Int64 = 1_700_000_000_000
) -> ByteBuffer {
    var builder = RecordBatchBuilder(
        baseOffset: 0, producerId: producerId, producerEpoch: epoch, baseSequence: sequence, isTransactional: transactional)
    for index in 0..<count {
        builder.append(key: Array("k\(index)".utf8), value: Array("p\(producerId)e\(epoch)s\(sequence)r\(index)".utf8), timestamp: timestamp + Int64(index))
    }
    return builder.build()
}

extension Result where Failure == CommitLogError {
    var errorKind: CommitLogError.Kind? {
        if case .failure(let error) = self { return error.kind }
        return nil
    }
}

@Suite struct ProducerStateTests {
    // MARK: Append rules

    @Test func duplicateIsAnsweredWithTheOriginalOffsetsAndNotWritten() async throws {
        let h = try Harness()
        let log = try h.createLog()
        let first = idempotentBatch(producerId: 7, sequence: 0, count: 3)
        let second = idempotentBatch(producerId: 7, sequence: 3, count: 2)
        #expect(try await h.appendOK(first, to: log).baseOffset.value == 0)
        #expect(try await h.appendOK(second, to: log).baseOffset.value == 3)
        let retryFirst = try await h.appendOK(idempotentBatch(producerId: 7, sequence: 0, count: 3), to: log)
        #expect(retryFirst.baseOffset == Offset(0) && retryFirst.lastOffset == Offset(2))
        let retrySecond = try await h.appendOK(idempotentBatch(producerId: 7, sequence: 3, count: 2), to: log)
        #expect(retrySecond.baseOffset == Offset(3) && retrySecond.lastOffset == Offset(4))
        #expect(log.highWatermark == 5)
        #expect(try h.allBatches(log).map(\.baseSequence) == [0, 3])
        // Only the last 5 batches are remembered: after 5 more, the first is no longer a duplicate.
        for sequence in stride(from: Int32(5), to: 10, by: 1) {
            try await h.appendOK(idempotentBatch(producerId: 7, sequence: sequence), to: log)
        }
        #expect(await h.append(idempotentBatch(producerId: 7, sequence: 0, count: 3), to: log).errorKind == .outOfOrderSequence)
        #expect(try await h.appendOK(idempotentBatch(producerId: 7, sequence: 9), to: log).baseOffset.value == 9)
    }

    @Test func sequenceGapIsOutOfOrder() async throws {
        let h = try Harness()
        let log = try h.createLog()
        try await h.appendOK(idempotentBatch(producerId: 1, sequence: 0), to: log)
        let gap = await h.append(idempotentBatch(producerId: 1, sequence: 2), to: log)
        #expect(gap.errorKind == .outOfOrderSequence)
        #expect(log.highWatermark == 1)
        #expect(try await h.appendOK(idempotentBatch(producerId: 1, sequence: 1), to: log).baseOffset.value == 1)
        // Other producers are independent.
        #expect(try await h.appendOK(idempotentBatch(producerId: 2, sequence: 0), to: log).baseOffset.value == 2)
    }

    @Test func olderEpochIsFenced() async throws {
        let h = try Harness()
        let log = try h.createLog()
        try await h.appendOK(idempotentBatch(producerId: 3, epoch: 2, sequence: 0), to: log)
        #expect(await h.append(idempotentBatch(producerId: 3, epoch: 1, sequence: 1), to: log).errorKind == .invalidProducerEpoch)
        // A retry of an old epoch's batch is fenced too, not a duplicate.
        #expect(await h.append(idempotentBatch(producerId: 3, epoch: 1, sequence: 0), to: log).errorKind == .invalidProducerEpoch)
        #expect(log.highWatermark == 1)
    }

    @Test func epochBumpMustStartAtSequenceZero() async throws {
        let h = try Harness()
        let log = try h.createLog()
        try await h.appendOK(idempotentBatch(producerId: 4, epoch: 0, sequence: 0, count: 5), to: log)
        #expect(await h.append(idempotentBatch(producerId: 4, epoch: 1, sequence: 5), to: log).errorKind == .outOfOrderSequence)
        #expect(try await h.appendOK(idempotentBatch(producerId: 4, epoch: 1, sequence: 0, count: 2), to: log).baseOffset.value == 5)
        // The old epoch is now fenced, even for a batch that was a duplicate before the bump.
        #expect(await h.append(idempotentBatch(producerId: 4, epoch: 0, sequence: 0, count: 5), to: log).errorKind == .invalidProducerEpoch)
        #expect(try await h.appendOK(idempotentBatch(producerId: 4, epoch: 1, sequence: 2), to: log).baseOffset.value == 7)
    }

    @Test func unknownProducerMayStartAtAnySequence() async throws {
        let h = try Harness()
        let log = try h.createLog()
        #expect(try await h.appendOK(idempotentBatch(producerId: 99, epoch: 5, sequence: 42, count: 2), to: log).baseOffset.value == 0)
        #expect(await h.append(idempotentBatch(producerId: 99, epoch: 5, sequence: 42 + 3), to: log).errorKind == .outOfOrderSequence)
        #expect(try await h.appendOK(idempotentBatch(producerId: 99, epoch: 5, sequence: 44), to: log).baseOffset.value == 2)
        // Batches without a producer id are never checked.
        #expect(try await h.appendOK(makeBatch(), to: log).baseOffset.value == 3)
    }

    @Test func sequenceWrapsFromInt32MaxToZero() async throws {
        let h = try Harness()
        let log = try h.createLog()
        // Sequences max-1, max, 0: the batch's last sequence wraps.
        let wrapping = idempotentBatch(producerId: 5, sequence: .max - 1, count: 3)
        #expect(RecordBatchHeader(buffer: wrapping)?.lastSequence == 0)
        try await h.appendOK(wrapping, to: log)
        #expect(try await h.appendOK(idempotentBatch(producerId: 5, sequence: 1), to: log).baseOffset.value == 3)
        // And a batch ending exactly at Int32.max is followed by 0.
        try await h.appendOK(idempotentBatch(producerId: 6, sequence: .max), to: log)
        #expect(try await h.appendOK(idempotentBatch(producerId: 6, sequence: 0), to: log).baseOffset.value == 5)
    }

    @Test func batchesOfOneProducerInOneGroupSeeEachOther() async throws {
        let h = try Harness()
        let log = try h.createLog()
        // Hold the appender so every append below lands in one group.
        let gate = DispatchSemaphore(value: 0)
        #expect(h.manager.appender.enqueue { gate.wait() })
        let batches = [
            idempotentBatch(producerId: 11, sequence: 0, count: 3),  // 0...2
            idempotentBatch(producerId: 11, sequence: 3, count: 2),  // 3...4
            idempotentBatch(producerId: 11, sequence: 0, count: 3),  // duplicate of the first
            idempotentBatch(producerId: 11, sequence: 7),  // gap
            idempotentBatch(producerId: 11, sequence: 5),  // 5
            idempotentBatch(producerId: 11, sequence: 3, count: 2),  // duplicate of the second
            idempotentBatch(producerId: 11, epoch: 1, sequence: 0),  // bump: 6
            idempotentBatch(producerId: 11, epoch: 0, sequence: 6),  // fenced
        ]
        let results = Mutex<[Int: Result<AppendResult, CommitLogError>]>([:])
        for (index, batch) in batches.enumerated() {
            h.manager.appender.append(batch, to: log) { result in results.withLock { $0[index] = result } }
        }
        #expect(h.manager.appender.queuedCount >= batches.count)
        gate.signal()
        await waitUntil { results.withLock { $0.count } == batches.count }
        let outcome = results.withLock { $0 }
        #expect(try outcome[0]?.get().baseOffset == Offset(0))
        #expect(try outcome[1]?.get().baseOffset == Offset(3))
        #expect(try outcome[2]?.get().baseOffset == Offset(0))
        #expect(try outcome[2]?.get().lastOffset == Offset(2))
        #expect(outcome[3]?.errorKind == .outOfOrderSequence)
        #expect(try outcome[4]?.get().baseOffset == Offset(5))
        #expect(try outcome[5]?.get().baseOffset == Offset(3))
        #expect(try outcome[6]?.get().baseOffset == Offset(6))
        #expect(outcome[7]?.errorKind == .invalidProducerEpoch)
        #expect(log.highWatermark == 7)
        #expect(try h.allBatches(log).map(\.baseOffset) == [0, 3, 5, 6])
    }

    // MARK: Expiry

    @Test func producerStateExpiresAfterItsLastWrite() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.producerIdExpirationMs = 60_000
        let log = try h.createLog(configuration: configuration)
        try await h.appendOK(idempotentBatch(producerId: 21, sequence: 0), to: log)
        try await h.appendOK(idempotentBatch(producerId: 22, sequence: 0), to: log)
        h.clock.advance(by: 59_999)
        #expect(await h.append(idempotentBatch(producerId: 21, sequence: 5), to: log).errorKind == .outOfOrderSequence)
        try await h.appendOK(idempotentBatch(producerId: 22, sequence: 1), to: log)  // keeps 22 alive
        h.clock.advance(by: 1)
        // 21 is expired now: unknown, so any sequence is accepted (and the duplicate window is gone).
        #expect(try await h.appendOK(idempotentBatch(producerId: 21, sequence: 0), to: log).baseOffset.value == 3)
        #expect(await h.append(idempotentBatch(producerId: 22, sequence: 9), to: log).errorKind == .outOfOrderSequence)

        // The periodic sweep drops idle producers.
        h.clock.advance(by: 60_000)
        h.manager.producerIdExpirationCheckIntervalMs = 0
        h.manager.runPeriodicTasks()
        await waitUntil { h.manager.appender.perform { log.writer.producers.count } == 0 }
        #expect(h.manager.appender.perform { log.writer.producers.count } == 0)
    }

    // MARK: Snapshots

    @Test func snapshotByteLayoutMatchesKafka() throws {
        #expect(SnapshotCRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        let entry = ProducerStateEntry(
            producerId: 0x0102_0304_0506_0708, epoch: 3,
            batches: [
                ProducerBatchMetadata(firstSequence: 0, lastSequence: 4, firstOffset: 10, lastOffset: 14, maxTimestamp: 111),
                ProducerBatchMetadata(firstSequence: 5, lastSequence: 6, firstOffset: 20, lastOffset: 21, maxTimestamp: 222),
            ],
            lastTimestamp: 1_700_000_000_123)
        let bytes = ProducerSnapshotFile.encode([entry])
        #expect(bytes.count == 10 + 46)
        func be<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
        var expected: [UInt8] = be(Int16(1)) + [0, 0, 0, 0] + be(Int32(1))
        expected += be(Int64(0x0102_0304_0506_0708)) + be(Int16(3)) + be(Int32(6)) + be(Int64(21)) + be(Int32(1))
        expected += be(Int64(1_700_000_000_123)) + be(Int32(-1)) + be(Int64(-1))
        let crc = SnapshotCRC32C.checksum(expected[6...])
        expected.replaceSubrange(2..<6, with: be(crc))
        #expect(bytes == expected)

        // Decoding keeps the last batch only (as Kafka's snapshot does).
        let decoded = try ProducerSnapshotFile.decode(bytes)
        var lastOnly = entry
        lastOnly.batches = [ProducerBatchMetadata(firstSequence: 5, lastSequence: 6, firstOffset: 20, lastOffset: 21, maxTimestamp: 1_700_000_000_123)]
        #expect(decoded == [lastOnly])
        #expect(try ProducerSnapshotFile.decode(ProducerSnapshotFile.encode([])) == [])

        // A wrapped sequence range decodes back to its first sequence.
        let wrapped = ProducerStateEntry(
            producerId: 1, epoch: 0,
            batches: [ProducerBatchMetadata(firstSequence: .max - 1, lastSequence: 1, firstOffset: 0, lastOffset: 3, maxTimestamp: 5)],
            lastTimestamp: 5)
        #expect(try ProducerSnapshotFile.decode(ProducerSnapshotFile.encode([wrapped])).first?.batches.first?.firstSequence == .max - 1)

        // Any flipped byte after the CRC field is caught; a bad version too.
        for position in [0, 1, 7, 20, 55] {
            var broken = bytes
            broken[position] ^= 0x40
            #expect(throws: IndexCorruption.self) { try ProducerSnapshotFile.decode(broken) }
        }
        #expect(throws: IndexCorruption.self) { try ProducerSnapshotFile.decode(Array(bytes.dropLast())) }
    }

    @Test func cleanShutdownSnapshotsAtTheLogEndAndRestoresState() async throws {
        let h = try Harness()
        let log = try h.createLog()
        try await h.appendOK(idempotentBatch(producerId: 31, sequence: 0, count: 2), to: log)
        try await h.appendOK(idempotentBatch(producerId: 32, epoch: 4, sequence: 10), to: log)
        try await h.appendOK(idempotentBatch(producerId: 31, sequence: 2, count: 3), to: log)
        try h.manager.shutdown()
        let snapshot = "/data/orders-0/00000000000000000006.snapshot"
        let entries = try ProducerSnapshotFile.decode(try #require(try h.io.readWholeFile(snapshot)))
        #expect(entries.map(\.producerId) == [31, 32])
        #expect(entries.map(\.lastSequence) == [4, 10])
        #expect(entries.map(\.lastOffset) == [5, 2])

        let reloaded = try #require(try h.restart().first)
        #expect(h.manager.appender.perform { reloaded.writer.producers[32]?.epoch } == 4)
        // The last batch is still a duplicate after the restart (Kafka keeps one batch per producer).
        let retry = try await h.appendOK(idempotentBatch(producerId: 31, sequence: 2, count: 3), to: reloaded)
        #expect(retry.baseOffset == Offset(3) && retry.lastOffset == Offset(5))
        #expect(await h.append(idempotentBatch(producerId: 31, sequence: 0, count: 2), to: reloaded).errorKind == .outOfOrderSequence)
        #expect(await h.append(idempotentBatch(producerId: 32, epoch: 3, sequence: 11), to: reloaded).errorKind == .invalidProducerEpoch)
        #expect(try await h.appendOK(idempotentBatch(producerId: 31, sequence: 5), to: reloaded).baseOffset.value == 6)
    }

    @Test func rollsSnapshotAndKeepTheLastTwo() async throws {
        let h = try Harness()
        var configuration = RecoveryTests.configuration()
        configuration.segmentBytes = 600
        let log = try h.createLog(configuration: configuration)
        for sequence in 0..<40 {
            try await h.appendOK(idempotentBatch(producerId: 41, sequence: Int32(sequence)), to: log)
        }
        let bases = log.segmentBaseOffsets
        #expect(bases.count > 3)
        let snapshots = try ProducerSnapshotFile.list("/data/orders-0", io: h.io)
        #expect(snapshots == Array(bases.suffix(2)))
        // The newest snapshot holds the state before the active segment's first batch.
        let newest = try ProducerSnapshotFile.decode(try #require(try h.io.readWholeFile("/data/orders-0/\(SegmentFileName.stem(bases.last!)).snapshot")))
        #expect(newest.first?.lastOffset == bases.last! - 1)

        // A crash: the restart loads the newest snapshot and replays the active segment's batches.
        h.manager.appender.shutdown()
        let reloaded = try #require(try h.restart(configuration: configuration).first)
        #expect(h.manager.appender.perform { reloaded.writer.producers[41]?.lastSequence } == 39)
        #expect(try await h.appendOK(idempotentBatch(producerId: 41, sequence: 39), to: reloaded).baseOffset.value == 39)
        #expect(try await h.appendOK(idempotentBatch(producerId: 41, sequence: 40), to: reloaded).baseOffset.value == 40)
    }

    @Test func uncleanRecoveryForgetsTruncatedBatchesAndStaleSnapshots() async throws {
        let h = try Harness()
        let log = try h.createLog(configuration: RecoveryTests.configuration())
        for sequence in 0..<6 {
            try await h.appendOK(idempotentBatch(producerId: 51, sequence: Int32(sequence) * 2, count: 2), to: log)
        }
        #expect(log.highWatermark == 12)
        h.manager.appender.shutdown()  // a crash: no snapshot at the log end
        // A snapshot past what will survive (as a roll leaves one before its group is durable).
        var future = ProducerStateManager()
        future.update(producerId: 51, epoch: 0, firstSequence: 12, lastSequence: 13, firstOffset: 12, lastOffset: 13, maxTimestamp: 0, now: 0)
        try h.io.writeFileAtomically("/data/orders-0/00000000000000000014.snapshot", ProducerSnapshotFile.encode(future.sortedEntries))
        // Tear the last batch.
        let path = segmentPath(h.root, "orders-0", 0, ".log")
        let size = try #require(h.disk.currentContents(of: path)).count
        let fd = try h.io.open(path, mode: .readWrite)
        try h.io.truncate(fd, to: Int64(size - 5))
        h.io.close(fd)

        let reloaded = try #require(try h.restart(configuration: RecoveryTests.configuration()).first)
        #expect(reloaded.highWatermark == 10)
        #expect(!h.io.fileExists("/data/orders-0/00000000000000000014.snapshot"))
        #expect(h.manager.appender.perform { reloaded.writer.producers[51]?.lastSequence } == 9)
        // The torn batch was never acknowledged durably: its retry is appended again, at offset 10.
        #expect(try await h.appendOK(idempotentBatch(producerId: 51, sequence: 10, count: 2), to: reloaded).baseOffset.value == 10)
        #expect(try await h.appendOK(idempotentBatch(producerId: 51, sequence: 10, count: 2), to: reloaded).baseOffset.value == 10)
        #expect(try h.allBatches(reloaded).map(\.baseSequence) == [0, 2, 4, 6, 8, 10])
    }

    @Test func corruptSnapshotIsDeletedAndStateReplayedFromTheLog() async throws {
        let h = try Harness()
        let log = try h.createLog()
        try await h.appendOK(idempotentBatch(producerId: 61, sequence: 0, count: 2), to: log)
        try await h.appendOK(idempotentBatch(producerId: 61, sequence: 2), to: log)
        try h.manager.shutdown()
        let path = "/data/orders-0/00000000000000000003.snapshot"
        var bytes = try #require(try h.io.readWholeFile(path))
        bytes[12] ^= 1
        try h.io.writeFileAtomically(path, bytes)
        let reloaded = try #require(try h.restart().first)
        #expect(!h.io.fileExists(path))
        #expect(h.manager.appender.perform { reloaded.writer.producers[61]?.batches.map(\.firstSequence) } == [0, 2])
        #expect(try await h.appendOK(idempotentBatch(producerId: 61, sequence: 0, count: 2), to: reloaded).baseOffset.value == 0)
    }

    @Test func producersBelowTheLogStartAreDroppedOnLoad() async throws {
        let h = try Harness()
        let log = try h.createLog()
        try await h.appendOK(idempotentBatch(producerId: 71, sequence: 0), to: log)
        try await h.appendOK(idempotentBatch(producerId: 72, sequence: 0), to: log)
        #expect(try log.deleteRecords(before: Offset(1)) == Offset(1))
        try h.manager.shutdown()
        let reloaded = try #require(try h.restart().first)
        #expect(h.manager.appender.perform { reloaded.writer.producers.sortedEntries.map(\.producerId) } == [72])
    }

    // MARK: Producer ids

    @Test func producerIdsAreUniqueAcrossRestarts() throws {
        let disk = SimulatedDisk()
        try disk.createDirectory("/data")
        let allocator = ProducerIdAllocator(dataDirectory: "/data", io: disk)
        #expect(try allocator.allocate() == 0)
        #expect(try allocator.allocate() == 1)
        #expect(String(decoding: try #require(try disk.readWholeFile("/data/petrel-producer-ids")), as: UTF8.self) == "0\n1000\n")
        #expect(try allocator.wasIssued(999))
        #expect(try !allocator.wasIssued(1000))
        let restarted = ProducerIdAllocator(dataDirectory: "/data", io: disk)
        #expect(try restarted.allocate() == 1000)
        var ids: Set<Int64> = [1000]
        for _ in 0..<1500 { ids.insert(try restarted.allocate()) }
        #expect(ids.count == 1501 && ids.max() == 2500)
        #expect(String(decoding: try #require(try disk.readWholeFile("/data/petrel-producer-ids")), as: UTF8.self) == "0\n3000\n")
    }
}
