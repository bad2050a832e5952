import BrokerCore
import CommitLog
import KafkaWire
import Testing

/// Dynamic broker configs through encoded IncrementalAlterConfigs / DescribeConfigs requests,
/// including the cluster-wide default resource ("") that librdkafka cannot address.
@Suite(.serialized) struct DynamicBrokerConfigTests {
    static func set(_ harness: BrokerHarness, _ resource: String, _ configs: [String: String?]) throws -> IncrementalAlterConfigsResponse {
        let entries = configs.sorted { $0.key < $1.key }.map { IncrementalAlterConfigsRequest.AlterableConfig(name: $0.key, configOperation: $0.value == nil ? 1 : 0, value: $0.value ?? nil) }
        return try harness.call(IncrementalAlterConfigsRequest(resources: [.init(resourceType: 4, resourceName: resource, configs: entries)]), version: 1)
    }

    static func describe(_ harness: BrokerHarness, type: Int8, _ name: String) throws -> [String: DescribeConfigsResponse.DescribeConfigsResourceResult] {
        let response = try harness.call(DescribeConfigsRequest(resources: [.init(resourceType: type, resourceName: name, configurationKeys: nil)], includeSynonyms: true), version: 4)
        #expect(response.results[0].errorCode == 0)
        return Dictionary(uniqueKeysWithValues: response.results[0].configs.map { ($0.name, $0) })
    }

    @Test func defaultAndPerBrokerLayersWithKafkaSources() throws {
        let harness = try BrokerHarness(sets: ["log.retention.ms": "1000000"])
        _ = try harness.call(CreateTopicsRequest(topics: [.init(name: "d", numPartitions: 1, replicationFactor: 1)]), version: 7)
        #expect(try Self.set(harness, "", ["log.retention.ms": "2000000", "log.segment.bytes": "70000"]).responses[0].errorCode == 0)
        // The default resource lists only what was set on it.
        let defaults = try Self.describe(harness, type: 4, "")
        #expect(Set(defaults.keys) == ["log.retention.ms", "log.segment.bytes"])
        #expect(defaults["log.retention.ms"]?.configSource == ConfigSource.dynamicDefaultBrokerConfig.rawValue)
        // The topic follows the default over the static value, and says so with its synonyms.
        var topic = try Self.describe(harness, type: 2, "d")
        #expect(topic["retention.ms"]?.value == "2000000")
        #expect(topic["retention.ms"]?.configSource == ConfigSource.dynamicDefaultBrokerConfig.rawValue)
        #expect(topic["retention.ms"]?.synonyms.map(\.source) == [
            ConfigSource.dynamicDefaultBrokerConfig.rawValue, ConfigSource.staticBrokerConfig.rawValue, ConfigSource.defaultConfig.rawValue,
        ])
        #expect(harness.broker.topics.topic(named: "d")!.partitions[0].configuration.segmentBytes == 70000)
        // Per-broker beats the default.
        #expect(try Self.set(harness, "0", ["log.retention.ms": "3000000"]).responses[0].errorCode == 0)
        topic = try Self.describe(harness, type: 2, "d")
        #expect(topic["retention.ms"]?.value == "3000000")
        #expect(topic["retention.ms"]?.configSource == ConfigSource.dynamicBrokerConfig.rawValue)
        #expect(harness.broker.topics.topic(named: "d")!.partitions[0].configuration.retentionMs == 3_000_000)
        let broker = try Self.describe(harness, type: 4, "0")
        #expect(broker["log.retention.ms"]?.synonyms.map(\.value) == ["3000000", "2000000", "1000000"])
        #expect(broker["log.retention.ms"]?.readOnly == false)
        #expect(broker["node.id"]?.readOnly == true)
        // log.retention.check.interval.ms takes effect on the log manager at once.
        #expect(try Self.set(harness, "0", ["log.retention.check.interval.ms": "1234"]).responses[0].errorCode == 0)
        #expect(harness.broker.logManager.retentionCheckIntervalMs == 1234)
    }

    @Test func refusalsUseKafkaCodesAndChangeNothing() throws {
        let harness = try BrokerHarness()
        let outside = try Self.set(harness, "0", ["listeners": "PLAINTEXT://127.0.0.1:1"])
        #expect(outside.responses[0].errorCode == KafkaErrorCode.invalidRequest.rawValue)
        let mixed = try Self.set(harness, "", ["log.retention.ms": "5", "delete.topic.enable": "false"])
        #expect(mixed.responses[0].errorCode == KafkaErrorCode.invalidRequest.rawValue)
        let bad = try Self.set(harness, "0", ["log.segment.bytes": "3"])
        #expect(bad.responses[0].errorCode == KafkaErrorCode.invalidConfig.rawValue)
        let otherNode = try Self.set(harness, "7", ["log.retention.ms": "5"])
        #expect(otherNode.responses[0].errorCode == KafkaErrorCode.invalidRequest.rawValue)
        #expect(harness.broker.dynamicConfig.brokerConfigs.isEmpty && harness.broker.dynamicConfig.defaultConfigs.isEmpty)
        // validateOnly checks without keeping.
        let validated = try harness.call(
            IncrementalAlterConfigsRequest(
                resources: [.init(resourceType: 4, resourceName: "0", configs: [.init(name: "log.retention.ms", configOperation: 0, value: "77")])],
                validateOnly: true), version: 1)
        #expect(validated.responses[0].errorCode == 0)
        #expect(harness.broker.dynamicConfig.brokerConfigs.isEmpty)
    }
}
