import ArgumentParser
import Foundation
import KafkaWire
import NIOCore
import WireClient

struct Groups: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, describe (members, assignments, committed offsets, lag), reset offsets of and delete groups (classic, consumer, share).",
        subcommands: [GroupsList.self, GroupsDescribe.self, GroupsResetOffsets.self, GroupsDelete.self]
    )
}

/// One partition's committed offset, log end and lag.
struct PartitionLag: Sendable {
    var topic: String
    var partition: Int32
    var committed: Int64
    var logEnd: Int64
    var owner: String?
    var lag: Int64? { committed >= 0 && logEnd >= 0 ? max(0, logEnd - committed) : nil }
}

struct GroupDescription: Sendable {
    struct Member: Sendable {
        var memberId: String
        var instanceId: String?
        var clientId: String
        var host: String
        var assignment: [(topic: String, partitions: [Int32])]
        /// The member epoch (consumer-protocol groups only).
        var memberEpoch: Int32? = nil
    }
    var group: String
    var state: String
    /// "consumer" for KIP-848 groups (ConsumerGroupHeartbeat), "classic" for JoinGroup/SyncGroup groups.
    var groupProtocol: String = "classic"
    var protocolType: String
    var protocolName: String
    var members: [Member]
    var offsets: [PartitionLag]
}

enum GroupQueries {
    static func describe(_ client: KafkaClient, group: String) async throws -> GroupDescription {
        // KIP-932 share groups (ShareGroupDescribe answers GROUP_ID_NOT_FOUND for other groups).
        if client.connection.brokerVersions[.shareGroupDescribe]?.contains(1) == true {
            let response = try await client.connection.send(ShareGroupDescribeRequest(groupIds: [group]), version: 1)
            if let entry = response.groups.first, entry.errorCode == 0 {
                let members = entry.members.map { member in
                    GroupDescription.Member(
                        memberId: member.memberId, instanceId: nil, clientId: member.clientId, host: member.clientHost,
                        assignment: member.assignment.topicPartitions.map { ($0.topicName, $0.partitions.sorted()) })
                }
                return GroupDescription(
                    group: group, state: entry.groupState, groupProtocol: "share", protocolType: "share",
                    protocolName: entry.assignorName, members: members, offsets: try await shareStartOffsets(client, group: group))
            }
        }
        // KIP-848 groups first (ConsumerGroupDescribe answers GROUP_ID_NOT_FOUND for classic groups).
        if client.connection.brokerVersions[.consumerGroupDescribe]?.contains(0) == true {
            let response = try await client.connection.send(ConsumerGroupDescribeRequest(groupIds: [group]), version: 0)
            if let entry = response.groups.first, entry.errorCode == 0 {
                var owners: [String: String] = [:]
                let members = entry.members.map { member in
                    for topic in member.assignment.topicPartitions {
                        for partition in topic.partitions { owners["\(topic.topicName)/\(partition)"] = member.memberId }
                    }
                    return GroupDescription.Member(
                        memberId: member.memberId, instanceId: member.instanceId, clientId: member.clientId, host: member.clientHost,
                        assignment: member.assignment.topicPartitions.map { ($0.topicName, $0.partitions.sorted()) },
                        memberEpoch: member.memberEpoch)
                }
                return GroupDescription(
                    group: group, state: entry.groupState, groupProtocol: "consumer", protocolType: "consumer",
                    protocolName: entry.assignorName, members: members,
                    offsets: try await lags(client, group: group, owners: owners))
            }
        }
        let described = try await client.connection.send(DescribeGroupsRequest(groups: [group], includeAuthorizedOperations: false), version: 5)
        guard let entry = described.groups.first else { throw ClientError(.protocolViolation, "empty DescribeGroups response") }
        try ClientError.check(entry.errorCode, "describe group \(group)")
        var members: [GroupDescription.Member] = []
        var owners: [String: String] = [:]
        for member in entry.members {
            var assignment: [(topic: String, partitions: [Int32])] = []
            if entry.protocolType == "consumer", var bytes = Optional(member.memberAssignment), bytes.readableBytes >= 2,
                let version = bytes.readInteger(as: Int16.self),
                let decoded = try? ConsumerProtocolAssignment(from: &bytes, version: min(version, ConsumerProtocolAssignment.highestSupportedVersion))
            {
                assignment = decoded.assignedPartitions.map { ($0.topic, $0.partitions.sorted()) }
                for topic in decoded.assignedPartitions {
                    for partition in topic.partitions { owners["\(topic.topic)/\(partition)"] = member.memberId }
                }
            }
            members.append(.init(memberId: member.memberId, instanceId: member.groupInstanceId, clientId: member.clientId, host: member.clientHost, assignment: assignment))
        }
        return GroupDescription(
            group: group, state: entry.groupState, protocolType: entry.protocolType, protocolName: entry.protocolData, members: members,
            offsets: try await lags(client, group: group, owners: owners))
    }

    /// A share group's share-partition start offsets (DescribeShareGroupOffsets), with each
    /// partition's log end: the lag counts the records not yet acknowledged or archived.
    static func shareStartOffsets(_ client: KafkaClient, group: String) async throws -> [PartitionLag] {
        guard client.connection.brokerVersions[.describeShareGroupOffsets]?.contains(0) == true else { return [] }
        let request = DescribeShareGroupOffsetsRequest(groups: [.init(groupId: group, topics: nil)])
        let response = try await client.connection.send(request, version: 0)
        guard let entry = response.groups.first else { return [] }
        try ClientError.check(entry.errorCode, "describe share group offsets of \(group)")
        var offsets: [PartitionLag] = []
        for topic in entry.topics.sorted(by: { $0.topicName < $1.topicName }) {
            let partitions = topic.partitions.map(\.partitionIndex).sorted()
            let ends = (try? await client.listOffsets(topic.topicName, partitions: partitions, timestamp: KafkaClient.latest)) ?? [:]
            for partition in topic.partitions.sorted(by: { $0.partitionIndex < $1.partitionIndex }) {
                offsets.append(PartitionLag(
                    topic: topic.topicName, partition: partition.partitionIndex, committed: partition.startOffset,
                    logEnd: ends[partition.partitionIndex] ?? -1, owner: nil))
            }
        }
        return offsets
    }

    /// Committed offsets (all partitions), then each partition's log end for the lag.
    static func lags(_ client: KafkaClient, group: String, owners: [String: String]) async throws -> [PartitionLag] {
        let fetched = try await client.connection.send(OffsetFetchRequest(groupId: group, topics: nil, requireStable: false), version: 7)
        try ClientError.check(fetched.errorCode, "fetch committed offsets of \(group)")
        var offsets: [PartitionLag] = []
        for topic in fetched.topics.sorted(by: { $0.name < $1.name }) {
            let partitions = topic.partitions.map(\.partitionIndex).sorted()
            let ends = (try? await client.listOffsets(topic.name, partitions: partitions, timestamp: KafkaClient.latest)) ?? [:]
            for partition in topic.partitions.sorted(by: { $0.partitionIndex < $1.partitionIndex }) {
                offsets.append(
                    PartitionLag(
                        topic: topic.name, partition: partition.partitionIndex, committed: partition.committedOffset,
                        logEnd: ends[partition.partitionIndex] ?? -1, owner: owners["\(topic.name)/\(partition.partitionIndex)"]))
            }
        }
        return offsets
    }
}

struct GroupsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List groups with their state and type (classic, consumer, share).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let groups = try connection.withClient { client in
            // v5 names the group type (classic, consumer, share).
            let version: Int16 = client.connection.brokerVersions[.listGroups]?.contains(5) == true ? 5 : 4
            let response = try await client.connection.send(ListGroupsRequest(statesFilter: []), version: version)
            try ClientError.check(response.errorCode, "list groups")
            return response.groups.map { ($0.groupId, $0.groupState, $0.protocolType, $0.groupType.isEmpty ? "classic" : $0.groupType.lowercased()) }
                .sorted { $0.0 < $1.0 }
        }
        if json {
            printJSON(groups.map { ["group": $0.0, "state": $0.1, "protocolType": $0.2, "type": $0.3] })
        } else {
            for group in groups { print("\(group.0)\t\(group.1)\t\(group.3)") }
        }
    }
}

struct GroupsDescribe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe", abstract: "Show a group's state, members and assignments, committed offsets and lag.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Group id.") var group: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let group = group
        let description = try connection.withClient { client in try await GroupQueries.describe(client, group: group) }
        if json {
            printJSON([
                "group": description.group, "state": description.state, "groupProtocol": description.groupProtocol,
                "protocolType": description.protocolType,
                "protocol": description.protocolName,
                "members": description.members.map { member -> [String: Any] in
                    [
                        "memberId": member.memberId, "groupInstanceId": member.instanceId ?? NSNull(), "clientId": member.clientId,
                        "host": member.host, "memberEpoch": member.memberEpoch.map { Int($0) as Any } ?? NSNull(),
                        "assignment": member.assignment.map { ["topic": $0.topic, "partitions": $0.partitions.map(Int.init)] },
                    ]
                },
                "offsets": description.offsets.map { lag -> [String: Any] in
                    [
                        "topic": lag.topic, "partition": Int(lag.partition), "committed": lag.committed, "logEndOffset": lag.logEnd,
                        "lag": lag.lag.map { $0 as Any } ?? NSNull(), "owner": lag.owner ?? NSNull(),
                    ]
                },
            ] as [String: Any])
            return
        }
        print("Group \(description.group): \(description.state), \(description.groupProtocol) protocol (\([description.protocolType, description.protocolName].filter { !$0.isEmpty }.joined(separator: "/").nilIfEmpty ?? "no protocol"), \(description.members.count) member(s))")
        if !description.members.isEmpty {
            let epochs = description.members.contains { $0.memberEpoch != nil }
            print("\nMEMBER\t\(epochs ? "EPOCH\t" : "")CLIENT-ID\tHOST\tASSIGNMENT")
            for member in description.members {
                let assignment = member.assignment.map { "\($0.topic):\($0.partitions.map(String.init).joined(separator: ","))" }.joined(separator: " ")
                let epoch = epochs ? "\(member.memberEpoch.map(String.init) ?? "-")\t" : ""
                print("\(member.memberId)\t\(epoch)\(member.clientId)\t\(member.host)\t\(assignment.isEmpty ? "-" : assignment)")
            }
        }
        print("\nTOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tMEMBER")
        for lag in description.offsets {
            let lagText = lag.lag.map(String.init) ?? "-"
            print("\(lag.topic)\t\(lag.partition)\t\(lag.committed)\t\(lag.logEnd)\t\(lagText)\t\(lag.owner ?? "-")")
        }
    }
}

struct GroupsResetOffsets: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset-offsets",
        abstract: "Reset a group's committed offsets, or a share group's start offsets (the group must have no active members). Dry run unless --execute.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Group id.") var group: String
    @Option(help: "Topic to reset (all partitions unless --partition).") var topic: String
    @Option(help: "Only these partitions (repeatable).") var partition: [Int32] = []
    @Flag(help: "Reset to the log start.") var toEarliest = false
    @Flag(help: "Reset to the log end.") var toLatest = false
    @Option(help: "Reset to this offset.") var toOffset: Int64?
    @Option(help: "Move the committed offsets by N (negative = back).") var shiftBy: Int64?
    @Flag(help: "Apply the change (default: only show the plan).") var execute = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        let chosen = [toEarliest, toLatest, toOffset != nil, shiftBy != nil].filter { $0 }.count
        guard chosen == 1 else { throw ValidationError("choose exactly one of --to-earliest, --to-latest, --to-offset, --shift-by") }
    }

    func run() throws {
        let (group, topic, only, toEarliest, toLatest, toOffset, shiftBy, execute) = (group, topic, partition, toEarliest, toLatest, toOffset, shiftBy, execute)
        let plan = try connection.withClient { client -> [(Int32, Int64, Int64)] in
            let description = try await GroupQueries.describe(client, group: group)
            guard description.members.isEmpty else {
                throw ValidationError("group \(group) has \(description.members.count) active member(s) (state \(description.state)); stop its consumers first")
            }
            guard let metadata = try await client.topic(topic) else { throw ValidationError("topic \(topic) does not exist") }
            var partitions = metadata.partitions.map(\.partitionIndex).sorted()
            if !only.isEmpty { partitions = partitions.filter(only.contains) }
            let starts = try await client.listOffsets(topic, partitions: partitions, timestamp: KafkaClient.earliest)
            let ends = try await client.listOffsets(topic, partitions: partitions, timestamp: KafkaClient.latest)
            var current: [Int32: Int64] = [:]
            for lag in description.offsets where lag.topic == topic { current[lag.partition] = lag.committed }
            var plan: [(Int32, Int64, Int64)] = []
            for partition in partitions {
                let start = starts[partition] ?? 0
                let end = ends[partition] ?? 0
                let before = current[partition] ?? -1
                var target: Int64
                if toEarliest { target = start } else if toLatest { target = end } else if let toOffset { target = toOffset } else {
                    target = (before >= 0 ? before : start) + (shiftBy ?? 0)
                }
                target = min(max(target, start), end)  // Kafka clamps to the valid range
                plan.append((partition, before, target))
            }
            if execute, description.groupProtocol == "share" {
                // KIP-932: a share group's start offsets (AlterShareGroupOffsets).
                let request = AlterShareGroupOffsetsRequest(
                    groupId: group, topics: [.init(topicName: topic, partitions: plan.map { .init(partitionIndex: $0.0, startOffset: $0.2) })])
                let response = try await client.connection.send(request, version: 0)
                for topicResult in response.responses {
                    for partitionResult in topicResult.partitions {
                        try ClientError.check(partitionResult.errorCode, "alter share offset \(topic)-\(partitionResult.partitionIndex)")
                    }
                }
            } else if execute {
                let request = OffsetCommitRequest(
                    groupId: group, generationIdOrMemberEpoch: -1, memberId: "", groupInstanceId: nil,
                    topics: [.init(name: topic, partitions: plan.map { .init(partitionIndex: $0.0, committedOffset: $0.2, committedMetadata: "") })])
                let response = try await client.connection.send(request, version: 8)
                for topicResult in response.topics {
                    for partitionResult in topicResult.partitions {
                        try ClientError.check(partitionResult.errorCode, "commit \(topic)-\(partitionResult.partitionIndex)")
                    }
                }
            }
            return plan
        }
        if json {
            printJSON(plan.map { ["topic": topic, "partition": Int($0.0), "before": $0.1, "after": $0.2] as [String: Any] })
        } else {
            print("TOPIC\tPARTITION\tCURRENT-OFFSET\tNEW-OFFSET")
            for entry in plan { print("\(topic)\t\(entry.0)\t\(entry.1)\t\(entry.2)") }
            if !execute { print("(dry run: add --execute to apply)") }
        }
    }
}

struct GroupsDelete: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete consumer groups (they must be empty).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Group ids.") var groups: [String]

    func run() throws {
        let groups = groups
        try connection.withClient { client in
            let response = try await client.connection.send(DeleteGroupsRequest(groupsNames: groups), version: 2)
            for result in response.results {
                try ClientError.check(result.errorCode, "delete group \(result.groupId)")
            }
        }
        for group in groups { print("Deleted group \(group).") }
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
