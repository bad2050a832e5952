import ArgumentParser
import Foundation
import KafkaWire
import WireClient

/// `petrel quotas`: client quotas (KIP-546, like `kafka-configs --entity-type users/clients`)
/// through DescribeClientQuotas / AlterClientQuotas.
struct Quotas: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe and alter client quotas (producer_byte_rate, consumer_byte_rate, request_percentage).",
        subcommands: [QuotasDescribe.self, QuotasAlter.self]
    )
}

/// The entity a quota belongs to: a user, a client-id, or both; `--default-*` is Kafka's default
/// entity of that type (`<default>` in kafka-configs).
struct QuotaEntity: ParsableArguments {
    @Option(help: "User name (the authenticated principal's name; ANONYMOUS when unauthenticated).") var user: String?
    @Flag(help: "The default user entity.") var defaultUser = false
    @Option(help: "Client id.") var clientId: String?
    @Flag(help: "The default client-id entity.") var defaultClientId = false

    func validate() throws {
        if user != nil && defaultUser { throw ValidationError("give --user or --default-user, not both") }
        if clientId != nil && defaultClientId { throw ValidationError("give --client-id or --default-client-id, not both") }
    }

    /// (entity type, name: nil for the default entity) pairs given on the command line.
    var parts: [(String, String?)] {
        var parts: [(String, String?)] = []
        if user != nil || defaultUser { parts.append(("user", user)) }
        if clientId != nil || defaultClientId { parts.append(("client-id", clientId)) }
        return parts
    }
}

private func entityText(_ parts: [(String, String?)]) -> String {
    parts.map { "\($0.0)=\($0.1 ?? "<default>")" }.joined(separator: ",")
}

struct QuotasDescribe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe", abstract: "List quotas: all of them, or those of the entities given (exactly, with --strict).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var entity: QuotaEntity
    @Flag(help: "Only entities made of exactly the given entity types.") var strict = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        // match type 0: this name, 1: the default entity.
        let components = entity.parts.map { type, name in
            DescribeClientQuotasRequest.ComponentData(entityType: type, matchType: name == nil ? 1 : 0, match: name)
        }
        let request = DescribeClientQuotasRequest(components: components, strict: strict)
        let response = try connection.withClient { client in try await client.connection.send(request, version: 1) }
        try ClientError.check(response.errorCode, "describe client quotas", message: response.errorMessage)
        let rows = (response.entries ?? []).map { entry in
            (entry.entity.map { ($0.entityType, $0.entityName) }, entry.values.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 })
        }.sorted { entityText($0.0) < entityText($1.0) }
        if json {
            printJSON(rows.map { parts, values in
                [
                    "entity": parts.map { ["type": $0.0, "name": $0.1 as Any? ?? NSNull()] },
                    "values": Dictionary(uniqueKeysWithValues: values),
                ] as [String: Any]
            })
            return
        }
        for (parts, values) in rows {
            print("\(entityText(parts))\t" + values.map { "\($0.0)=\($0.1)" }.joined(separator: ","))
        }
    }
}

struct QuotasAlter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alter", abstract: "Set or remove an entity's quotas (kafka-configs --alter --add-config / --delete-config).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var entity: QuotaEntity
    @OptionGroup var changes: ConfigChanges
    @Flag(help: "Check the change without making it.") var validateOnly = false

    func run() throws {
        let parts = entity.parts
        guard !parts.isEmpty else { throw ValidationError("give --user/--default-user and/or --client-id/--default-client-id") }
        let (additions, removals) = try changes.parsed()
        var ops: [AlterClientQuotasRequest.OpData] = []
        for (key, text) in additions {
            guard let value = Double(text) else { throw ValidationError("\(key): '\(text)' is not a number") }
            ops.append(.init(key: key, value: value, remove: false))
        }
        ops += removals.map { .init(key: $0, value: 0, remove: true) }
        let request = AlterClientQuotasRequest(
            entries: [.init(entity: parts.map { .init(entityType: $0.0, entityName: $0.1) }, ops: ops)], validateOnly: validateOnly)
        let response = try connection.withClient { client in try await client.connection.send(request, version: 1) }
        for entry in response.entries {
            try ClientError.check(entry.errorCode, "alter quotas of \(entityText(parts))", message: entry.errorMessage)
        }
        print("\(entityText(parts)): \(validateOnly ? "valid" : "altered")")
    }
}
