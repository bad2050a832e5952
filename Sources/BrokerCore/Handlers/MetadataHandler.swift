import CommitLog
import KafkaWire
import Security

extension Broker {
    /// Metadata: this broker is the only broker, controller and leader of every partition
    /// (leader epoch 0, replicas = ISR = [self]). Unknown topics are auto-created when allowed.
    func handleMetadata(_ context: RequestContext, _ request: MetadataRequest) -> MetadataResponse {
        var response = metadataResponse(context, request)
        // KIP-430: authorized operations when asked for (v8+).
        if request.includeTopicAuthorizedOperations {
            for index in response.topics.indices where response.topics[index].errorCode == 0 {
                response.topics[index].topicAuthorizedOperations = authorizedOperations(context, .topic, response.topics[index].name ?? "")
            }
        }
        if request.includeClusterAuthorizedOperations {
            response.clusterAuthorizedOperations = authorizedOperations(context, .cluster, Broker.clusterName)
        }
        return response
    }

    private func metadataResponse(_ context: RequestContext, _ request: MetadataRequest) -> MetadataResponse {
        let version = context.header.apiVersion
        let (host, port) = advertisedAddress(listener: context.listenerName)
        var response = MetadataResponse(
            throttleTimeMs: 0,
            brokers: [.init(nodeId: configuration.nodeId, host: host, port: Int32(port), rack: nil)],
            clusterId: clusterId,
            controllerId: configuration.nodeId,
            topics: [])

        // v0: empty list = all topics; v1+: null = all, empty = none.
        let requested: [MetadataRequest.MetadataRequestTopic]?
        if let list = request.topics {
            requested = (version == 0 && list.isEmpty) ? nil : list
        } else {
            requested = nil
        }
        guard let requested else {
            // Kafka lists only the topics the principal may describe.
            response.topics = topics.allTopics.filter { authorized(context, .describe, .topic, $0.name) }.map { describe($0) }
            return response
        }
        let allowAutoCreate = configuration.autoCreateTopics && (version < 4 || request.allowAutoTopicCreation)
        for entry in requested {
            if let name = entry.name {
                guard authorized(context, .describe, .topic, name) else {
                    response.topics.append(.init(errorCode: KafkaErrorCode.topicAuthorizationFailed.rawValue, name: name, isInternal: false))
                    continue
                }
                if let topic = topics.topic(named: name) {
                    response.topics.append(describe(topic))
                    continue
                }
                if TopicRegistry.validateName(name) != nil {
                    response.topics.append(.init(errorCode: KafkaErrorCode.invalidTopicException.rawValue, name: name, isInternal: false))
                    continue
                }
                if allowAutoCreate && !name.hasPrefix("__")
                    && (authorized(context, .create, .cluster, Broker.clusterName) || authorized(context, .create, .topic, name))
                {
                    do {
                        try topics.createTopic(name: name, partitions: -1, replicationFactor: -1, configs: [:])
                    } catch let error where error.code == .topicAlreadyExists {
                        // Created concurrently by another request: fine.
                    } catch {
                        response.topics.append(.init(errorCode: error.code.rawValue, name: name))
                        continue
                    }
                    if let topic = topics.topic(named: name) {
                        response.topics.append(describe(topic))
                        continue
                    }
                }
                response.topics.append(.init(errorCode: KafkaErrorCode.unknownTopicOrPartition.rawValue, name: name))
            } else if let topic = topics.topic(id: entry.topicId), authorized(context, .describe, .topic, topic.name) {
                response.topics.append(describe(topic))
            } else {
                response.topics.append(.init(errorCode: KafkaErrorCode.unknownTopicId.rawValue, name: nil, topicId: entry.topicId))
            }
        }
        return response
    }

    func describe(_ topic: Topic) -> MetadataResponse.MetadataResponseTopic {
        let node = configuration.nodeId
        return .init(
            errorCode: 0, name: topic.name, topicId: topic.id, isInternal: topic.isInternal,
            partitions: topic.partitions.indices.map { index in
                let log = topic.partitions[index]
                return .init(
                    errorCode: log.isOffline ? KafkaErrorCode.kafkaStorageError.rawValue : 0,
                    partitionIndex: Int32(index), leaderId: node, leaderEpoch: 0,
                    replicaNodes: [node], isrNodes: [node], offlineReplicas: log.isOffline ? [node] : [])
            })
    }

    /// ListOffsets: -1 latest (high watermark), -2 earliest (log start), -3 max timestamp,
    /// -4 earliest local (= earliest), t >= 0 the first offset with a timestamp >= t.
    func handleListOffsets(_ context: RequestContext, _ request: ListOffsetsRequest) -> ListOffsetsResponse {
        let version = context.header.apiVersion
        let leaderEpoch: Int32 = version >= 4 ? 0 : -1  // LeaderEpoch exists from v4
        var response = ListOffsetsResponse(throttleTimeMs: 0, topics: [])
        for topicRequest in request.topics {
            let mayDescribe = authorized(context, .describe, .topic, topicRequest.name)
            let topic = mayDescribe ? topics.topic(named: topicRequest.name) : nil
            var topicResponse = ListOffsetsResponse.ListOffsetsTopicResponse(name: topicRequest.name, partitions: [])
            for partition in topicRequest.partitions {
                var result = ListOffsetsResponse.ListOffsetsPartitionResponse(
                    partitionIndex: partition.partitionIndex, errorCode: 0, timestamp: -1, offset: -1, leaderEpoch: leaderEpoch)
                guard let log = topic?.partition(partition.partitionIndex) else {
                    result.errorCode = (mayDescribe ? KafkaErrorCode.unknownTopicOrPartition : .topicAuthorizationFailed).rawValue
                    result.leaderEpoch = -1
                    topicResponse.partitions.append(result)
                    continue
                }
                if partition.currentLeaderEpoch > 0 {
                    result.errorCode = KafkaErrorCode.unknownLeaderEpoch.rawValue
                    topicResponse.partitions.append(result)
                    continue
                }
                do {
                    switch partition.timestamp {
                    case -1: result.offset = version >= 2 && request.isolationLevel == 1 ? log.lastStableOffset : log.highWatermark
                    case -2, -4: result.offset = log.logStartOffset
                    case -3:
                        if let found = try log.offsetOfMaxTimestamp() {
                            result.offset = found.offset.value
                            result.timestamp = found.timestamp
                        }
                    case let timestamp where timestamp >= 0:
                        if let found = try log.offset(forTimestamp: timestamp) {
                            result.offset = found.offset.value
                            result.timestamp = found.timestamp
                        }
                    default:
                        // -5 (latest tiered): no tiered storage here.
                        break
                    }
                } catch {
                    result.errorCode = Self.errorCode(for: error).rawValue
                }
                if version == 0 {
                    // v0 answers a list (Kafka: at most MaxNumOffsets offsets, newest first); the
                    // one offset the lookup found is what old clients ask for with -1 / -2.
                    let offset = result.offset >= 0 ? result.offset : log.highWatermark
                    result.oldStyleOffsets = partition.maxNumOffsets > 0 && result.errorCode == 0 ? [offset] : []
                    result.offset = -1  // v1+ fields: absent in v0
                    result.timestamp = -1
                }
                topicResponse.partitions.append(result)
            }
            response.topics.append(topicResponse)
        }
        return response
    }

    func handleOffsetForLeaderEpoch(_ context: RequestContext, _ request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
        var response = OffsetForLeaderEpochResponse(throttleTimeMs: 0, topics: [])
        for topicRequest in request.topics {
            let topic = topics.topic(named: topicRequest.topic)
            var result = OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult(topic: topicRequest.topic, partitions: [])
            for partition in topicRequest.partitions {
                var entry = OffsetForLeaderEpochResponse.EpochEndOffset(errorCode: 0, partition: partition.partition, leaderEpoch: -1, endOffset: -1)
                if let log = topic?.partition(partition.partition) {
                    if partition.currentLeaderEpoch > 0 {
                        entry.errorCode = KafkaErrorCode.unknownLeaderEpoch.rawValue
                    } else if partition.leaderEpoch <= 0 {
                        // Every batch Petrel writes carries leader epoch 0.
                        entry.leaderEpoch = 0
                        entry.endOffset = log.highWatermark
                    }
                } else {
                    entry.errorCode = KafkaErrorCode.unknownTopicOrPartition.rawValue
                }
                result.partitions.append(entry)
            }
            response.topics.append(result)
        }
        return response
    }

    func handleDescribeCluster(_ context: RequestContext, _ request: DescribeClusterRequest) -> DescribeClusterResponse {
        let (host, port) = advertisedAddress(listener: context.listenerName)
        var response = DescribeClusterResponse(
            throttleTimeMs: 0, errorCode: 0, errorMessage: nil, endpointType: 1, clusterId: clusterId,
            controllerId: configuration.nodeId,
            brokers: [.init(brokerId: configuration.nodeId, host: host, port: Int32(port), rack: nil)])
        if request.includeClusterAuthorizedOperations {
            response.clusterAuthorizedOperations = authorizedOperations(context, .cluster, Broker.clusterName)
        }
        if request.endpointType != 1 {
            response.errorCode = KafkaErrorCode.unsupportedEndpointType.rawValue
            response.errorMessage = "Only broker endpoints are served"
            response.brokers = []
        }
        return response
    }
}

extension Broker {
    /// Whether a Metadata request may auto-create a topic (it names one that does not exist and
    /// auto-creation is allowed): such requests run on the admin queue.
    func metadataMayAutoCreate(_ request: MetadataRequest, version: Int16) -> Bool {
        guard configuration.autoCreateTopics && (version < 4 || request.allowAutoTopicCreation),
            let list = request.topics, !list.isEmpty
        else { return false }
        return list.contains { entry in entry.name.map { topics.topic(named: $0) == nil } ?? false }
    }
}
