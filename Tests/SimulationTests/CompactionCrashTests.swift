@testable import CommitLog
import DiskIO
import DiskIOTesting
import Logging
import NIOCore
import RecordCompression
import RecordFormat
import SeededRandom
import Synchronization
import TestSupport
import Testing

/// One crash test per step of the cleaner's segment swap (`SegmentSwap`): the cleaner is stopped at
/// the step as if the process died there, the disk crashes (unsynced writes kept, dropped or torn),
/// and a fresh `LogManager` loads the directory. The log must be valid — offsets increasing, every
/// record one that was appended at that offset, the latest record of every key present, the same log
/// end — rolled back before the `.log.swap` rename and rolled forward after it; and cleaning then
/// converges to the reference.
@Suite struct CompactionCrashTests {
    struct Stored: Equatable {
        var offset: Int64
        var key: [UInt8]?
        var value: [UInt8]?
    }

    static let rolledBack: Set<SegmentSwap.Step> = [.cleanedWritten, .renamingToSwap]

    static func configuration() -> LogConfiguration {
        var configuration = LogConfiguration()
        configuration.segmentIndexBytes = 4096
        configuration.segmentBytes = 1500
        configuration.indexIntervalBytes = 200
        configuration.cleanupPolicy = .compact
        configuration.minCleanableDirtyRatio = 0
        configuration.flushMessages = 1  // appended data is durable: the crash hits only the cleaner's files
        return configuration
    }

    static let logger: Logger = {
        var logger = Logger(label: "petrel.compaction-crash")
        logger.logLevel = .critical
        return logger
    }()

    static func records(_ log: PartitionLog, io: any FileIO) throws -> [Stored] {
        var result: [Stored] = []
        var offset = log.logStartOffset
        while offset < log.highWatermark {
            let read = try log.read(from: Offset(offset), maxBytes: 1 << 20)
            var bytes: [UInt8] = []
            for slice in read.slices {
                var chunk = [UInt8](repeating: 0, count: slice.length)
                _ = try chunk.withUnsafeMutableBytes { try io.read(slice.file.fd, into: $0, at: slice.position.value) }
                bytes += chunk
            }
            var buffer = ByteBuffer(bytes: bytes)
            guard buffer.readableBytes > 0 else { break }
            while buffer.readableBytes > 0 {
                let (header, decoded) = try RecordBatch.decodeRecords(in: buffer)
                buffer.moveReaderIndex(forwardBy: header.totalByteCount)
                if header.lastOffset < offset { continue }
                for record in decoded {
                    result.append(Stored(
                        offset: header.baseOffset + Int64(record.offsetDelta), key: record.key.map { Array(buffer: $0) },
                        value: record.value.map { Array(buffer: $0) }))
                }
                offset = header.nextOffset
            }
        }
        return result
    }

    static func append(_ manager: LogManager, _ log: PartitionLog, _ batch: ByteBuffer) async throws {
        _ = try await withCheckedContinuation { continuation in
            manager.appender.append(batch, to: log) { continuation.resume(returning: $0) }
        }.get()
    }

    @Test(arguments: SegmentSwap.Step.allCases)
    func crashAtSwapStepRecoversToAValidLog(step: SegmentSwap.Step) async throws {
        let seed = TestSeed().value
        var rng = SplitMix64(seed: seed)
        let disk = SimulatedDisk()
        let killable = KillableIO(disk)
        let clock = SimulatedClock()
        let tp = TopicPartition(topic: "compacted", partition: 0)
        let manager = try LogManager(dataDirectory: "/data", io: killable, clock: clock, logger: Self.logger)
        manager.appender.start()
        let log = try manager.createLog(tp, configuration: Self.configuration())
        for round in 0..<40 {
            var builder = RecordBatchBuilder()
            for index in 0..<4 {
                let key = Int.random(in: 0..<12, using: &rng)
                let tombstone = Int.random(in: 0..<8, using: &rng) == 0
                builder.append(
                    key: Array("key-\(key)".utf8), value: tombstone ? nil : Array("v\(round)-\(index)-\(String(repeating: "p", count: 20))".utf8),
                    timestamp: clock.wallMilliseconds())
            }
            var batch = builder.build()
            if round % 3 == 0 { batch = try RecordBatch.compressed(batch, codec: .lz4) }
            try await Self.append(manager, log, batch)
        }
        let original = try Self.records(log, io: killable)
        let logEnd = log.highWatermark
        #expect(log.segmentBaseOffsets.count > 3)

        let cleaner = try #require(manager.startCleaner(startThread: false))
        cleaner.crashHook.withLock { $0 = { $0 == step } }
        #expect(cleaner.cleanOnce() == nil)
        // The process dies: nothing of the old manager reaches the disk any more, then the disk crashes.
        killable.kill()
        manager.appender.shutdown()
        disk.crash(using: &rng, options: SimulatedDisk.CrashOptions(keepWeight: 1, dropWeight: 1, tearWeight: 1, tornWritesLeaveGarbage: true))

        let restarted = try LogManager(dataDirectory: "/data", io: disk, clock: clock, logger: Self.logger)
        let loaded = try restarted.loadLogs { _ in Self.configuration() }
        restarted.appender.start()
        let reloaded = try #require(loaded.first, "seed \(seed)")
        let leftovers = try disk.listDirectory("/data/compacted-0").filter { $0.hasSuffix(".cleaned") || $0.hasSuffix(".swap") }
        #expect(leftovers.isEmpty, "seed \(seed): \(leftovers)")

        let recovered = try Self.records(reloaded, io: disk)
        #expect(reloaded.highWatermark == logEnd, "seed \(seed)")
        let byOffset = Dictionary(uniqueKeysWithValues: original.map { ($0.offset, $0) })
        for (a, b) in zip(recovered, recovered.dropFirst()) where a.offset >= b.offset {
            Issue.record("seed \(seed): offsets not increasing at \(a.offset), \(b.offset)")
        }
        for record in recovered where byOffset[record.offset] != record {
            Issue.record("seed \(seed): offset \(record.offset) holds a record that was never appended there")
        }
        var latest: [[UInt8]: Stored] = [:]
        for record in original { if let key = record.key { latest[key] = record } }
        for (_, record) in latest where !recovered.contains(record) {
            Issue.record("seed \(seed): the latest record of a key (offset \(record.offset)) was lost")
        }
        if Self.rolledBack.contains(step) {
            #expect(recovered == original, "seed \(seed): a crash before the commit point must roll back")
        } else {
            #expect(recovered.count < original.count, "seed \(seed): a crash after the commit point must roll forward")
        }

        // Cleaning resumes and converges to the reference: the latest record per key below the active segment.
        let resumed = try #require(restarted.startCleaner(startThread: false))
        resumed.cleanUntilIdle()
        let cleanedUpTo = try #require(resumed.firstDirtyOffset(tp))
        var latestBelow: [[UInt8]: Int64] = [:]
        for record in original where record.offset < cleanedUpTo { if let key = record.key { latestBelow[key] = record.offset } }
        let final = try Self.records(reloaded, io: disk)
        let reference = original.filter { record in
            guard record.offset < cleanedUpTo else { return true }
            guard let key = record.key else { return false }
            return latestBelow[key] == record.offset
        }
        #expect(final == reference, "seed \(seed) (PETREL_TEST_SEED=\(seed))")
        try restarted.shutdown()
    }
}
