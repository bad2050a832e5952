import KafkaWire
import NIOCore

// Hand-built messages that exercise most fields at a given version. Non-ignorable fields that the
// version lacks keep their default (Kafka's writer rule), everything else is populated.

func sampleProduceRequest(_ v: Int16) -> ProduceRequest {
    ProduceRequest(
        transactionalId: v >= 3 && v % 2 == 0 ? "txn-1" : nil,  // TransactionalId exists from v3
        acks: -1,
        timeoutMs: 30000,
        topicData: [
            .init(name: "orders", partitionData: [
                .init(index: 0, records: sampleRecords(1)),
                .init(index: 1, records: nil),
                .init(index: 2, records: Records(ByteBuffer())),
            ]),
            .init(name: "payments", partitionData: [.init(index: 5, records: sampleRecords(9))]),
        ]
    )
}

func sampleProduceResponse(_ v: Int16) -> ProduceResponse {
    ProduceResponse(
        responses: [
            .init(name: "orders", partitionResponses: [
                .init(
                    index: 0, errorCode: 0, baseOffset: 42, logAppendTimeMs: -1, logStartOffset: 0,
                    recordErrors: v >= 8 ? [.init(batchIndex: 3, batchIndexErrorMessage: "bad"), .init(batchIndex: 4)] : [],
                    errorMessage: v >= 8 ? "some records failed" : nil,
                    currentLeader: v >= 10 ? .init(leaderId: 1, leaderEpoch: 7) : .init()
                ),
                .init(index: 1, errorCode: KafkaErrorCode.notLeaderOrFollower.rawValue, baseOffset: -1),
            ]),
        ],
        throttleTimeMs: 12,
        nodeEndpoints: v >= 10 ? [.init(nodeId: 1, host: "localhost", port: 9092, rack: "r1"), .init(nodeId: 2, host: "h2", port: 1)] : []
    )
}

func sampleFetchRequest(_ v: Int16) -> FetchRequest {
    FetchRequest(
        clusterId: v >= 12 ? "cluster-x" : nil,
        replicaId: v <= 14 ? -1 : -1,
        replicaState: v >= 15 ? .init(replicaId: -1, replicaEpoch: -1) : .init(),
        maxWaitMs: 500,
        minBytes: 1,
        maxBytes: 52_428_800,
        isolationLevel: 1,
        sessionId: v >= 7 ? 77 : 0,
        sessionEpoch: v >= 7 ? 3 : -1,
        topics: [
            .init(
                topic: "orders",
                topicId: KafkaUUID(mostSignificantBits: 0x1122_3344_5566_7788, leastSignificantBits: 0x99AA_BBCC_DDEE_FF00),
                partitions: [
                    .init(partition: 0, currentLeaderEpoch: 5, fetchOffset: 100, lastFetchedEpoch: v >= 12 ? 4 : -1,
                          logStartOffset: 0, partitionMaxBytes: 1_048_576),
                    .init(partition: 1, fetchOffset: 0, partitionMaxBytes: 1024),
                ]
            ),
        ],
        forgottenTopicsData: v >= 7 ? [.init(topic: "old", topicId: .one, partitions: [1, 2, 3])] : [],
        rackId: v >= 11 ? "rack-a" : ""
    )
}

func sampleFetchResponse(_ v: Int16) -> FetchResponse {
    FetchResponse(
        throttleTimeMs: 1,
        errorCode: 0,
        sessionId: v >= 7 ? 99 : 0,
        responses: [
            .init(
                topic: "orders",
                topicId: KafkaUUID(mostSignificantBits: 1, leastSignificantBits: 2),
                partitions: [
                    .init(
                        partitionIndex: 0, errorCode: 0, highWatermark: 1000, lastStableOffset: 990, logStartOffset: 10,
                        divergingEpoch: v >= 12 ? .init(epoch: 3, endOffset: 500) : .init(),
                        currentLeader: v >= 12 ? .init(leaderId: 1, leaderEpoch: 9) : .init(),
                        snapshotId: .init(),
                        abortedTransactions: [.init(producerId: 5, firstOffset: 700)],
                        preferredReadReplica: -1,
                        records: sampleRecords(3)
                    ),
                    .init(partitionIndex: 1, errorCode: 1, highWatermark: 0, abortedTransactions: nil, records: nil),
                ]
            ),
        ],
        nodeEndpoints: v >= 16 ? [.init(nodeId: 1, host: "broker", port: 9092, rack: nil)] : []
    )
}

func sampleMetadataRequest(_ v: Int16) -> MetadataRequest {
    MetadataRequest(
        topics: [.init(topicId: v >= 10 ? KafkaUUID(mostSignificantBits: 3, leastSignificantBits: 4) : .zero, name: "orders"),
                 .init(name: "payments")],
        allowAutoTopicCreation: v >= 4 ? false : true,
        includeClusterAuthorizedOperations: v >= 8 && v <= 10,
        includeTopicAuthorizedOperations: v >= 8
    )
}

func sampleMetadataResponse(_ v: Int16) -> MetadataResponse {
    MetadataResponse(
        throttleTimeMs: 0,
        brokers: [.init(nodeId: 1, host: "localhost", port: 9092, rack: v >= 1 ? "rack" : nil)],
        clusterId: v >= 2 ? "petrel-cluster" : nil,
        controllerId: 1,
        topics: [
            .init(
                errorCode: 0, name: "orders",
                topicId: v >= 10 ? KafkaUUID(mostSignificantBits: 5, leastSignificantBits: 6) : .zero,
                isInternal: false,
                partitions: [
                    .init(errorCode: 0, partitionIndex: 0, leaderId: 1, leaderEpoch: 2, replicaNodes: [1], isrNodes: [1],
                          offlineReplicas: v >= 5 ? [] : []),
                    .init(errorCode: 5, partitionIndex: 1, leaderId: -1, replicaNodes: [], isrNodes: []),
                ],
                topicAuthorizedOperations: v >= 8 ? 0x1F : -2147483648
            ),
        ],
        clusterAuthorizedOperations: (v >= 8 && v <= 10) ? 0x0F : -2147483648
    )
}

func sampleApiVersionsRequest(_ v: Int16) -> ApiVersionsRequest {
    ApiVersionsRequest(
        clientSoftwareName: v >= 3 ? "petrel-test" : "",
        clientSoftwareVersion: v >= 3 ? "1.0.0" : ""
    )
}

func sampleApiVersionsResponse(_ v: Int16) -> ApiVersionsResponse {
    var r = ApiVersionsResponse(
        errorCode: 0,
        apiKeys: APIKey.servedAPIs.map { .init(apiKey: $0.apiKey.rawValue, minVersion: $0.minVersion, maxVersion: $0.maxVersion) },
        throttleTimeMs: 0
    )
    if v >= 3 {
        r.supportedFeatures = [.init(name: "metadata.version", minVersion: 1, maxVersion: 21)]
        r.finalizedFeaturesEpoch = 5
        r.finalizedFeatures = [.init(name: "metadata.version", maxVersionLevel: 21, minVersionLevel: 21)]
        r.zkMigrationReady = true
    }
    return r
}

func sampleJoinGroupRequest(_ v: Int16) -> JoinGroupRequest {
    JoinGroupRequest(
        groupId: "group-1",
        sessionTimeoutMs: 45000,
        rebalanceTimeoutMs: v >= 1 ? 300_000 : -1,
        memberId: "",
        groupInstanceId: v >= 5 ? "instance-1" : nil,
        protocolType: "consumer",
        protocols: [
            .init(name: "range", metadata: ByteBuffer(bytes: [0, 1, 0, 0, 0, 1, 0, 6])),
            .init(name: "cooperative-sticky", metadata: ByteBuffer()),
        ],
        reason: v >= 8 ? "rejoin" : nil
    )
}

func sampleJoinGroupResponse(_ v: Int16) -> JoinGroupResponse {
    JoinGroupResponse(
        throttleTimeMs: 0,
        errorCode: 0,
        generationId: 3,
        protocolType: v >= 7 ? "consumer" : nil,
        protocolName: "range",
        leader: "m-1",
        skipAssignment: false,
        memberId: "m-1",
        members: [
            .init(memberId: "m-1", groupInstanceId: v >= 5 ? "i-1" : nil, metadata: ByteBuffer(bytes: [1, 2, 3])),
            .init(memberId: "m-2", metadata: ByteBuffer()),
        ]
    )
}

func sampleListOffsetsRequest(_ v: Int16) -> ListOffsetsRequest {
    ListOffsetsRequest(
        replicaId: -1,
        isolationLevel: v >= 2 ? 1 : 0,
        topics: [.init(name: "orders", partitions: [
            .init(partitionIndex: 0, currentLeaderEpoch: v >= 4 ? 3 : -1, timestamp: -1),
            .init(partitionIndex: 1, timestamp: -2),
        ])]
    )
}

func sampleListOffsetsResponse(_ v: Int16) -> ListOffsetsResponse {
    ListOffsetsResponse(
        throttleTimeMs: 0,
        topics: [.init(name: "orders", partitions: [
            v == 0
                ? .init(partitionIndex: 0, errorCode: 0, oldStyleOffsets: [1234, 1000])  // v0: a list, no Offset field
                : .init(partitionIndex: 0, errorCode: 0, timestamp: -1, offset: 1234, leaderEpoch: v >= 4 ? 2 : -1),
        ])]
    )
}

/// One encodable sample: a name, a version, and type-erased encode/decode.
struct Sample: Sendable, CustomStringConvertible {
    var name: String
    var version: Int16
    var encode: @Sendable () throws -> ByteBuffer
    var decode: @Sendable (inout ByteBuffer) throws -> Void

    var description: String { "\(name) v\(version)" }

    init<M: KafkaMessage>(_ make: @escaping @Sendable (Int16) -> M, version: Int16) {
        self.name = String(describing: M.self)
        self.version = version
        self.encode = { try make(version).encoded(version: version) }
        self.decode = { buffer in _ = try M(from: &buffer, version: version) }
    }
}

func samples<M: KafkaMessage>(_ make: @escaping @Sendable (Int16) -> M, _ type: M.Type = M.self) -> [Sample] {
    M.supportedVersions.map { Sample(make, version: $0) }
}

let allSamples: [Sample] =
    samples(sampleProduceRequest) + samples(sampleProduceResponse)
    + samples(sampleFetchRequest) + samples(sampleFetchResponse)
    + samples(sampleMetadataRequest) + samples(sampleMetadataResponse)
    + samples(sampleApiVersionsRequest) + samples(sampleApiVersionsResponse)
    + samples(sampleJoinGroupRequest) + samples(sampleJoinGroupResponse)
    + samples(sampleListOffsetsRequest) + samples(sampleListOffsetsResponse)
