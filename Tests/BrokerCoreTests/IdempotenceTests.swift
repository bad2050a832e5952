import BrokerCore
import KafkaWire
import NIOCore
import RecordFormat
import Testing

/// A batch from an idempotent producer.
func producerBatch(_ values: [String], producerId: Int64, epoch: Int16, sequence: Int32) -> ByteBuffer {
    var builder = RecordBatchBuilder(producerId: producerId, producerEpoch: epoch, baseSequence: sequence)
    for (index, value) in values.enumerated() {
        builder.append(key: nil, value: Array(value.utf8), headers: [], timestamp: 1_700_000_000_000 + Int64(index))
    }
    return builder.build()
}

@Suite(.serialized) struct IdempotenceTests {
    @Test func retriedBatchGetsItsOriginalOffsetAndIsStoredOnce() throws {
        let harness = try BrokerHarness()
        _ = try harness.call(CreateTopicsRequest(topics: [.init(name: "idem", numPartitions: 1, replicationFactor: 1)]), version: 7)
        let initialized = try harness.call(InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: -1), version: 4)
        #expect(initialized.errorCode == 0)
        #expect(initialized.producerId >= 0)
        #expect(initialized.producerEpoch == 0)
        let producerId = initialized.producerId

        _ = try harness.call(produceRequest(topic: "idem", batch: makeBatch(["plain"])), version: 9)
        let first = try harness.call(produceRequest(topic: "idem", batch: producerBatch(["a", "b"], producerId: producerId, epoch: 0, sequence: 0)), version: 9)
        #expect(first.responses[0].partitionResponses[0].errorCode == 0)
        #expect(first.responses[0].partitionResponses[0].baseOffset == 1)
        // The retry (the client never saw the answer): same offset, not written again.
        let retry = try harness.call(produceRequest(topic: "idem", batch: producerBatch(["a", "b"], producerId: producerId, epoch: 0, sequence: 0)), version: 9)
        #expect(retry.responses[0].partitionResponses[0].errorCode == 0)
        #expect(retry.responses[0].partitionResponses[0].baseOffset == 1)
        let next = try harness.call(produceRequest(topic: "idem", batch: producerBatch(["c"], producerId: producerId, epoch: 0, sequence: 2)), version: 9)
        #expect(next.responses[0].partitionResponses[0].baseOffset == 3)

        // A gap and a fenced epoch answer with Kafka's codes.
        let gap = try harness.call(produceRequest(topic: "idem", batch: producerBatch(["e"], producerId: producerId, epoch: 0, sequence: 9)), version: 9)
        #expect(gap.responses[0].partitionResponses[0].errorCode == KafkaErrorCode.outOfOrderSequenceNumber.rawValue)
        let bumped = try harness.call(InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: -1, producerId: producerId, producerEpoch: 0), version: 4)
        #expect(bumped.errorCode == 0 && bumped.producerId == producerId && bumped.producerEpoch == 1)
        let afterBump = try harness.call(produceRequest(topic: "idem", batch: producerBatch(["f"], producerId: producerId, epoch: 1, sequence: 0)), version: 9)
        #expect(afterBump.responses[0].partitionResponses[0].baseOffset == 4)
        let fenced = try harness.call(produceRequest(topic: "idem", batch: producerBatch(["g"], producerId: producerId, epoch: 0, sequence: 3)), version: 9)
        #expect(fenced.responses[0].partitionResponses[0].errorCode == KafkaErrorCode.invalidProducerEpoch.rawValue)

        // The log holds every accepted batch once.
        let fetched = try harness.call(fetchRequest(topic: "idem", offset: 0), version: 12)
        #expect(fetched.responses[0].partitions[0].highWatermark == 5)
        var bytes = try #require(fetched.responses[0].partitions[0].records?.singleBuffer)
        var batches: [RecordBatchHeader] = []
        while bytes.readableBytes > 0 {
            let header = try RecordBatch.validate(bytes, requireExactLength: false)
            batches.append(header)
            bytes.moveReaderIndex(forwardBy: header.totalByteCount)
        }
        #expect(batches.map(\.baseOffset) == [0, 1, 3, 4])
        #expect(batches.map(\.producerId) == [-1, producerId, producerId, producerId])
    }

    @Test func initProducerIdHandsOutFreshIdsAndServesTransactions() throws {
        let harness = try BrokerHarness()
        var ids: Set<Int64> = []
        for version in Int16(0)...5 {
            let response = try harness.call(InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: -1), version: version)
            #expect(response.errorCode == 0 && response.producerEpoch == 0)
            ids.insert(response.producerId)
        }
        #expect(ids.count == 6)
        // An exhausted epoch gets a new id.
        let exhausted = try harness.call(
            InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: -1, producerId: ids.min()!, producerEpoch: Int16.max - 1), version: 5)
        #expect(exhausted.errorCode == 0 && !ids.contains(exhausted.producerId) && exhausted.producerEpoch == 0)
        // A transactional id goes to the transaction coordinator: a fresh id, epoch 0, then epoch 1
        // for the next instance; a timeout above transaction.max.timeout.ms is refused.
        let transactional = try harness.call(InitProducerIdRequest(transactionalId: "tx-1", transactionTimeoutMs: 60_000), version: 4)
        #expect(transactional.errorCode == 0 && transactional.producerEpoch == 0 && !ids.contains(transactional.producerId))
        let again = try harness.call(InitProducerIdRequest(transactionalId: "tx-1", transactionTimeoutMs: 60_000), version: 4)
        #expect(again.errorCode == 0 && again.producerId == transactional.producerId && again.producerEpoch == 1)
        let tooLong = try harness.call(InitProducerIdRequest(transactionalId: "tx-2", transactionTimeoutMs: 900_001), version: 4)
        #expect(tooLong.errorCode == KafkaErrorCode.invalidTransactionTimeout.rawValue)
        let response = try harness.call(ApiVersionsRequest(clientSoftwareName: "petrel-test", clientSoftwareVersion: "1.0"), version: 3)
        let key = response.apiKeys.first { $0.apiKey == APIKey.initProducerId.rawValue }
        #expect(key?.minVersion == 0 && key?.maxVersion == 5)
    }
}
