import CommitLog
import KafkaWire
import Security

/// Kafka's config resource types.
enum ConfigResourceType: Int8 {
    case topic = 2
    case broker = 4
    case brokerLogger = 8
}

extension Broker {
    func handleCreateTopics(_ context: RequestContext, _ request: CreateTopicsRequest) -> CreateTopicsResponse {
        var response = CreateTopicsResponse(throttleTimeMs: 0, topics: [])
        // Kafka (KRaft) refuses the whole request when its topics add up to more partitions than
        // the per-request cap, before looking at any of them.
        let requested = request.topics.reduce(0) { total, topic in
            let count = topic.assignments.isEmpty
                ? (topic.numPartitions == -1 ? Int(configuration.numPartitions) : max(Int(topic.numPartitions), 0))
                : topic.assignments.count
            return total + count
        }
        if requested > configuration.maxPartitionsPerRequest {
            response.topics = request.topics.map {
                .init(name: $0.name, errorCode: KafkaErrorCode.policyViolation.rawValue, errorMessage: Self.tooManyPartitionsMessage)
            }
            return response
        }
        var brokerPartitions = hostedPartitionCount
        var seen: [String: Int] = [:]
        for topic in request.topics { seen[topic.name, default: 0] += 1 }
        for topic in request.topics {
            var result = CreateTopicsResponse.CreatableTopicResult(name: topic.name, errorCode: 0, errorMessage: nil)
            guard seen[topic.name] == 1 else {
                result.errorCode = KafkaErrorCode.invalidRequest.rawValue
                result.errorMessage = "Create topics request from client contains multiple entries for topic \(topic.name)"
                response.topics.append(result)
                continue
            }
            guard authorized(context, .create, .cluster, Broker.clusterName) || authorized(context, .create, .topic, topic.name) else {
                result.errorCode = KafkaErrorCode.topicAuthorizationFailed.rawValue
                response.topics.append(result)
                continue
            }
            var partitions = topic.numPartitions
            var factor = topic.replicationFactor
            if !topic.assignments.isEmpty {
                guard topic.numPartitions == -1 && topic.replicationFactor == -1 else {
                    result.errorCode = KafkaErrorCode.invalidRequest.rawValue
                    result.errorMessage = "Both numPartitions or replicationFactor and replicasAssignments were set."
                    response.topics.append(result)
                    continue
                }
                let valid = topic.assignments.allSatisfy { $0.brokerIds == [configuration.nodeId] }
                    && Set(topic.assignments.map(\.partitionIndex)) == Set(0..<Int32(topic.assignments.count))
                guard valid else {
                    result.errorCode = KafkaErrorCode.invalidReplicaAssignment.rawValue
                    result.errorMessage = "Replica assignments must place each partition on broker \(configuration.nodeId) only."
                    response.topics.append(result)
                    continue
                }
                partitions = Int32(topic.assignments.count)
                factor = 1
            }
            let count = partitions == -1 ? configuration.numPartitions : partitions
            if count > 0, let message = brokerPartitionLimitMessage(current: brokerPartitions, adding: Int(count)) {
                result.errorCode = KafkaErrorCode.policyViolation.rawValue
                result.errorMessage = message
                response.topics.append(result)
                continue
            }
            var configs: [String: String] = [:]
            for config in topic.configs {
                if let value = config.value { configs[config.name] = value }
            }
            do {
                let created = try topics.createTopic(
                    name: topic.name, partitions: partitions, replicationFactor: factor, configs: configs,
                    validateOnly: request.validateOnly)
                brokerPartitions += Int(count)
                result.topicId = created?.id ?? .zero
                result.numPartitions = count
                result.replicationFactor = 1
                result.configs = configuration.resolveTopicConfigs(overrides: configs).map {
                    .init(name: $0.name, value: $0.value, readOnly: false, configSource: $0.source.rawValue, isSensitive: false)
                }
            } catch {
                result.errorCode = error.code.rawValue
                result.errorMessage = error.message
            }
            response.topics.append(result)
        }
        return response
    }

    func handleDeleteTopics(_ context: RequestContext, _ request: DeleteTopicsRequest) -> DeleteTopicsResponse {
        var response = DeleteTopicsResponse(throttleTimeMs: 0, responses: [])
        // v0-5 name the topics; v6 names or ids.
        var targets: [(name: String?, id: KafkaUUID)] = request.topicNames.map { ($0, .zero) }
        targets += request.topics.map { ($0.name, $0.topicId) }
        for target in targets {
            var result = DeleteTopicsResponse.DeletableTopicResult(name: target.name, topicId: target.id, errorCode: 0)
            let name: String?
            if let targetName = target.name {
                name = targetName
            } else {
                name = topics.topic(id: target.id)?.name
                result.name = name
            }
            guard let name else {
                result.errorCode = KafkaErrorCode.unknownTopicId.rawValue
                result.errorMessage = "Topic id \(target.id) not found."
                response.responses.append(result)
                continue
            }
            guard authorized(context, .delete, .topic, name) else {
                result.errorCode = KafkaErrorCode.topicAuthorizationFailed.rawValue
                response.responses.append(result)
                continue
            }
            if let topic = topics.topic(named: name) { result.topicId = topic.id }
            do {
                try topics.deleteTopic(name: name)
            } catch {
                result.errorCode = error.code.rawValue
                result.errorMessage = error.message
            }
            response.responses.append(result)
        }
        return response
    }

    func handleCreatePartitions(_ context: RequestContext, _ request: CreatePartitionsRequest) -> CreatePartitionsResponse {
        var response = CreatePartitionsResponse(throttleTimeMs: 0, results: [])
        // The same caps as CreateTopics, on the partitions each topic would add.
        func adding(_ topic: CreatePartitionsRequest.CreatePartitionsTopic) -> Int {
            max(Int(topic.count) - (topics.topic(named: topic.name)?.partitions.count ?? Int(topic.count)), 0)
        }
        if request.topics.reduce(0, { $0 + adding($1) }) > configuration.maxPartitionsPerRequest {
            response.results = request.topics.map {
                .init(name: $0.name, errorCode: KafkaErrorCode.policyViolation.rawValue, errorMessage: Self.tooManyPartitionsMessage)
            }
            return response
        }
        var brokerPartitions = hostedPartitionCount
        for topic in request.topics {
            var result = CreatePartitionsResponse.CreatePartitionsTopicResult(name: topic.name, errorCode: 0, errorMessage: nil)
            let added = adding(topic)
            if !authorized(context, .alter, .topic, topic.name) {
                result.errorCode = KafkaErrorCode.topicAuthorizationFailed.rawValue
            } else if added > 0, let message = brokerPartitionLimitMessage(current: brokerPartitions, adding: added) {
                result.errorCode = KafkaErrorCode.policyViolation.rawValue
                result.errorMessage = message
            } else if let assignments = topic.assignments, !assignments.allSatisfy({ $0.brokerIds == [configuration.nodeId] }) {
                result.errorCode = KafkaErrorCode.invalidReplicaAssignment.rawValue
                result.errorMessage = "New partitions can only be placed on broker \(configuration.nodeId)."
            } else {
                do {
                    try topics.createPartitions(name: topic.name, count: topic.count, validateOnly: request.validateOnly)
                    brokerPartitions += added
                } catch {
                    result.errorCode = error.code.rawValue
                    result.errorMessage = error.message
                }
            }
            response.results.append(result)
        }
        return response
    }

    /// Kafka's message for a CreateTopics over its per-request partition cap.
    static let tooManyPartitionsMessage = "Excessively large number of partitions per request."

    /// Partitions hosted now, internal topics included.
    var hostedPartitionCount: Int { topics.allTopics.reduce(0) { $0 + $1.partitions.count } }

    /// The refusal when adding `adding` partitions to `current` would pass `max.broker.partitions`.
    /// (Concurrent requests are checked against the count each one saw, so they may overshoot the
    /// cap by at most `max.partitions.per.request` each.)
    func brokerPartitionLimitMessage(current: Int, adding: Int) -> String? {
        guard current + adding > configuration.maxBrokerPartitions else { return nil }
        return "Adding \(adding) partitions would bring the broker to \(current + adding) partitions, "
            + "above max.broker.partitions=\(configuration.maxBrokerPartitions)."
    }

    /// Broker-level configs reported by DescribeConfigs(BROKER): the ones that shape behaviour here.
    var describedBrokerConfigs: [(name: String, value: String, type: ConfigType)] {
        let configuration = topics.configuration  // static + dynamic
        let (host, port) = advertisedAddress
        var configs: [(name: String, value: String, type: ConfigType)] = [
            ("advertised.listeners", "PLAINTEXT://\(host):\(port)", .string),
            ("auto.create.topics.enable", String(configuration.autoCreateTopics), .boolean),
            ("default.replication.factor", String(configuration.defaultReplicationFactor), .int),
            ("delete.topic.enable", String(configuration.deleteTopicEnable), .boolean),
            ("group.initial.rebalance.delay.ms", String(configuration.groupInitialRebalanceDelayMs), .int),
            ("listeners", (try? configuration.resolvedListeners())?.map { "\($0.name)://\($0.host):\($0.port)" }.joined(separator: ",")
                ?? "PLAINTEXT://\(configuration.listenHost):\(configuration.listenPort)", .string),
            ("log.dirs", configuration.dataDirectory, .string),
            ("log.level", configuration.logLevel ?? BrokerLogLevel.currentName, .string),
            ("log.retention.check.interval.ms", String(configuration.retentionCheckIntervalMs), .long),
            ("max.broker.partitions", String(configuration.maxBrokerPartitions), .int),
            ("max.partitions.per.request", String(configuration.maxPartitionsPerRequest), .int),
            ("message.max.bytes", String(configuration.messageMaxBytes), .int),
            ("node.id", String(configuration.nodeId), .int),
            ("num.partitions", String(configuration.numPartitions), .int),
            ("queued.max.request.bytes", String(configuration.queuedMaxRequestBytes == Int.max ? -1 : configuration.queuedMaxRequestBytes), .long),
            ("request.read.timeout.ms", String(configuration.requestReadTimeoutMs), .long),
            ("socket.request.max.bytes", String(configuration.socketRequestMaxBytes), .int),
        ]
        let known = Set(configs.map(\.name))
        for definition in TopicConfigs.all {
            guard let synonym = definition.brokerSynonyms.first, !known.contains(synonym.name) else { continue }
            let value = configuration.dynamicBrokerConfigs[synonym.name] ?? configuration.dynamicDefaultConfigs[synonym.name]
                ?? configuration.staticConfigs[synonym.name] ?? (synonym.factor == 1 ? definition.defaultValue : "")
            if !value.isEmpty { configs.append((synonym.name, value, definition.type)) }
        }
        let listed = Set(configs.map(\.name))
        for (name, value) in configuration.dynamicBrokerConfigs.merging(configuration.dynamicDefaultConfigs, uniquingKeysWith: { a, _ in a })
        where !listed.contains(name) {
            configs.append((name, value, TopicConfigs.all.first { $0.brokerSynonyms.contains { $0.name == name } }?.type ?? .string))
        }
        return configs.sorted { $0.name < $1.name }
    }

    /// Where a broker config's value comes from, most specific first (Kafka's synonyms).
    func brokerConfigSources(_ name: String, value: String) -> [(value: String, source: ConfigSource)] {
        let configuration = topics.configuration
        var sources: [(value: String, source: ConfigSource)] = []
        if let dynamic = configuration.dynamicBrokerConfigs[name] { sources.append((dynamic, .dynamicBrokerConfig)) }
        if let dynamic = configuration.dynamicDefaultConfigs[name] { sources.append((dynamic, .dynamicDefaultBrokerConfig)) }
        if let fixed = configuration.staticConfigs[name] { sources.append((fixed, .staticBrokerConfig)) }
        if sources.isEmpty { sources.append((value, .defaultConfig)) }
        return sources
    }

    func handleDescribeConfigs(_ context: RequestContext, _ request: DescribeConfigsRequest) -> DescribeConfigsResponse {
        let version = context.header.apiVersion
        var response = DescribeConfigsResponse(throttleTimeMs: 0, results: [])
        for resource in request.resources {
            var result = DescribeConfigsResponse.DescribeConfigsResult(
                errorCode: 0, errorMessage: nil, resourceType: resource.resourceType, resourceName: resource.resourceName, configs: [])
            let wanted = resource.configurationKeys.map(Set.init)
            switch ConfigResourceType(rawValue: resource.resourceType) {
            case .topic:
                guard authorized(context, .describeConfigs, .topic, resource.resourceName) else {
                    result.errorCode = KafkaErrorCode.topicAuthorizationFailed.rawValue
                    break
                }
                guard let topic = topics.topic(named: resource.resourceName) else {
                    result.errorCode = KafkaErrorCode.unknownTopicOrPartition.rawValue
                    result.errorMessage = "Topic \(resource.resourceName) does not exist"
                    break
                }
                for resolved in topics.configuration.resolveTopicConfigs(overrides: topic.overrides) {
                    if let wanted, !wanted.contains(resolved.name) { continue }
                    var entry = DescribeConfigsResponse.DescribeConfigsResourceResult(
                        name: resolved.name, value: resolved.value, readOnly: false,
                        isDefault: version == 0 && resolved.source == .defaultConfig,
                        configSource: resolved.source.rawValue, isSensitive: false, synonyms: [],
                        configType: resolved.type.rawValue, documentation: nil)
                    if request.includeSynonyms && version >= 1 {
                        entry.synonyms = resolved.synonyms.map { .init(name: $0.name, value: $0.value, source: $0.source.rawValue) }
                    }
                    result.configs.append(entry)
                }
            case .broker:
                guard resource.resourceName.isEmpty || resource.resourceName == String(configuration.nodeId) else {
                    result.errorCode = KafkaErrorCode.invalidRequest.rawValue
                    result.errorMessage = "Unexpected broker id, expected \(configuration.nodeId) or empty string, but received \(resource.resourceName)"
                    break
                }
                if resource.resourceName.isEmpty {
                    // The cluster-wide default resource shows only what was set on it (as Kafka).
                    for (name, value) in dynamicConfig.defaultConfigs.sorted(by: { $0.key < $1.key }) {
                        if let wanted, !wanted.contains(name) { continue }
                        var entry = DescribeConfigsResponse.DescribeConfigsResourceResult(
                            name: name, value: value, readOnly: false, isDefault: false,
                            configSource: ConfigSource.dynamicDefaultBrokerConfig.rawValue, isSensitive: false, synonyms: [],
                            configType: ConfigType.string.rawValue, documentation: nil)
                        if request.includeSynonyms && version >= 1 {
                            entry.synonyms = [.init(name: name, value: value, source: ConfigSource.dynamicDefaultBrokerConfig.rawValue)]
                        }
                        result.configs.append(entry)
                    }
                    break
                }
                for config in describedBrokerConfigs {
                    if let wanted, !wanted.contains(config.name) { continue }
                    let sources = brokerConfigSources(config.name, value: config.value)
                    let source = sources[0].source
                    var entry = DescribeConfigsResponse.DescribeConfigsResourceResult(
                        name: config.name, value: config.value, readOnly: !DynamicBrokerConfig.dynamicNames.contains(config.name),
                        isDefault: version == 0 && source == .defaultConfig,
                        configSource: source.rawValue, isSensitive: false, synonyms: [], configType: config.type.rawValue, documentation: nil)
                    if request.includeSynonyms && version >= 1 {
                        entry.synonyms = sources.map { .init(name: config.name, value: $0.value, source: $0.source.rawValue) }
                    }
                    result.configs.append(entry)
                }
            default:
                result.errorCode = KafkaErrorCode.invalidRequest.rawValue
                result.errorMessage = "Unsupported resource type \(resource.resourceType)"
            }
            response.results.append(result)
        }
        return response
    }

    func handleAlterConfigs(_ context: RequestContext, _ request: AlterConfigsRequest) -> AlterConfigsResponse {
        var response = AlterConfigsResponse(throttleTimeMs: 0, responses: [])
        for resource in request.resources {
            if let refused = alterConfigsRefusal(context, resource.resourceType, resource.resourceName) {
                response.responses.append(.init(errorCode: refused.rawValue, errorMessage: nil, resourceType: resource.resourceType, resourceName: resource.resourceName))
                continue
            }
            // AlterConfigs replaces the whole override set.
            let (code, message) = alterConfigs(of: resource.resourceType, resource.resourceName, validateOnly: request.validateOnly) { _ in
                var overrides: [String: String] = [:]
                for config in resource.configs {
                    if let value = config.value { overrides[config.name] = value }
                }
                return overrides
            }
            response.responses.append(
                .init(errorCode: code.rawValue, errorMessage: message, resourceType: resource.resourceType, resourceName: resource.resourceName))
        }
        return response
    }

    func handleIncrementalAlterConfigs(_ context: RequestContext, _ request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
        var response = IncrementalAlterConfigsResponse(throttleTimeMs: 0, responses: [])
        for resource in request.resources {
            if resource.resourceType == Self.groupConfigResourceType || resource.resourceType == 3 {  // librdkafka may send its GROUP (3)
                let (code, message) = alterShareGroupConfigs(context, resource, validateOnly: request.validateOnly)
                response.responses.append(.init(errorCode: code.rawValue, errorMessage: message, resourceType: resource.resourceType, resourceName: resource.resourceName))
                continue
            }
            if let refused = alterConfigsRefusal(context, resource.resourceType, resource.resourceName) {
                response.responses.append(.init(errorCode: refused.rawValue, errorMessage: nil, resourceType: resource.resourceType, resourceName: resource.resourceName))
                continue
            }
            let isBroker = ConfigResourceType(rawValue: resource.resourceType) == .broker
            let (code, message) = alterConfigs(of: resource.resourceType, resource.resourceName, validateOnly: request.validateOnly) {
                current throws(TopicError) in
                var overrides = current
                for config in resource.configs {
                    let definition = TopicConfigs.byName[config.name]
                    if !isBroker && definition == nil {
                        throw TopicError(.invalidConfig, "Unknown topic config name: \(config.name)")
                    }
                    switch config.configOperation {
                    case 0:  // SET
                        guard let value = config.value else { throw TopicError(.invalidRequest, "Null value not supported for: \(config.name)") }
                        overrides[config.name] = value
                    case 1:  // DELETE
                        overrides[config.name] = nil
                    case 2, 3:  // APPEND, SUBTRACT (list configs only)
                        guard isBroker || definition?.type == .list else {
                            throw TopicError(.invalidConfig, "Config value append/subtract is not allowed for config key: \(config.name)")
                        }
                        let base = overrides[config.name]
                            ?? (isBroker ? nil : topics.configuration.resolveTopicConfigs(overrides: [:]).first { $0.name == config.name }?.value) ?? ""
                        var items = base.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
                        let changes = (config.value ?? "").split(separator: ",").map { $0.trimmingWhitespace() }
                        if config.configOperation == 2 {
                            for item in changes where !items.contains(item) { items.append(item) }
                        } else {
                            items.removeAll { changes.contains($0) }
                        }
                        overrides[config.name] = items.joined(separator: ",")
                    default:
                        throw TopicError(.invalidRequest, "Unknown config operation \(config.configOperation)")
                    }
                }
                return overrides
            }
            response.responses.append(
                .init(errorCode: code.rawValue, errorMessage: message, resourceType: resource.resourceType, resourceName: resource.resourceName))
        }
        return response
    }

    /// The envelope both AlterConfigs APIs share: only topic resources are alterable here; `change`
    /// maps the current overrides to the new ones. Returns the Kafka error code and message.
    /// ALTER_CONFIGS on the topic (or the cluster for broker resources), as Kafka checks it.
    func alterConfigsRefusal(_ context: RequestContext, _ resourceType: Int8, _ name: String) -> KafkaErrorCode? {
        if ConfigResourceType(rawValue: resourceType) == .topic {
            return authorized(context, .alterConfigs, .topic, name) ? nil : .topicAuthorizationFailed
        }
        return authorized(context, .alterConfigs, .cluster, Broker.clusterName) ? nil : .clusterAuthorizationFailed
    }

    func alterConfigs(
        of resourceType: Int8, _ name: String, validateOnly: Bool,
        _ change: ([String: String]) throws(TopicError) -> [String: String]
    ) -> (KafkaErrorCode, String?) {
        if ConfigResourceType(rawValue: resourceType) == .broker {
            guard name.isEmpty || name == String(configuration.nodeId) else {
                return (.invalidRequest, "Unexpected broker id, expected \(configuration.nodeId) or empty string, but received \(name)")
            }
            do {
                if let effective = try dynamicConfig.alter(clusterDefault: name.isEmpty, validateOnly: validateOnly, change) {
                    applyDynamicConfiguration(effective)
                }
                return (.none, nil)
            } catch {
                return (error.code, error.message)
            }
        }
        guard ConfigResourceType(rawValue: resourceType) == .topic else {
            return (.invalidRequest, "Only topic and broker configs can be altered on this broker")
        }
        do {
            try topics.alterConfigs(name: name, validateOnly: validateOnly, change)
            return (.none, nil)
        } catch {
            return (error.code, error.message)
        }
    }

    func handleDeleteRecords(_ context: RequestContext, _ request: DeleteRecordsRequest) -> DeleteRecordsResponse {
        var response = DeleteRecordsResponse(throttleTimeMs: 0, topics: [])
        for topicRequest in request.topics {
            let topic = topics.topic(named: topicRequest.name)
            var topicResult = DeleteRecordsResponse.DeleteRecordsTopicResult(name: topicRequest.name, partitions: [])
            for partition in topicRequest.partitions {
                var result = DeleteRecordsResponse.DeleteRecordsPartitionResult(
                    partitionIndex: partition.partitionIndex, lowWatermark: -1, errorCode: 0)
                if !authorized(context, .delete, .topic, topicRequest.name) {
                    result.errorCode = KafkaErrorCode.topicAuthorizationFailed.rawValue
                } else if let log = topic?.partition(partition.partitionIndex) {
                    do {
                        let target = partition.offset == -1 ? nil : Offset(partition.offset)  // -1: the high watermark
                        result.lowWatermark = try log.deleteRecords(before: target).value
                    } catch {
                        result.errorCode = Self.errorCode(for: error).rawValue
                    }
                } else {
                    result.errorCode = KafkaErrorCode.unknownTopicOrPartition.rawValue
                }
                topicResult.partitions.append(result)
            }
            response.topics.append(topicResult)
        }
        return response
    }
}
