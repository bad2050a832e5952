import GroupCoordination
import KafkaWire
import Security

extension Broker {
    /// OffsetCommit: as Kafka's `KafkaApis.handleOffsetCommitRequest`, partitions this broker does
    /// not host are answered UNKNOWN_TOPIC_OR_PARTITION and never stored; the rest go to the group
    /// coordinator, whose answers are merged back in.
    func handleOffsetCommit(_ context: RequestContext, _ request: OffsetCommitRequest, reply: Reply<OffsetCommitResponse>) {
        let version = context.header.apiVersion
        if !authorized(context, .read, .group, request.groupId) {
            reply.send(OffsetCommitResponse(topics: request.topics.map { topic in
                .init(name: topic.name, partitions: topic.partitions.map {
                    .init(partitionIndex: $0.partitionIndex, errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue)
                })
            }))
            return
        }
        var known = request
        var unknown: [OffsetCommitResponse.OffsetCommitResponseTopic] = []
        known.topics = []
        for topic in request.topics {
            let hosted = topics.topic(named: topic.name)
            var kept = topic
            kept.partitions = []
            var refused = OffsetCommitResponse.OffsetCommitResponseTopic(name: topic.name)
            let mayRead = authorized(context, .read, .topic, topic.name)
            for partition in topic.partitions {
                if !mayRead {
                    refused.partitions.append(.init(partitionIndex: partition.partitionIndex, errorCode: KafkaErrorCode.topicAuthorizationFailed.rawValue))
                } else if hosted?.partition(partition.partitionIndex) != nil {
                    kept.partitions.append(partition)
                } else {
                    refused.partitions.append(
                        .init(partitionIndex: partition.partitionIndex, errorCode: KafkaErrorCode.unknownTopicOrPartition.rawValue))
                }
            }
            if !kept.partitions.isEmpty { known.topics.append(kept) }
            if !refused.partitions.isEmpty { unknown.append(refused) }
        }
        if unknown.isEmpty {
            groupCoordinator.handleOffsetCommit(request, version: version, completion: reply.send)
            return
        }
        if known.topics.isEmpty {
            reply.send(OffsetCommitResponse(topics: unknown))
            return
        }
        let refused = unknown
        groupCoordinator.handleOffsetCommit(known, version: version) { response in
            var merged = response
            merged.topics.append(contentsOf: refused)
            reply.send(merged)
        }
    }
}
