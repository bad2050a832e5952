import BrokerCore
import CommitLog
import Testing

@Suite struct ConfigurationTests {
    @Test func propertiesParseCommentsAndSeparators() throws {
        let entries = try Properties.parse("# comment\n! other\nnum.partitions = 3\nlog.dirs:/tmp/x\n\n")
        #expect(entries.map(\.key) == ["num.partitions", "log.dirs"])
        #expect(entries.map(\.value) == ["3", "/tmp/x"])
        #expect(throws: ConfigurationError.self) { try Properties.parse("no separator here") }
    }

    @Test func brokerKeysApply() throws {
        var configuration = BrokerConfiguration()
        try configuration.apply(key: "listeners", value: "PLAINTEXT://0.0.0.0:19092")
        try configuration.apply(key: "num.partitions", value: "4")
        try configuration.apply(key: "auto.create.topics.enable", value: "false")
        try configuration.apply(key: "log.dirs", value: "/data/a,/data/b")
        #expect(configuration.listenHost == "0.0.0.0")
        #expect(configuration.listenPort == 19092)
        #expect(configuration.numPartitions == 4)
        #expect(configuration.autoCreateTopics == false)
        #expect(configuration.dataDirectory == "/data/a")
        #expect(throws: ConfigurationError.self) { try configuration.apply(key: "num.partitions", value: "zero") }
        #expect(throws: ConfigurationError.self) { try configuration.apply(key: "num.partitions", value: "0") }
        #expect(throws: ConfigurationError.self) { try configuration.apply(key: "log.retention.ms", value: "soon") }
    }

    @Test func topicDefaultsFollowKafka() {
        let resolved = Dictionary(uniqueKeysWithValues: BrokerConfiguration().resolveTopicConfigs(overrides: [:]).map { ($0.name, $0) })
        #expect(resolved["retention.ms"]?.value == "604800000")
        #expect(resolved["segment.bytes"]?.value == "1073741824")
        #expect(resolved["cleanup.policy"]?.value == "delete")
        #expect(resolved["max.message.bytes"]?.value == "1048588")
        #expect(resolved["retention.ms"]?.source == .defaultConfig)
    }

    @Test func brokerSynonymsAndOverridesResolveInKafkaOrder() throws {
        var configuration = BrokerConfiguration()
        try configuration.apply(key: "log.retention.hours", value: "2")
        var resolved = configuration.resolveTopicConfigs(overrides: [:]).first { $0.name == "retention.ms" }!
        #expect(resolved.value == "7200000")
        #expect(resolved.source == .staticBrokerConfig)
        #expect(resolved.synonyms.map(\.name) == ["log.retention.hours", "retention.ms"])

        try configuration.apply(key: "log.retention.ms", value: "1000")
        resolved = configuration.resolveTopicConfigs(overrides: [:]).first { $0.name == "retention.ms" }!
        #expect(resolved.value == "1000")

        resolved = configuration.resolveTopicConfigs(overrides: ["retention.ms": "5"]).first { $0.name == "retention.ms" }!
        #expect(resolved.value == "5")
        #expect(resolved.source == .dynamicTopicConfig)
        #expect(configuration.logConfiguration(overrides: ["retention.ms": "5", "segment.bytes": "1048576"]).segmentBytes == 1_048_576)
    }

    @Test func topicConfigValidation() {
        #expect(TopicConfigs.validate(name: "retention.ms", value: "100") == nil)
        #expect(TopicConfigs.validate(name: "retention.ms", value: "abc") != nil)
        #expect(TopicConfigs.validate(name: "no.such.config", value: "1") != nil)
        #expect(TopicConfigs.validate(name: "cleanup.policy", value: "compact,delete") == nil)
        #expect(TopicConfigs.validate(name: "cleanup.policy", value: "shred") != nil)
        #expect(TopicConfigs.validate(name: "min.cleanable.dirty.ratio", value: "1.5") != nil)
    }

    @Test func topicNames() {
        #expect(TopicRegistry.validateName("orders.v1_eu-west") == nil)
        #expect(TopicRegistry.validateName("") != nil)
        #expect(TopicRegistry.validateName("..") != nil)
        #expect(TopicRegistry.validateName("has space") != nil)
        #expect(TopicRegistry.validateName(String(repeating: "a", count: 250)) != nil)
    }
}
