@testable import CommitLog
import DiskIO
import DiskIOTesting
import NIOCore
import RecordFormat
import Testing

@Suite struct LogManagerTests {
    @Test func createFindAndRefuseDuplicates() throws {
        let h = try Harness()
        let tp = TopicPartition(topic: "orders", partition: 3)
        var configuration = LogConfiguration()
        configuration.segmentIndexBytes = 1 << 20
        let log = try h.manager.createLog(tp, configuration: configuration)
        #expect(h.manager.log(for: tp) === log)
        #expect(h.io.isDirectory("/data/orders-3"))
        #expect(h.io.fileExists("/data/orders-3/00000000000000000000.log"))
        // Index files exist (Kafka's layout) but are written only when the segment stops being active.
        #expect(h.disk.currentContents(of: "/data/orders-3/00000000000000000000.index")?.count == 0)
        #expect(h.disk.currentContents(of: "/data/orders-3/00000000000000000000.timeindex")?.count == 0)
        #expect(throws: CommitLogError.self) { try h.manager.createLog(tp, configuration: configuration) }
        #expect(h.manager.allLogs.map(\.topicPartition) == [tp])
    }

    @Test func deleteRenamesThenRemovesLater() async throws {
        let h = try Harness()
        let log = try h.createLog()
        let keep = try h.createLog("keep")
        _ = try await h.appendOK(makeBatch(), to: log)
        _ = try await h.appendOK(makeBatch(), to: keep)
        let held = try log.read(from: Offset(0), maxBytes: 1000)  // a fetch in flight holds the file

        try h.manager.deleteLog(TopicPartition(topic: "orders", partition: 0))
        #expect(h.manager.log(for: TopicPartition(topic: "orders", partition: 0)) == nil)
        #expect(!h.io.fileExists("/data/orders-0"))
        let renamed = try h.io.listDirectory("/data").filter { $0.hasPrefix("orders-0.") && $0.hasSuffix("-delete") }
        #expect(renamed.count == 1)
        #expect(renamed.first?.count == "orders-0.".count + 32 + "-delete".count)
        guard case .failure(let error) = await h.append(makeBatch(), to: log) else { Issue.record("appended to a deleted log"); return }
        #expect(error.kind == .notFound)
        #expect(try h.bytes(of: held).count == held.byteCount)  // still readable through the open handle
        #expect(throws: CommitLogError.self) { try h.manager.deleteLog(TopicPartition(topic: "orders", partition: 0)) }

        // Removed once file.delete.delay.ms passed.
        h.manager.runPeriodicTasks()
        try await Task.sleep(nanoseconds: 20_000_000)
        #expect(h.io.isDirectory("/data/\(renamed[0])"))
        h.clock.advance(by: 60_001)
        h.manager.runPeriodicTasks()
        await waitUntil { !h.io.isDirectory("/data/\(renamed[0])") }
        #expect(!h.io.isDirectory("/data/\(renamed[0])"))

        // The same partition can be created again, and the other one was untouched.
        let again = try h.createLog()
        #expect(try await h.appendOK(makeBatch(), to: again).baseOffset.value == 0)
        #expect(try await h.appendOK(makeBatch(), to: keep).baseOffset.value == 1)
    }

    @Test func strayDeletedDirectoriesAreRemovedAtLoad() async throws {
        let h = try Harness()
        _ = try h.createLog()
        try h.manager.deleteLog(TopicPartition(topic: "orders", partition: 0))
        try h.manager.shutdown()
        let logs = try h.restart()
        #expect(logs.isEmpty)
        #expect(try h.io.listDirectory("/data").filter { $0.hasSuffix("-delete") }.isEmpty)
    }

    @Test func shutdownWritesCheckpointsAndMarker() async throws {
        let h = try Harness()
        let a = try h.createLog("a")
        let b = try h.createLog("b", 2)
        for _ in 0..<3 { _ = try await h.appendOK(makeBatch(), to: a) }
        _ = try await h.appendOK(makeBatch(recordCount: 4), to: b)
        try h.manager.shutdown()
        let recovery = String(decoding: try #require(try h.io.readWholeFile("/data/recovery-point-offset-checkpoint")), as: UTF8.self)
        #expect(recovery == "0\n2\na 0 3\nb 2 4\n")
        let starts = String(decoding: try #require(try h.io.readWholeFile("/data/log-start-offset-checkpoint")), as: UTF8.self)
        #expect(starts == "0\n2\na 0 0\nb 2 0\n")
        #expect(h.io.fileExists("/data/.kafka_cleanshutdown"))
        // Everything is durable.
        for path in h.disk.allFiles() { #expect(h.disk.unsyncedChangeCount(of: path) == 0, "\(path)") }
        // Appends after shutdown fail.
        guard case .failure(let error) = await h.append(makeBatch(), to: a) else { Issue.record("appended after shutdown"); return }
        #expect(error.kind == .shuttingDown)
        let logs = try h.restart()
        #expect(logs.map(\.highWatermark) == [3, 4])
    }

    @Test func flushMsFlushesPeriodically() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.flushMs = 1000
        let log = try h.createLog(configuration: configuration)
        _ = try await h.appendOK(makeBatch(), to: log)
        let path = segmentPath(h.root, "orders-0", 0, ".log")
        #expect(h.disk.unsyncedChangeCount(of: path) > 0)
        h.clock.advance(by: 1000)
        h.manager.runPeriodicTasks()
        await waitUntil { h.disk.unsyncedChangeCount(of: path) == 0 }
        #expect(h.disk.unsyncedChangeCount(of: path) == 0)
    }
}
