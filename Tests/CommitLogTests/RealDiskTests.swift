@testable import CommitLog
import DiskIO
import Foundation
import NIOCore
import RecordFormat
import TestSupport
import Testing
import URingIO

/// The same appends, restart and recovery on a real file system, through io_uring and plain syscalls.
@Suite struct RealDiskTests {
    enum Backend: String, CaseIterable, Sendable { case uring, posix }

    static func makeIO(_ backend: Backend) -> (any FileIO)? {
        switch backend {
        case .posix:
            return PosixFileIO()
        case .uring:
            do { return try URingFileIO(entries: 64) } catch {
                print("skipping io_uring test: io_uring is unavailable here (\(error))")
                return nil
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func appendRestartAndRecover(_ backend: Backend) async throws {
        guard let io = Self.makeIO(backend) else { return }
        let directory = TempDirectory(prefix: "commitlog-\(backend.rawValue)")
        let root = directory.appending("data")
        var configuration = testConfiguration()
        configuration.segmentBytes = 64 << 10
        configuration.flushMessages = 3
        var h: Harness? = try Harness(io: io, root: root)
        let log = try h!.createLog(configuration: configuration)
        let other = try h!.createLog("other", configuration: configuration)
        var expected: [[UInt8]] = []
        for i in 0..<200 {
            let batch = makeBatch(recordCount: 1 + i % 5, valueBytes: 50 + i * 7 % 900, timestamp: 1_700_000_000_000 + Int64(i))
            let result = try await h!.appendOK(batch, to: log)
            var stored = Array(batch.readableBytesView)
            withUnsafeBytes(of: result.baseOffset.value.bigEndian) { for k in 0..<8 { stored[k] = $0[k] } }
            for k in 12..<16 { stored[k] = 0 }
            expected.append(stored)
            if i % 3 == 0 { _ = try await h!.appendOK(makeBatch(), to: other) }
        }
        #expect(log.segmentBaseOffsets.count > 2)
        #expect(try RecoveryTests.storedBatches(h!, log) == expected)
        // Files are where Kafka puts them.
        #expect(FileManager.default.fileExists(atPath: "\(root)/orders-0/00000000000000000000.log"))
        #expect(FileManager.default.fileExists(atPath: "\(root)/orders-0/00000000000000000000.timeindex"))

        // Clean restart.
        try h!.manager.shutdown()
        #expect(FileManager.default.fileExists(atPath: "\(root)/.kafka_cleanshutdown"))
        var logs = try h!.restart(configuration: configuration)
        var reloaded = try #require(logs.first { $0.topicPartition.topic == "orders" })
        #expect(try RecoveryTests.storedBatches(h!, reloaded) == expected)
        #expect(logs.first { $0.topicPartition.topic == "other" }?.highWatermark == 67)

        // Unclean restart with a torn tail: the last batch goes, the rest stays.
        h!.manager.appender.shutdown()
        let lastBase = reloaded.segmentBaseOffsets.last!
        let lastPath = "\(root)/orders-0/\(SegmentFileName.log(lastBase))"
        let size = try #require(FileManager.default.attributesOfItem(atPath: lastPath)[.size] as? Int)
        let handle = try #require(FileHandle(forWritingAtPath: lastPath))
        try handle.truncate(atOffset: UInt64(size - 1))
        try handle.close()
        let freshIO = try #require(Self.makeIO(backend))
        h = try Harness(io: freshIO, root: root, start: false)
        logs = try h!.restart(configuration: configuration)
        reloaded = try #require(logs.first { $0.topicPartition.topic == "orders" })
        #expect(try RecoveryTests.storedBatches(h!, reloaded) == Array(expected.dropLast()))
        #expect(try await h!.appendOK(makeBatch(), to: reloaded).baseOffset.value == reloaded.highWatermark - 1)
        try h!.manager.shutdown()
        h = nil
    }
}
