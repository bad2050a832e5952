@testable import CommitLog
import DiskIO
import DiskIOTesting
import NIOCore
import RecordFormat
import SeededRandom
import TestSupport
import Testing

@Suite struct FaultTests {
    @Test func diskErrorTakesOnlyThatPartitionOffline() async throws {
        let h = try Harness()
        let sick = try h.createLog("sick")
        let healthy = try h.createLog("healthy")
        _ = try await h.appendOK(makeBatch(), to: sick)
        h.disk.injectFault(.submit, errno: 5, path: "sick-0/", persistent: true)  // EIO on every write of that partition

        let failed = await h.append(makeBatch(), to: sick)
        guard case .failure(let error) = failed else { Issue.record("append succeeded on a failing disk"); return }
        #expect(error.kind == .storage)
        #expect(error.diskError?.errno == 5)
        #expect(sick.isOffline)
        #expect(sick.highWatermark == 1)
        guard case .failure(let offline) = await h.append(makeBatch(), to: sick) else { Issue.record("offline log appended"); return }
        #expect(offline.kind == .offline)

        // The other partition, and reads of the sick one, keep working.
        #expect(try await h.appendOK(makeBatch(), to: healthy).baseOffset.value == 0)
        #expect(try await h.appendOK(makeBatch(), to: healthy).baseOffset.value == 1)
        #expect(try h.batches(of: try sick.read(from: Offset(0), maxBytes: 1000)).count == 1)

        // Shutdown completes but is not clean: the next start recovers.
        #expect(throws: Never.self) { try h.manager.shutdown() }
        #expect(!h.io.fileExists("/data/.kafka_cleanshutdown"))
        h.disk.clearFaults()
        let logs = try h.restart()
        #expect(logs.first { $0.topicPartition.topic == "sick" }?.highWatermark == 1)
        #expect(logs.first { $0.topicPartition.topic == "healthy" }?.highWatermark == 2)
    }

    @Test func failedSyncFailsTheDurableAppend() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.flushMessages = 1
        let log = try h.createLog(configuration: configuration)
        _ = try await h.appendOK(makeBatch(), to: log)
        h.disk.injectFault(.submit, errno: 5, after: 1, path: "orders-0/", persistent: false)  // the write passes, the sync fails
        guard case .failure(let error) = await h.append(makeBatch(), to: log) else { Issue.record("append succeeded"); return }
        #expect(error.kind == .storage)
        #expect(log.isOffline)
        #expect(log.highWatermark == 1)  // never exposed what was not durable
    }

    /// The contract the crash simulation relies on after an orderly shutdown: a partition whose final
    /// fdatasync fails goes offline with its recovery point left below the unsynced bytes, so its
    /// acknowledged but never-synced appends (flush.messages > 1) may be lost by a power cut; a
    /// partition that shut down cleanly loses nothing acknowledged.
    @Test func failedShutdownFlushPromisesOnlyTheRecoveryPoint() async throws {
        let h = try Harness()
        let sick = try h.createLog("sick")
        let healthy = try h.createLog("healthy")
        for _ in 0..<3 {
            _ = try await h.appendOK(makeBatch(), to: sick)
            _ = try await h.appendOK(makeBatch(), to: healthy)
        }
        #expect(sick.recoveryPoint == 0)  // acknowledged, not yet synced (flush.messages unset)
        h.disk.injectFault(.sync, errno: 5, path: "sick-0/", persistent: true)

        #expect(throws: CommitLogError.self) { try h.manager.shutdown() }
        #expect(sick.isOffline)
        #expect(sick.recoveryPoint == 0)  // never moved over bytes the failed sync left unsynced
        #expect(!healthy.isOffline)
        #expect(healthy.recoveryPoint == 3)
        #expect(!h.io.fileExists("/data/.kafka_cleanshutdown"))

        h.disk.clearFaults()
        var rng = SplitMix64(seed: 7)
        h.disk.crash(using: &rng, options: .dropAll)
        let logs = try h.restart()
        #expect(logs.first { $0.topicPartition.topic == "healthy" }?.highWatermark == 3)
        #expect(logs.first { $0.topicPartition.topic == "sick" }?.highWatermark == 0)
    }

    @Test func noSpaceDuringRollIsAStorageError() async throws {
        let h = try Harness(io: SimulatedDisk(capacityBytes: 6000))
        var configuration = testConfiguration()
        configuration.segmentBytes = 500
        configuration.segmentIndexBytes = 1024
        let log = try h.createLog(configuration: configuration)
        var sawStorageError = false
        for _ in 0..<40 {
            switch await h.append(makeBatch(recordCount: 1, valueBytes: 100), to: log) {
            case .success: continue
            case .failure(let error):
                #expect(error.kind == .storage || error.kind == .readOnly)
                if error.kind == .storage { #expect(error.diskError?.isNoSpace == true) }
                sawStorageError = true
            }
            if sawStorageError { break }
        }
        #expect(sawStorageError)
        // Out of space is recoverable: read-only, not offline (DiskFullTests).
        #expect(log.isReadOnly)
        #expect(!log.isOffline)
        // Whatever was acknowledged is readable.
        #expect(try h.allBatches(log).count == Int(log.highWatermark))
    }
}
