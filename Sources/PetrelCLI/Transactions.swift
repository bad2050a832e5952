import ArgumentParser
import Foundation
import KafkaWire
import NIOCore
import WireClient

struct Transactions: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, describe and abort transactions (like kafka-transactions.sh).",
        subcommands: [TransactionsList.self, TransactionsDescribe.self, TransactionsAbort.self]
    )
}

struct TransactionsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List transactional ids with their state.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Only transactions in this state (Ongoing, CompleteCommit, ...); repeatable.") var state: [String] = []
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let filters = state
        let rows = try connection.withClient { client in
            let response = try await client.connection.send(ListTransactionsRequest(stateFilters: filters, producerIdFilters: []), version: 0)
            try ClientError.check(response.errorCode, "list transactions")
            return response.transactionStates.map { ($0.transactionalId, $0.producerId, $0.transactionState) }.sorted { $0.0 < $1.0 }
        }
        if json {
            printJSON(rows.map { ["transactionalId": $0.0, "producerId": $0.1, "state": $0.2] as [String: Any] })
        } else {
            print("TRANSACTIONAL-ID\tPRODUCER-ID\tSTATE")
            for row in rows { print("\(row.0)\t\(row.1)\t\(row.2)") }
        }
    }
}

struct TransactionsDescribe: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "describe", abstract: "Show a transactional id's producer, state and partitions.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Transactional id.") var transactionalId: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let id = transactionalId
        let state = try connection.withClient { client in
            let response = try await client.connection.send(DescribeTransactionsRequest(transactionalIds: [id]), version: 0)
            guard let state = response.transactionStates.first else { throw ClientError(.protocolViolation, "empty DescribeTransactions response") }
            try ClientError.check(state.errorCode, "describe transaction \(id)")
            return state
        }
        let partitions = state.topics.flatMap { topic in topic.partitions.map { "\(topic.topic)-\($0)" } }
        if json {
            printJSON([
                "transactionalId": state.transactionalId, "state": state.transactionState, "producerId": state.producerId,
                "producerEpoch": Int(state.producerEpoch), "timeoutMs": Int(state.transactionTimeoutMs),
                "startTimeMs": state.transactionStartTimeMs, "partitions": partitions,
            ] as [String: Any])
        } else {
            print("TRANSACTIONAL-ID\tPRODUCER-ID\tEPOCH\tSTATE\tTIMEOUT-MS\tSTART-TIME-MS\tPARTITIONS")
            print("\(state.transactionalId)\t\(state.producerId)\t\(state.producerEpoch)\t\(state.transactionState)\t\(state.transactionTimeoutMs)\t\(state.transactionStartTimeMs)\t\(partitions.joined(separator: ","))")
        }
    }
}

/// Aborts a transactional id's open transaction the way a new producer instance would: an
/// InitProducerId for it fences the current producer (epoch bump) and aborts what it left open.
struct TransactionsAbort: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abort", abstract: "Abort a transactional id's open transaction (fences its current producer).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Transactional id.") var transactionalId: String
    @Option(help: "Transaction timeout sent with the fencing InitProducerId.") var timeoutMs: Int32 = 60_000

    func run() throws {
        let id = transactionalId
        let timeout = timeoutMs
        let result = try connection.withClient { client -> String in
            for _ in 0..<100 {
                let response = try await client.connection.send(
                    InitProducerIdRequest(transactionalId: id, transactionTimeoutMs: timeout, producerId: -1, producerEpoch: -1), version: 0)
                if response.errorCode == KafkaErrorCode.concurrentTransactions.rawValue {
                    try await Task.sleep(nanoseconds: 100_000_000)
                    continue
                }
                try ClientError.check(response.errorCode, "abort transaction \(id)")
                return "aborted (producer \(response.producerId) now at epoch \(response.producerEpoch))"
            }
            throw ClientError(.protocolViolation, "the transaction of \(id) did not complete")
        }
        print("\(id): \(result)")
    }
}
