import ArgumentParser
import Foundation
import KafkaWire
import NIOPosix
import WireClient

/// Connection options shared by the admin and console commands.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Broker address, HOST:PORT.")
    var bootstrap = "127.0.0.1:9092"

    func address() throws -> BrokerAddress {
        do {
            return try BrokerAddress(parsing: bootstrap)
        } catch {
            throw ValidationError(error.message)
        }
    }

    /// Connects, runs `body`, closes; client errors become one clear line and exit status 1.
    func withClient<T: Sendable>(_ body: @escaping @Sendable (KafkaClient) async throws -> T) throws -> T {
        let address = try address()
        return try blockingAwait {
            let client = try await KafkaClient.connect(to: address, on: MultiThreadedEventLoopGroup.singleton, clientId: "petrel-cli")
            do {
                let value = try await body(client)
                await client.close()
                return value
            } catch {
                await client.close()
                throw error
            }
        }
    }
}

/// Parses repeated `k=v` options.
func parseAssignments(_ values: [String], option: String) throws -> [(String, String)] {
    try values.map { text in
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
            throw ValidationError("\(option) takes key=value, not '\(text)'")
        }
        return (String(text[..<equals]), String(text[text.index(after: equals)...]))
    }
}

/// `--add-config k=v` / `--delete-config k` of `kafka-configs` (each repeatable or comma-separated).
struct ConfigChanges: ParsableArguments {
    @Option(name: .customLong("add-config"), parsing: .singleValue, help: "key=value to set (repeatable, or comma-separated).")
    var addConfig: [String] = []
    @Option(name: .customLong("delete-config"), parsing: .singleValue, help: "Key to remove (repeatable, or comma-separated).")
    var deleteConfig: [String] = []

    /// The keys to set with their values and the keys to remove; at least one of either.
    func parsed() throws -> (set: [(String, String)], delete: [String]) {
        let set = try parseAssignments(addConfig.flatMap { $0.split(separator: ",").map(String.init) }, option: "--add-config")
        let delete = deleteConfig.flatMap { $0.split(separator: ",").map(String.init) }
        guard !set.isEmpty || !delete.isEmpty else { throw ValidationError("give --add-config and/or --delete-config") }
        return (set, delete)
    }
}

/// Writes a JSON value on one line.
func printJSON(_ value: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes]) {
        print(String(decoding: data, as: UTF8.self))
    }
}

struct Topics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, describe, alter and delete topics over the Kafka protocol.",
        subcommands: [TopicsCreate.self, TopicsList.self, TopicsDescribe.self, TopicsAlter.self, TopicsDelete.self]
    )
}

struct TopicsCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a topic.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Topic name.") var positionalName: String?
    @Option(name: .customLong("topic"), help: "Topic name (kafka-topics.sh style; instead of the argument).") var topicOption: String?
    @Option(help: "Partition count (default: the broker's num.partitions).") var partitions: Int32 = -1
    @Option(help: "Replication factor (default: the broker's).") var replicationFactor: Int16 = -1
    @Option(name: .customLong("config"), help: "Topic config key=value (repeatable).") var configs: [String] = []

    var name: String { topicOption ?? positionalName ?? "" }

    func validate() throws {
        guard (positionalName == nil) != (topicOption == nil) else {
            throw ValidationError("give the topic name once: as an argument or with --topic")
        }
    }

    func run() throws {
        let configs = try parseAssignments(configs, option: "--config")
        let (name, partitions, replicationFactor) = (name, partitions, replicationFactor)
        try connection.withClient { client in
            try await client.createTopic(name, partitions: partitions, replicationFactor: replicationFactor, configs: configs)
        }
        print("Created topic \(name).")
    }
}

struct TopicsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List topics.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let topics = try connection.withClient { client in
            let metadata = try await client.metadata(topics: nil)
            return metadata.topics.compactMap { topic in topic.name.map { ($0, topic.partitions.count, topic.isInternal) } }.sorted { $0.0 < $1.0 }
        }
        if json {
            printJSON(topics.map { ["name": $0.0, "partitions": $0.1, "internal": $0.2] as [String: Any] })
        } else {
            for topic in topics { print(topic.0) }
        }
    }
}

struct TopicsDescribe: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "describe", abstract: "Show partitions, leaders, offsets and configs.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Topic name (default: all topics).") var name: String?
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Include configs left at their defaults.") var allConfigs = false

    struct PartitionInfo: Sendable {
        var partition: Int32, leader: Int32, replicas: [Int32], isr: [Int32], start: Int64, end: Int64
    }
    struct ConfigInfo: Sendable {
        var name: String, value: String?, source: String, readOnly: Bool, sensitive: Bool, isDefault: Bool
    }
    struct TopicInfo: Sendable {
        var name: String, id: String, partitions: [PartitionInfo], configs: [ConfigInfo]
    }

    /// DescribeConfigs `config_source` names (Kafka's ConfigSource enum).
    static func sourceName(_ source: Int8) -> String {
        switch source {
        case 1: return "DYNAMIC_TOPIC_CONFIG"
        case 2: return "DYNAMIC_BROKER_CONFIG"
        case 3: return "DYNAMIC_DEFAULT_BROKER_CONFIG"
        case 4: return "STATIC_BROKER_CONFIG"
        case 5: return "DEFAULT_CONFIG"
        case 6: return "DYNAMIC_BROKER_LOGGER_CONFIG"
        case 7: return "CLIENT_METRICS_CONFIG"
        case 8: return "GROUP_CONFIG"
        default: return "UNKNOWN"
        }
    }

    func run() throws {
        let name = name
        let topics = try connection.withClient { client -> [TopicInfo] in
            let metadata = try await client.metadata(topics: name.map { [$0] })
            var out: [TopicInfo] = []
            for topic in metadata.topics.sorted(by: { ($0.name ?? "") < ($1.name ?? "") }) {
                guard let topicName = topic.name else { continue }
                try ClientError.check(topic.errorCode, "describe topic \(topicName)")
                let partitions = topic.partitions.map(\.partitionIndex).sorted()
                let starts = partitions.isEmpty ? [:] : try await client.listOffsets(topicName, partitions: partitions, timestamp: KafkaClient.earliest)
                let ends = partitions.isEmpty ? [:] : try await client.listOffsets(topicName, partitions: partitions, timestamp: KafkaClient.latest)
                let infos = topic.partitions.sorted { $0.partitionIndex < $1.partitionIndex }.map {
                    PartitionInfo(
                        partition: $0.partitionIndex, leader: $0.leaderId, replicas: $0.replicaNodes, isr: $0.isrNodes,
                        start: starts[$0.partitionIndex] ?? -1, end: ends[$0.partitionIndex] ?? -1
                    )
                }
                let configs = try await client.describeTopicConfigs(topicName).map {
                    ConfigInfo(name: $0.name, value: $0.value, source: Self.sourceName($0.configSource), readOnly: $0.readOnly, sensitive: $0.isSensitive, isDefault: $0.configSource == 5 || $0.isDefault)
                }
                out.append(TopicInfo(name: topicName, id: topic.topicId == .zero ? "" : "\(topic.topicId)", partitions: infos, configs: configs))
            }
            return out
        }
        if json {
            printJSON(topics.map { topic in
                [
                    "name": topic.name, "topicId": topic.id,
                    "partitions": topic.partitions.map {
                        ["partition": $0.partition, "leader": $0.leader, "replicas": $0.replicas, "isr": $0.isr, "startOffset": $0.start, "endOffset": $0.end] as [String: Any]
                    },
                    "configs": topic.configs.filter { allConfigs || !$0.isDefault }.map {
                        ["name": $0.name, "value": ($0.sensitive ? nil : $0.value) ?? NSNull(), "source": $0.source, "readOnly": $0.readOnly, "sensitive": $0.sensitive] as [String: Any]
                    },
                ] as [String: Any]
            })
            return
        }
        for topic in topics {
            let id = topic.id.isEmpty ? "" : "\tTopicId: \(topic.id)"
            print("Topic: \(topic.name)\(id)\tPartitionCount: \(topic.partitions.count)")
            for p in topic.partitions {
                let list = { (ids: [Int32]) in ids.map(String.init).joined(separator: ",") }
                print("\tPartition: \(p.partition)\tLeader: \(p.leader)\tReplicas: \(list(p.replicas))\tIsr: \(list(p.isr))\tStartOffset: \(p.start)\tEndOffset: \(p.end)")
            }
            let shown = topic.configs.filter { allConfigs || !$0.isDefault }
            if !shown.isEmpty {
                print("\tConfigs:")
                for c in shown.sorted(by: { $0.name < $1.name }) {
                    let value = c.sensitive ? "(sensitive)" : (c.value ?? "null")
                    print("\t\t\(c.name)=\(value)\t(\(c.source)\(c.readOnly ? ", read-only" : ""))")
                }
            }
        }
    }
}

struct TopicsAlter: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "alter", abstract: "Add partitions and change configs.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Topic name.") var name: String
    @Option(help: "New total partition count (only increases).") var partitions: Int32?
    @Option(name: .customLong("config"), help: "Set a config, key=value (repeatable).") var configs: [String] = []
    @Option(name: .customLong("delete-config"), help: "Reset a config to its default (repeatable).") var deleteConfigs: [String] = []

    func validate() throws {
        guard partitions != nil || !configs.isEmpty || !deleteConfigs.isEmpty else {
            throw ValidationError("nothing to alter: give --partitions, --config or --delete-config")
        }
    }

    func run() throws {
        let set = try parseAssignments(configs, option: "--config")
        let (name, partitions, deleteConfigs) = (name, partitions, deleteConfigs)
        try connection.withClient { client in
            if let partitions { try await client.createPartitions(name, totalCount: partitions) }
            if !set.isEmpty || !deleteConfigs.isEmpty { try await client.alterTopicConfigs(name, set: set, delete: deleteConfigs) }
        }
        print("Altered topic \(name).")
    }
}

struct TopicsDelete: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a topic.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Topic name.") var name: String

    func run() throws {
        let name = name
        try connection.withClient { client in try await client.deleteTopic(name) }
        print("Deleted topic \(name).")
    }
}
