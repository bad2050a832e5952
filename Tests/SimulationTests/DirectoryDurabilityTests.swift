@testable import CommitLog
import DiskIO
import DiskIOTesting
import Logging
import NIOCore
import RecordFormat
import SeededRandom
import Testing

/// The simulated disk keeps directory entries only once their directory is fsynced, so a store that
/// left one out loses acknowledged data in a crash test. The same scenario runs against the store as
/// it is (its directory fsyncs: the data directory's parent at first start, the partition directory
/// and the data directory at partition creation, the partition directory at every roll) and against
/// the store with every directory fsync dropped.
@Suite struct DirectoryDurabilityTests {
    static let logger: Logger = {
        var logger = Logger(label: "petrel.directory-durability")
        logger.logLevel = .critical
        return logger
    }()

    /// Appends durable batches (flush.messages=1, so each is fdatasynced before it is acknowledged),
    /// rolling a few segments, then crashes the disk losing every unsynced change; returns the log end
    /// a fresh manager recovers (nil: the partition is gone) and the acknowledged log end.
    static func crashAfterDurableAppends(forgetDirectorySyncs: Bool) async throws -> (recovered: Int64?, acknowledged: Int64) {
        let disk = SimulatedDisk()
        let io = KillableIO(disk, forgetsDirectorySyncs: forgetDirectorySyncs)
        let clock = SimulatedClock()
        var configuration = LogConfiguration()
        configuration.segmentIndexBytes = 4096
        configuration.segmentBytes = 600
        configuration.flushMessages = 1
        let manager = try LogManager(dataDirectory: "/data", io: io, clock: clock, logger: logger, randomSeed: 1)
        manager.appender.start()
        let log = try manager.createLog(TopicPartition(topic: "t", partition: 0), configuration: configuration)
        var acknowledged: Int64 = 0
        for index in 0..<12 {
            var builder = RecordBatchBuilder()
            builder.append(key: nil, value: Array("value-\(index)-\(String(repeating: "x", count: 80))".utf8), timestamp: clock.wallMilliseconds())
            let result = try await withCheckedThrowingContinuation { continuation in
                manager.appender.append(builder.build(), to: log) { continuation.resume(with: $0) }
            }
            acknowledged = result.lastOffset.value + 1
        }
        #expect(log.segmentBaseOffsets.count > 2)
        io.kill()
        manager.appender.shutdown()
        var rng = SplitMix64(seed: 1)
        disk.crash(using: &rng, options: .dropAll)

        let restarted = try LogManager(dataDirectory: "/data", io: disk, clock: clock, logger: logger, randomSeed: 1)
        let loaded = try restarted.loadLogs { _ in configuration }
        return (loaded.first?.highWatermark, acknowledged)
    }

    @Test func theStoreKeepsAcknowledgedDataThroughACrash() async throws {
        let outcome = try await Self.crashAfterDurableAppends(forgetDirectorySyncs: false)
        #expect(outcome.recovered == outcome.acknowledged)
    }

    @Test func aMissingDirectoryFsyncLosesAcknowledgedData() async throws {
        let outcome = try await Self.crashAfterDurableAppends(forgetDirectorySyncs: true)
        #expect(outcome.recovered == nil || outcome.recovered! < outcome.acknowledged)
    }
}
