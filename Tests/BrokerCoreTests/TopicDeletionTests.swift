import BrokerCore
import CommitLog
import DiskIO
import Foundation
import KafkaWire
import Logging
import TestSupport
import Testing

/// DeleteTopics is all or nothing (TopicRegistry.deleteTopic): the commit point is the metadata
/// rewrite; before it nothing changes, after it the deletion is finished even across a crash.
@Suite struct TopicDeletionTests {
    let directory = TempDirectory(prefix: "topic-deletion")

    func open() throws -> (LogManager, TopicRegistry) {
        var configuration = BrokerConfiguration()
        try configuration.apply(key: "log.dirs", value: directory.path)
        let io = PosixFileIO()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let logManager = try LogManager(dataDirectory: directory.path, io: io, clock: SystemLogClock(), logger: logger)
        let registry = TopicRegistry(configuration: configuration, logManager: logManager, io: io, logger: logger)
        try registry.load()
        return (logManager, registry)
    }

    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: directory.appending(name)) }

    @Test func failedCommitChangesNothing() throws {
        defer { directory.remove() }
        let (logManager, registry) = try open()
        try registry.createTopic(name: "victim", partitions: 2, replicationFactor: 1, configs: [:])
        // The metadata rewrite cannot happen (its temporary file's name is taken by a directory).
        try FileManager.default.createDirectory(atPath: directory.appending("petrel-topics.json.tmp"), withIntermediateDirectories: false)
        #expect(throws: TopicError.self) { try registry.deleteTopic(name: "victim") }
        do { try registry.deleteTopic(name: "victim") } catch { #expect(error.code == .kafkaStorageError) }
        #expect(registry.topic(named: "victim")?.partitions.count == 2)
        #expect(exists("victim-0") && exists("victim-1"))
        #expect(logManager.log(for: TopicPartition(topic: "victim", partition: 0)) != nil)

        // Once the metadata can be written, it goes through completely.
        try FileManager.default.removeItem(atPath: directory.appending("petrel-topics.json.tmp"))
        try registry.deleteTopic(name: "victim")
        #expect(registry.topic(named: "victim") == nil)
        #expect(!exists("victim-0") && !exists("victim-1"))
        try logManager.shutdown()
        let (reopened, again) = try open()
        #expect(again.topic(named: "victim") == nil)
        try reopened.shutdown()
    }

    @Test func committedDeletionIsFinishedAtLoadInsteadOfAdopted() throws {
        defer { directory.remove() }
        var (logManager, registry) = try open()
        try registry.createTopic(name: "gone", partitions: 2, replicationFactor: 1, configs: [:])
        try registry.createTopic(name: "kept", partitions: 1, replicationFactor: 1, configs: [:])
        try logManager.shutdown()
        // A crash right after the commit point: the metadata no longer lists "gone" and names it as
        // being deleted, but its partition directories were not renamed yet.
        let url = URL(fileURLWithPath: directory.appending("petrel-topics.json"))
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        json["topics"] = (json["topics"] as? [[String: Any]] ?? []).filter { $0["name"] as? String != "gone" }
        json["deleting"] = ["gone"]
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        #expect(exists("gone-0") && exists("gone-1"))

        (logManager, registry) = try open()
        #expect(registry.topic(named: "gone") == nil)
        #expect(registry.topic(named: "kept") != nil)
        #expect(!exists("gone-0") && !exists("gone-1"))
        #expect(!String(decoding: try Data(contentsOf: url), as: UTF8.self).contains("deleting"))
        // The name is free again.
        try registry.createTopic(name: "gone", partitions: 1, replicationFactor: 1, configs: [:])
        #expect(registry.topic(named: "gone")?.partitions.count == 1)
        try logManager.shutdown()
    }
}
