public import KafkaWire
public import NIOCore
import Synchronization

/// Admin and data operations over one `KafkaConnection`, for a single-node broker.
///
/// Every method throws `ClientError`, turning a non-zero Kafka error code into `.broker(code)`
/// with the topic or partition it concerns.
public final class KafkaClient: Sendable {
    /// The underlying connection (pipelined; safe to share).
    public let connection: KafkaConnection
    private let topicIds = Mutex<[String: KafkaUUID]>([:])

    /// Request timeout sent to the broker for admin and produce requests.
    public let timeoutMs: Int32

    public init(connection: KafkaConnection, timeoutMs: Int32 = 30_000) {
        self.connection = connection
        self.timeoutMs = timeoutMs
    }

    /// Connects to `address`.
    ///
    /// - Throws: `ClientError(.connection)`.
    public static func connect(
        to address: BrokerAddress, on group: any EventLoopGroup, clientId: String? = "petrel", security: ClientSecurity = .plaintext
    ) async throws(ClientError) -> KafkaClient {
        KafkaClient(connection: try await KafkaConnection.connect(to: address, on: group, clientId: clientId, security: security))
    }

    public func close() async {
        await connection.close()
    }

    // MARK: - Metadata

    /// Metadata for `topics` (nil: all topics). Creates missing topics only when
    /// `allowAutoTopicCreation` is set and the broker allows it (`auto.create.topics.enable`).
    public func metadata(topics: [String]?, allowAutoTopicCreation: Bool = false) async throws(ClientError) -> MetadataResponse {
        let request = MetadataRequest(
            topics: topics.map { $0.map { MetadataRequest.MetadataRequestTopic(topicId: .zero, name: $0) } },
            allowAutoTopicCreation: allowAutoTopicCreation
        )
        let response = try await connection.send(request)
        topicIds.withLock { ids in
            for topic in response.topics where topic.errorCode == 0 && topic.topicId != .zero {
                if let name = topic.name { ids[name] = topic.topicId }
            }
        }
        return response
    }

    /// One topic's metadata, or nil when the broker does not know it.
    ///
    /// - Throws: `ClientError` for errors other than UNKNOWN_TOPIC_OR_PARTITION.
    /// With `autoCreate`, asks the broker to create a missing topic, as kafka-console-producer's
    /// metadata request does, and waits briefly while it reports LEADER_NOT_AVAILABLE.
    public func topic(_ name: String, autoCreate: Bool = false) async throws(ClientError) -> MetadataResponse.MetadataResponseTopic? {
        var attempts = 0
        while true {
            let response = try await metadata(topics: [name], allowAutoTopicCreation: autoCreate)
            guard let topic = response.topics.first(where: { $0.name == name }) else { return nil }
            if topic.errorCode == KafkaErrorCode.unknownTopicOrPartition.rawValue { return nil }
            if autoCreate, topic.errorCode == KafkaErrorCode.leaderNotAvailable.rawValue, attempts < 50 {
                attempts += 1
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            try ClientError.check(topic.errorCode, "metadata for topic \(name)")
            return topic
        }
    }

    // MARK: - Topics

    /// Creates a topic.
    ///
    /// - Parameters:
    ///   - name: Topic name.
    ///   - partitions: Partition count (-1: broker default).
    ///   - replicationFactor: Replicas per partition (-1: broker default).
    ///   - configs: Topic configs, e.g. `("retention.ms", "60000")`.
    /// - Throws: `.broker(.topicAlreadyExists)` and the like.
    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int16 = 1, configs: [(String, String)] = []) async throws(ClientError) {
        let topic = CreateTopicsRequest.CreatableTopic(
            name: name, numPartitions: partitions, replicationFactor: replicationFactor, assignments: [],
            configs: configs.map { CreateTopicsRequest.CreatableTopicConfig(name: $0.0, value: $0.1) }
        )
        let response = try await connection.send(CreateTopicsRequest(topics: [topic], timeoutMs: timeoutMs, validateOnly: false))
        guard let result = response.topics.first(where: { $0.name == name }) else {
            throw ClientError(.protocolViolation, "CreateTopics response does not mention \(name)")
        }
        try ClientError.check(result.errorCode, "create topic \(name)", message: result.errorMessage)
    }

    /// Deletes a topic.
    public func deleteTopic(_ name: String) async throws(ClientError) {
        let version = try connection.version(for: DeleteTopicsRequest.self)
        var request = DeleteTopicsRequest(timeoutMs: timeoutMs)
        if version >= 6 {
            request.topics = [DeleteTopicsRequest.DeleteTopicState(name: name, topicId: .zero)]
        } else {
            request.topicNames = [name]
        }
        let response = try await connection.send(request, version: version)
        guard let result = response.responses.first(where: { $0.name == name }) ?? response.responses.first else {
            throw ClientError(.protocolViolation, "DeleteTopics response is empty")
        }
        try ClientError.check(result.errorCode, "delete topic \(name)", message: result.errorMessage)
    }

    /// Raises a topic's partition count to `count`.
    public func createPartitions(_ name: String, totalCount count: Int32) async throws(ClientError) {
        let request = CreatePartitionsRequest(
            topics: [CreatePartitionsRequest.CreatePartitionsTopic(name: name, count: count, assignments: nil)],
            timeoutMs: timeoutMs, validateOnly: false
        )
        let response = try await connection.send(request)
        guard let result = response.results.first(where: { $0.name == name }) else {
            throw ClientError(.protocolViolation, "CreatePartitions response does not mention \(name)")
        }
        try ClientError.check(result.errorCode, "create partitions for \(name)", message: result.errorMessage)
    }

    /// Kafka's ConfigResource type for topics.
    public static let topicResourceType: Int8 = 2

    /// A topic's configs (DescribeConfigs).
    public func describeTopicConfigs(_ name: String) async throws(ClientError) -> [DescribeConfigsResponse.DescribeConfigsResourceResult] {
        try await describeConfigs(resourceType: Self.topicResourceType, name: name)
    }

    /// Sets and deletes topic configs (IncrementalAlterConfigs).
    public func alterTopicConfigs(_ name: String, set: [(String, String)], delete: [String]) async throws(ClientError) {
        try await alterConfigs(resourceType: Self.topicResourceType, name: name, set: set, delete: delete)
    }

    /// DescribeConfigs resource type of a broker (its node id; "" for the cluster-wide defaults).
    public static let brokerResourceType: Int8 = 4

    /// The configs of one resource (DescribeConfigs).
    public func describeConfigs(resourceType: Int8, name: String) async throws(ClientError) -> [DescribeConfigsResponse.DescribeConfigsResourceResult] {
        let request = DescribeConfigsRequest(
            resources: [DescribeConfigsRequest.DescribeConfigsResource(resourceType: resourceType, resourceName: name, configurationKeys: nil)],
            includeSynonyms: false, includeDocumentation: false
        )
        let response = try await connection.send(request)
        guard let result = response.results.first(where: { $0.resourceName == name }) else {
            throw ClientError(.protocolViolation, "DescribeConfigs response does not mention \(name)")
        }
        try ClientError.check(result.errorCode, "describe configs of \(name)", message: result.errorMessage)
        return result.configs
    }

    /// Sets and deletes one resource's configs (IncrementalAlterConfigs; SET = 0, DELETE = 1).
    public func alterConfigs(resourceType: Int8, name: String, set: [(String, String)], delete: [String]) async throws(ClientError) {
        var configs = set.map { IncrementalAlterConfigsRequest.AlterableConfig(name: $0.0, configOperation: 0, value: $0.1) }
        configs += delete.map { IncrementalAlterConfigsRequest.AlterableConfig(name: $0, configOperation: 1, value: nil) }
        let request = IncrementalAlterConfigsRequest(
            resources: [IncrementalAlterConfigsRequest.AlterConfigsResource(resourceType: resourceType, resourceName: name, configs: configs)],
            validateOnly: false
        )
        let response = try await connection.send(request)
        guard let result = response.responses.first(where: { $0.resourceName == name }) ?? response.responses.first else {
            throw ClientError(.protocolViolation, "IncrementalAlterConfigs response is empty")
        }
        try ClientError.check(result.errorCode, "alter configs of \(name.isEmpty ? "the cluster defaults" : name)", message: result.errorMessage)
    }

    // MARK: - Offsets

    /// ListOffsets timestamp meaning "the log start offset".
    public static let earliest: Int64 = -2
    /// ListOffsets timestamp meaning "the log end offset".
    public static let latest: Int64 = -1

    /// The offset for `timestamp` (`earliest`, `latest`, or milliseconds) of each partition.
    public func listOffsets(_ topic: String, partitions: [Int32], timestamp: Int64) async throws(ClientError) -> [Int32: Int64] {
        let request = ListOffsetsRequest(
            replicaId: -1, isolationLevel: 0,
            topics: [ListOffsetsRequest.ListOffsetsTopic(
                name: topic,
                partitions: partitions.map { ListOffsetsRequest.ListOffsetsPartition(partitionIndex: $0, currentLeaderEpoch: -1, timestamp: timestamp) }
            )]
        )
        let response = try await connection.send(request)
        var offsets: [Int32: Int64] = [:]
        for topicResponse in response.topics where topicResponse.name == topic {
            for partition in topicResponse.partitions {
                try ClientError.check(partition.errorCode, "list offsets of \(topic)-\(partition.partitionIndex)")
                offsets[partition.partitionIndex] = partition.offset
            }
        }
        return offsets
    }

    // MARK: - Produce and fetch

    /// Produces one batch to one partition and returns its base offset (-1 for acks=0).
    ///
    /// - Parameters:
    ///   - batch: One or more record batches v2.
    ///   - acks: 0, 1 or -1 (all).
    public func produce(topic: String, partition: Int32, batch: ByteBuffer, acks: Int16) async throws(ClientError) -> Int64 {
        let request = ProduceRequest(
            transactionalId: nil, acks: acks, timeoutMs: timeoutMs,
            topicData: [ProduceRequest.TopicProduceData(name: topic, partitionData: [ProduceRequest.PartitionProduceData(index: partition, records: Records(batch))])]
        )
        if acks == 0 {
            do {
                try await connection.sendWithoutResponse(request).get()
            } catch {
                throw (error as? ClientError) ?? ClientError(.connection, "\(error)")
            }
            return -1
        }
        let response = try await connection.send(request)
        guard let result = response.responses.first?.partitionResponses.first else {
            throw ClientError(.protocolViolation, "Produce response is empty")
        }
        try ClientError.check(result.errorCode, "produce to \(topic)-\(partition)", message: result.errorMessage)
        return result.baseOffset
    }

    /// The topic id learnt from metadata (zero when unknown or the broker has none).
    public func topicId(_ topic: String) -> KafkaUUID {
        topicIds.withLock { $0[topic] } ?? .zero
    }

    /// Builds a single-topic Fetch request and picks its version: v13+ name topics by id, so
    /// without a known id the version is capped at 12.
    public func fetchRequest(
        topic: String, partitions: [(partition: Int32, offset: Int64)], maxWaitMs: Int32, minBytes: Int32,
        maxBytes: Int32 = 50 << 20, partitionMaxBytes: Int32 = 1 << 20
    ) throws(ClientError) -> (request: FetchRequest, version: Int16) {
        let id = topicId(topic)
        let version = try connection.version(for: FetchRequest.self, cap: id == .zero ? 12 : .max)
        let request = FetchRequest(
            clusterId: nil, replicaId: -1, replicaState: .init(replicaId: -1, replicaEpoch: -1),
            maxWaitMs: maxWaitMs, minBytes: minBytes, maxBytes: maxBytes, isolationLevel: 0,
            sessionId: 0, sessionEpoch: -1,
            topics: [FetchRequest.FetchTopic(
                topic: topic, topicId: id,
                partitions: partitions.map {
                    FetchRequest.FetchPartition(
                        partition: $0.partition, currentLeaderEpoch: -1, fetchOffset: $0.offset, lastFetchedEpoch: -1,
                        logStartOffset: -1, partitionMaxBytes: partitionMaxBytes, replicaDirectoryId: .zero
                    )
                }
            )],
            forgottenTopicsData: [], rackId: ""
        )
        return (request, version)
    }

    /// Fetches from one topic (a sessionless fetch, as a direct partition consumer does).
    public func fetch(
        topic: String, partitions: [(partition: Int32, offset: Int64)], maxWaitMs: Int32, minBytes: Int32 = 1,
        maxBytes: Int32 = 50 << 20, partitionMaxBytes: Int32 = 1 << 20
    ) async throws(ClientError) -> FetchResponse {
        let (request, version) = try fetchRequest(
            topic: topic, partitions: partitions, maxWaitMs: maxWaitMs, minBytes: minBytes, maxBytes: maxBytes, partitionMaxBytes: partitionMaxBytes
        )
        let response = try await connection.send(request, version: version)
        try ClientError.check(response.errorCode, "fetch from \(topic)")
        return response
    }
}
