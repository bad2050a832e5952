import ArgumentParser
import Foundation
import KafkaWire
import WireClient

/// `petrel configs`: the broker's dynamic configs (like `kafka-configs --entity-type brokers`)
/// through DescribeConfigs / IncrementalAlterConfigs on the BROKER resource: one broker's node id
/// (DYNAMIC_BROKER_CONFIG) or the cluster-wide defaults (DYNAMIC_DEFAULT_BROKER_CONFIG). Topic
/// configs are `petrel topics describe|alter`; client quotas `petrel quotas`.
struct Configs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe and alter broker configs (dynamic ones take effect without a restart).",
        subcommands: [ConfigsDescribe.self, ConfigsAlter.self]
    )
}

struct BrokerEntity: ParsableArguments {
    @Option(help: "The broker's node id.") var broker: Int32?
    @Flag(help: "The cluster-wide defaults of every broker (kafka-configs --entity-default).") var brokerDefaults = false

    func validate() throws {
        guard (broker == nil) != !brokerDefaults else { throw ValidationError("give exactly one of --broker ID or --broker-defaults") }
    }

    /// The DescribeConfigs resource name: the node id, or "" for the defaults.
    var resourceName: String { broker.map(String.init) ?? "" }
}

struct ConfigsDescribe: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "describe", abstract: "Show a broker's configs and where each comes from.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var entity: BrokerEntity
    @Flag(help: "Include configs left at their defaults.") var allConfigs = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let name = entity.resourceName
        let configs = try connection.withClient { client in
            try await client.describeConfigs(resourceType: KafkaClient.brokerResourceType, name: name)
        }.filter { allConfigs || !($0.configSource == 5 || $0.isDefault) }.sorted { $0.name < $1.name }
        if json {
            printJSON(configs.map {
                [
                    "name": $0.name, "value": ($0.isSensitive ? nil : $0.value) ?? NSNull(),
                    "source": TopicsDescribe.sourceName($0.configSource), "readOnly": $0.readOnly, "sensitive": $0.isSensitive,
                ] as [String: Any]
            })
            return
        }
        for c in configs {
            let value = c.isSensitive ? "(sensitive)" : (c.value ?? "null")
            print("\(c.name)=\(value)\t(\(TopicsDescribe.sourceName(c.configSource))\(c.readOnly ? ", read-only" : ""))")
        }
    }
}

struct ConfigsAlter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alter", abstract: "Set or remove dynamic broker configs (kafka-configs --alter --add-config / --delete-config).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var entity: BrokerEntity
    @OptionGroup var changes: ConfigChanges

    func run() throws {
        let (set, delete) = try changes.parsed()
        let name = entity.resourceName
        try connection.withClient { client in
            try await client.alterConfigs(resourceType: KafkaClient.brokerResourceType, name: name, set: set, delete: delete)
        }
        print("\(name.isEmpty ? "broker defaults" : "broker \(name)"): altered")
    }
}
