import ArgumentParser

@main
struct Petrel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "petrel",
        abstract: "A single-node, Kafka-compatible message broker built around its storage engine.",
        subcommands: [Serve.self, Dump.self, Topics.self, Produce.self, Consume.self, Groups.self, Transactions.self, Bench.self, Users.self, Acls.self, Quotas.self, Configs.self]
    )

    static func main() {
        MallocPolicy.apply()
        main(nil)
    }
}
