import BrokerCore
import CommitLog
import DiskIO
import GroupCoordination
import KafkaWire
import Logging
import NIOCore
import NIOPosix
import RecordCompression
import RecordFormat
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Drives `Broker` through encoded requests, as the server does, on a real event loop.
final class BrokerHarness: @unchecked Sendable {
    let directory = TempDirectory(prefix: "broker")
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let broker: Broker
    var correlationId: Int32 = 0

    init(sets: [String: String] = [:]) throws {
        var configuration = BrokerConfiguration()
        try configuration.apply(key: "log.dirs", value: directory.path)
        for (key, value) in sets { try configuration.apply(key: key, value: value) }
        let io = PosixFileIO()
        let logger = Logger(label: "test")
        let logManager = try LogManager(dataDirectory: directory.path, io: io, clock: SystemLogClock(), logger: logger)
        broker = Broker(
            configuration: configuration, logManager: logManager, io: io, clock: SystemLogClock(), clusterId: "test-cluster",
            groupScheduler: EventLoopCoordinatorScheduler(eventLoop: group.next()), logger: logger)
        try broker.start()
    }

    deinit {
        try? broker.shutdown()
        group.shutdownGracefully { _ in }
        directory.remove()
    }

    /// Sends a request and returns the raw action.
    func action<Request: KafkaRequest>(_ request: Request, version: Int16) throws -> ResponseAction {
        correlationId += 1
        var writer = WireWriter()
        try request.write(to: &writer, version: version)
        let body = writer.finishSingleBuffer()!
        let eventLoop = group.next()
        let context = RequestContext(
            header: RequestHeader(apiKey: Request.apiKey, apiVersion: version, correlationId: correlationId, clientId: "test"),
            eventLoop: eventLoop, allocator: ByteBufferAllocator())
        let promise = eventLoop.makePromise(of: ResponseAction.self)
        let broker = self.broker
        eventLoop.execute { broker.handle(context, body: body) { promise.succeed($0) } }
        return try promise.futureResult.wait()
    }

    /// Sends a request and decodes its response, reading file regions back with pread.
    func call<Request: KafkaRequest>(_ request: Request, version: Int16) throws -> Request.Response {
        let action = try action(request, version: version)
        guard case .send(let frame) = action else { throw TestFailure("expected a response, got \(action)") }
        defer { frame.releaseFileRegions() }
        var buffer = ByteBuffer()
        for chunk in frame.chunks {
            switch chunk {
            case .bytes(let bytes): buffer.writeImmutableBuffer(bytes)
            case .file(let region):
                let count = region.readableBytes
                try region.fileHandle.withUnsafeFileDescriptor { fd in
                    _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
                        pread(fd, pointer.baseAddress!, count, off_t(region.readerIndex))
                    }
                }
            }
        }
        let size = buffer.readInteger(as: Int32.self)!
        #expect(Int(size) == buffer.readableBytes)
        let header = try ResponseHeader.read(from: &buffer, version: Request.apiKey.responseHeaderVersion(apiVersion: version))
        #expect(header.correlationId == correlationId)
        return try Request.Response(from: &buffer, version: version)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func makeBatch(_ values: [String], keyPrefix: String = "k") -> ByteBuffer {
    var builder = RecordBatchBuilder()
    for (index, value) in values.enumerated() {
        builder.append(key: Array("\(keyPrefix)\(index)".utf8), value: Array(value.utf8), headers: [], timestamp: 1_700_000_000_000 + Int64(index))
    }
    return builder.build()
}

func produceRequest(topic: String, partition: Int32 = 0, batch: ByteBuffer?, acks: Int16 = -1) -> ProduceRequest {
    ProduceRequest(
        transactionalId: nil, acks: acks, timeoutMs: 5000,
        topicData: [.init(name: topic, partitionData: [.init(index: partition, records: batch.map { Records($0) })])])
}

func fetchRequest(topic: String, offset: Int64, maxWaitMs: Int32 = 0, minBytes: Int32 = 1) -> FetchRequest {
    FetchRequest(
        replicaId: -1, maxWaitMs: maxWaitMs, minBytes: minBytes, maxBytes: 50 << 20, isolationLevel: 0, sessionId: 0, sessionEpoch: -1,
        topics: [.init(topic: topic, partitions: [.init(partition: 0, currentLeaderEpoch: -1, fetchOffset: offset, logStartOffset: -1, partitionMaxBytes: 1 << 20)])])
}

@Suite(.serialized) struct BrokerTests {
    @Test func apiVersionsAdvertisesServedRangesAndAnswersUnsupportedInV0Layout() throws {
        let harness = try BrokerHarness()
        let response = try harness.call(ApiVersionsRequest(clientSoftwareName: "petrel-test", clientSoftwareVersion: "1.0"), version: 3)
        #expect(response.errorCode == 0)
        let keys = Dictionary(uniqueKeysWithValues: response.apiKeys.map { ($0.apiKey, ($0.minVersion, $0.maxVersion)) })
        #expect(keys[APIKey.produce.rawValue]?.0 == 0)  // advertised like Kafka 4 (KAFKA-18659)
        #expect(keys[APIKey.produce.rawValue]?.1 == 12)
        // Transactions v2: finalized transaction.version 2 goes with EndTxn v5 and Produce v12.
        #expect(keys[APIKey.endTxn.rawValue]?.1 == 5)
        #expect(keys[APIKey.txnOffsetCommit.rawValue]?.1 == 5)
        #expect(response.finalizedFeaturesEpoch >= 0)
        #expect(response.finalizedFeatures.map { "\($0.name)=\($0.maxVersionLevel)" } == ["transaction.version=2"])
        #expect(response.supportedFeatures.map { "\($0.name)=\($0.minVersion)-\($0.maxVersion)" } == ["transaction.version=0-2"])
        #expect(keys[APIKey.fetch.rawValue]?.0 == 0)  // v0-3 served by down-conversion (legacy formats on by default)
        #expect(keys[APIKey.apiVersions.rawValue]?.1 == 4)

        // A version from the future: v0 body, error 35, one entry for ApiVersions.
        let action = try harness.action(ApiVersionsRequest(), version: 0)
        guard case .send = action else { Issue.record("no response"); return }
        var future = ApiVersionsRequest()
        future.clientSoftwareName = "x"
        harness.correlationId += 1
        let eventLoop = harness.group.next()
        let context = RequestContext(
            header: RequestHeader(apiKey: .apiVersions, apiVersion: 9, correlationId: 77, clientId: nil), eventLoop: eventLoop,
            allocator: ByteBufferAllocator())
        let promise = eventLoop.makePromise(of: ResponseAction.self)
        harness.broker.handle(context, body: ByteBuffer(bytes: [0, 0, 0])) { promise.succeed($0) }
        guard case .send(let frame) = try promise.futureResult.wait(), var buffer = Records(chunks: frame.chunks).singleBuffer else {
            Issue.record("no response to the unsupported version")
            return
        }
        _ = buffer.readInteger(as: Int32.self)
        #expect(buffer.readInteger(as: Int32.self) == 77)
        let v0 = try ApiVersionsResponse(from: &buffer, version: 0)
        #expect(v0.errorCode == KafkaErrorCode.unsupportedVersion.rawValue)
        #expect(v0.apiKeys.count == 1)
        #expect(v0.apiKeys.first?.apiKey == APIKey.apiVersions.rawValue)
    }

    @Test func produceAnswersLogAppendTimeOnlyForLogAppendTimeTopics() throws {
        let harness = try BrokerHarness()
        _ = try harness.call(
            CreateTopicsRequest(topics: [
                .init(name: "create", numPartitions: 1, replicationFactor: 1),
                .init(name: "append", numPartitions: 1, replicationFactor: 1, configs: [.init(name: "message.timestamp.type", value: "LogAppendTime")]),
            ]), version: 7)
        let create = try harness.call(produceRequest(topic: "create", batch: makeBatch(["a"])), version: 9).responses[0].partitionResponses[0]
        #expect(create.errorCode == 0 && create.baseOffset == 0 && create.logStartOffset == 0)
        #expect(create.logAppendTimeMs == -1)  // Kafka's wire value for "not LogAppendTime"
        _ = try harness.call(produceRequest(topic: "append", batch: makeBatch(["a", "b"])), version: 9)
        let append = try harness.call(produceRequest(topic: "append", batch: makeBatch(["c"])), version: 9).responses[0].partitionResponses[0]
        #expect(append.errorCode == 0 && append.baseOffset == 2 && append.logStartOffset == 0)
        #expect(append.logAppendTimeMs > 0)
    }

    @Test(arguments: [true, false]) func produceThenFetchReturnsTheBatchWithAssignedOffsets(zeroCopy: Bool) throws {
        let harness = try BrokerHarness(sets: ["petrel.fetch.zero.copy": String(zeroCopy)])
        _ = try harness.call(CreateTopicsRequest(topics: [.init(name: "t", numPartitions: 1, replicationFactor: 1)]), version: 7)
        let first = try harness.call(produceRequest(topic: "t", batch: makeBatch(["a", "b", "c"])), version: 9)
        #expect(first.responses[0].partitionResponses[0].errorCode == 0)
        #expect(first.responses[0].partitionResponses[0].baseOffset == 0)
        let second = try harness.call(produceRequest(topic: "t", batch: makeBatch(["d"])), version: 9)
        #expect(second.responses[0].partitionResponses[0].baseOffset == 3)

        let fetched = try harness.call(fetchRequest(topic: "t", offset: 1), version: 12)
        let partition = fetched.responses[0].partitions[0]
        #expect(partition.errorCode == 0)
        #expect(partition.highWatermark == 4)
        var bytes = partition.records!.singleBuffer!
        var values: [String] = []
        var offsets: [Int64] = []
        while bytes.readableBytes > 0 {
            let header = try RecordBatch.validate(bytes, requireExactLength: false)
            let batch = bytes.readSlice(length: header.totalByteCount)!
            for record in try RecordBatch.records(in: batch) {
                offsets.append(header.baseOffset + Int64(record.offsetDelta))
                values.append(String(buffer: record.value!))
            }
        }
        // Fetch returns whole batches from the one containing offset 1.
        #expect(values == ["a", "b", "c", "d"])
        #expect(offsets == [0, 1, 2, 3])
    }

    @Test func produceErrorsArePerPartition() throws {
        let harness = try BrokerHarness(sets: ["auto.create.topics.enable": "false"])
        _ = try harness.call(CreateTopicsRequest(topics: [.init(name: "ok", numPartitions: 1, replicationFactor: 1)]), version: 7)
        var corrupt = makeBatch(["x"])
        corrupt.setInteger(UInt8(0xFF), at: corrupt.readerIndex + 70)  // inside the CRC-covered records
        var request = produceRequest(topic: "ok", batch: makeBatch(["fine"]))
        request.topicData.append(.init(name: "ok", partitionData: [.init(index: 7, records: Records(makeBatch(["y"])))]))
        request.topicData.append(.init(name: "missing", partitionData: [.init(index: 0, records: Records(makeBatch(["z"])))]))
        let response = try harness.call(request, version: 9)
        #expect(response.responses[0].partitionResponses[0].errorCode == 0)
        #expect(response.responses[1].partitionResponses[0].errorCode == KafkaErrorCode.unknownTopicOrPartition.rawValue)
        #expect(response.responses[2].partitionResponses[0].errorCode == KafkaErrorCode.unknownTopicOrPartition.rawValue)

        let bad = try harness.call(produceRequest(topic: "ok", batch: corrupt), version: 9)
        #expect(bad.responses[0].partitionResponses[0].errorCode == KafkaErrorCode.corruptMessage.rawValue)
        var twoBatches = makeBatch(["p"])
        twoBatches.writeImmutableBuffer(makeBatch(["q"]))
        let two = try harness.call(produceRequest(topic: "ok", batch: twoBatches), version: 9)
        #expect(two.responses[0].partitionResponses[0].errorCode == KafkaErrorCode.invalidRecord.rawValue)
        var legacy = makeBatch(["old"])
        legacy.setInteger(Int8(1), at: legacy.readerIndex + 16)
        let old = try harness.call(produceRequest(topic: "ok", batch: legacy), version: 9)
        #expect(old.responses[0].partitionResponses[0].errorCode == KafkaErrorCode.invalidRecord.rawValue)
        let badAcks = try harness.call(produceRequest(topic: "ok", batch: makeBatch(["a"]), acks: 2), version: 9)
        #expect(badAcks.responses[0].partitionResponses[0].errorCode == KafkaErrorCode.invalidRequiredAcks.rawValue)

        // Nothing bad reached the log: only the one good batch.
        let offsets = try harness.call(
            ListOffsetsRequest(replicaId: -1, topics: [.init(name: "ok", partitions: [.init(partitionIndex: 0, timestamp: -1)])]), version: 5)
        #expect(offsets.topics[0].partitions[0].offset == 1)
    }

    @Test func acksZeroGetsNoResponseAndProduceV2ClosesTheConnection() throws {
        let harness = try BrokerHarness()
        _ = try harness.call(CreateTopicsRequest(topics: [.init(name: "t", numPartitions: 1, replicationFactor: 1)]), version: 7)
        guard case .noResponse = try harness.action(produceRequest(topic: "t", batch: makeBatch(["a"]), acks: 0), version: 9) else {
            Issue.record("acks=0 must not be answered")
            return
        }
        // A failed acks=0 produce closes the connection (Kafka), since no response can carry the error.
        guard case .close = try harness.action(produceRequest(topic: "no-such-topic", batch: makeBatch(["a"]), acks: 0), version: 9) else {
            Issue.record("a failed acks=0 produce must close the connection")
            return
        }
        // A malformed Produce v2 (empty body) closes the connection (v0-2 message sets themselves
        // are served by conversion: test_legacy_clients.py).
        var context = RequestContext(
            header: RequestHeader(apiKey: .produce, apiVersion: 2, correlationId: 1), eventLoop: harness.group.next(), allocator: ByteBufferAllocator())
        context.clientAddress = "test"
        let promise = context.eventLoop.makePromise(of: ResponseAction.self)
        harness.broker.handle(context, body: ByteBuffer()) { promise.succeed($0) }
        guard case .close = try promise.futureResult.wait() else {
            Issue.record("a malformed Produce v2 must close the connection")
            return
        }
    }

    @Test func parkedFetchIsWokenByTheAppendNotTheTimer() throws {
        let harness = try BrokerHarness()
        _ = try harness.call(CreateTopicsRequest(topics: [.init(name: "t", numPartitions: 1, replicationFactor: 1)]), version: 7)
        let eventLoop = harness.group.next()
        var writer = WireWriter()
        try fetchRequest(topic: "t", offset: 0, maxWaitMs: 30_000).write(to: &writer, version: 12)
        let context = RequestContext(
            header: RequestHeader(apiKey: .fetch, apiVersion: 12, correlationId: 99), eventLoop: eventLoop, allocator: ByteBufferAllocator())
        let promise = eventLoop.makePromise(of: ResponseAction.self)
        let body = writer.finishSingleBuffer()!
        let started = ContinuousClock.now
        let broker = harness.broker
        eventLoop.execute { broker.handle(context, body: body) { promise.succeed($0) } }
        Thread_sleep(milliseconds: 200)
        _ = try harness.call(produceRequest(topic: "t", batch: makeBatch(["wake"])), version: 9)
        let action = try promise.futureResult.wait()
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(10), "the fetch waited for its 30 s timer instead of the append")
        guard case .send(let frame) = action else { Issue.record("no fetch response"); return }
        #expect(frame.byteCount > 61)
        frame.releaseFileRegions()
    }

    @Test func adminErrorsUseKafkaCodes() throws {
        let harness = try BrokerHarness()
        let create = try harness.call(
            CreateTopicsRequest(topics: [
                .init(name: "a", numPartitions: 2, replicationFactor: 1, configs: [.init(name: "retention.ms", value: "1000")]),
                .init(name: "bad name", numPartitions: 1, replicationFactor: 1),
                .init(name: "b", numPartitions: 0, replicationFactor: 1),
                .init(name: "c", numPartitions: 1, replicationFactor: 3),
                .init(name: "d", numPartitions: 1, replicationFactor: 1, configs: [.init(name: "retention.ms", value: "x")]),
            ]), version: 7)
        #expect(create.topics.map(\.errorCode) == [0, 17, 37, 38, 40].map { Int16($0) })
        let again = try harness.call(CreateTopicsRequest(topics: [.init(name: "a", numPartitions: 1, replicationFactor: 1)]), version: 7)
        #expect(again.topics[0].errorCode == KafkaErrorCode.topicAlreadyExists.rawValue)

        let described = try harness.call(
            DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: "a", configurationKeys: nil)], includeSynonyms: true), version: 4)
        let configs = Dictionary(uniqueKeysWithValues: described.results[0].configs.map { ($0.name, $0) })
        #expect(configs["retention.ms"]?.value == "1000")
        #expect(configs["retention.ms"]?.configSource == 1)
        #expect(configs["segment.bytes"]?.value == "1073741824")
        #expect(configs["segment.bytes"]?.configSource == 5)

        let altered = try harness.call(
            IncrementalAlterConfigsRequest(resources: [.init(resourceType: 2, resourceName: "a", configs: [
                .init(name: "retention.ms", configOperation: 1, value: nil),
                .init(name: "cleanup.policy", configOperation: 0, value: "compact"),
            ])]), version: 1)
        #expect(altered.responses[0].errorCode == 0)
        let after = try harness.call(
            DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: "a", configurationKeys: ["retention.ms", "cleanup.policy"])]), version: 4)
        let values = Dictionary(uniqueKeysWithValues: after.results[0].configs.map { ($0.name, $0.value) })
        #expect(values == ["retention.ms": "604800000", "cleanup.policy": "compact"])

        let grow = try harness.call(CreatePartitionsRequest(topics: [.init(name: "a", count: 1, assignments: nil)]), version: 3)
        #expect(grow.results[0].errorCode == KafkaErrorCode.invalidPartitions.rawValue)
        let grown = try harness.call(CreatePartitionsRequest(topics: [.init(name: "a", count: 4, assignments: nil)]), version: 3)
        #expect(grown.results[0].errorCode == 0)
        let metadata = try harness.call(MetadataRequest(topics: [.init(name: "a")]), version: 12)
        #expect(metadata.topics[0].partitions.count == 4)

        let deleted = try harness.call(DeleteTopicsRequest(topicNames: ["a", "nope"]), version: 4)
        #expect(deleted.responses.map(\.errorCode) == [0, KafkaErrorCode.unknownTopicOrPartition.rawValue])
    }

    @Test func metadataAutoCreatesWithNumPartitions() throws {
        let harness = try BrokerHarness(sets: ["num.partitions": "3"])
        let metadata = try harness.call(MetadataRequest(topics: [.init(name: "auto")], allowAutoTopicCreation: true), version: 12)
        #expect(metadata.topics[0].errorCode == 0)
        #expect(metadata.topics[0].partitions.count == 3)
        #expect(metadata.clusterId == "test-cluster")
        #expect(metadata.brokers.count == 1)
        let none = try harness.call(MetadataRequest(topics: [.init(name: "other")], allowAutoTopicCreation: false), version: 12)
        #expect(none.topics[0].errorCode == KafkaErrorCode.unknownTopicOrPartition.rawValue)
    }
}

func Thread_sleep(milliseconds: Int) {
    usleep(useconds_t(milliseconds * 1000))
}

@Suite(.serialized) struct TimestampWindowTests {
    @Test func createTimeOutsideTheTopicWindowIsRefused() throws {
        let harness = try BrokerHarness()
        _ = try harness.call(
            CreateTopicsRequest(topics: [
                .init(name: "w", numPartitions: 1, replicationFactor: 1, configs: [
                    .init(name: "message.timestamp.before.max.ms", value: "3600000"),
                    .init(name: "message.timestamp.after.max.ms", value: "60000"),
                ])
            ]), version: 7)
        func batch(at timestamp: Int64) -> ByteBuffer {
            var builder = RecordBatchBuilder()
            builder.append(key: Array("k".utf8), value: Array("v".utf8), headers: [], timestamp: timestamp)
            return builder.build()
        }
        let wall = SystemLogClock().wallMilliseconds()
        let ok = try harness.call(produceRequest(topic: "w", batch: batch(at: wall)), version: 9)
        #expect(ok.responses[0].partitionResponses[0].errorCode == 0)
        let future = try harness.call(produceRequest(topic: "w", batch: batch(at: wall + 3_600_000)), version: 9)
        #expect(future.responses[0].partitionResponses[0].errorCode == KafkaErrorCode.invalidTimestamp.rawValue)
        let past = try harness.call(produceRequest(topic: "w", batch: batch(at: wall - 2 * 3_600_000)), version: 9)
        #expect(past.responses[0].partitionResponses[0].errorCode == KafkaErrorCode.invalidTimestamp.rawValue)
        // The default (unchecked) topic accepts both.
        _ = try harness.call(CreateTopicsRequest(topics: [.init(name: "any", numPartitions: 1, replicationFactor: 1)]), version: 7)
        let anyTime = try harness.call(produceRequest(topic: "any", batch: batch(at: 1)), version: 9)
        #expect(anyTime.responses[0].partitionResponses[0].errorCode == 0)
    }
}

@Suite(.serialized) struct TopicCompressionTests {
    @Test func topicCompressionTypeReencodesBatches() throws {
        let harness = try BrokerHarness(sets: ["petrel.fetch.zero.copy": "false"])
        _ = try harness.call(
            CreateTopicsRequest(topics: [
                .init(name: "z", numPartitions: 1, replicationFactor: 1, configs: [.init(name: "compression.type", value: "zstd")])
            ]), version: 7)
        let values = (0..<40).map { "value-\($0)-" + String(repeating: "x", count: 50) }
        let produced = try harness.call(produceRequest(topic: "z", batch: makeBatch(values)), version: 9)
        #expect(produced.responses[0].partitionResponses[0].errorCode == 0)
        let fetched = try harness.call(fetchRequest(topic: "z", offset: 0), version: 12)
        let bytes = fetched.responses[0].partitions[0].records!.singleBuffer!
        let header = try RecordBatch.validate(bytes, requireExactLength: true)
        #expect(header.compression == .zstd)
        let decoded = try RecordBatch.decodeRecords(in: bytes)
        #expect(decoded.records.map { String(buffer: $0.value!) } == values)
        #expect(decoded.records.map(\.offsetDelta) == (0..<40).map { Int32($0) })
    }
}
