import Dispatch
import GroupCoordination
import KafkaWire
import NIOCore
import Synchronization
import Testing

/// Completes every persist later on a global queue, like a log append on another event loop.
final class AsyncStore: GroupStore, @unchecked Sendable {
    private let records = Mutex<[CoordinatorRecord]>([])
    var stored: [CoordinatorRecord] { records.withLock { $0 } }

    func persist(_ batch: [CoordinatorRecord], completion: @escaping @Sendable (Bool) -> Void) {
        // Appended in call order (the coordinator's mutation order), acknowledged asynchronously.
        records.withLock { $0.append(contentsOf: batch) }
        DispatchQueue.global().async { completion(true) }
    }
}

@Suite struct ConcurrencyTests {
    @Test func parallelCommitsAndFetchesStayConsistent() async throws {
        let time = FakeTime()
        let store = AsyncStore()
        var configuration = GroupCoordinatorConfiguration()
        configuration.offsetsRetentionCheckIntervalMs = 0
        let coordinator = GroupCoordinator(configuration: configuration, clock: time, scheduler: time, store: store, randomSeed: 1)
        let workers = 8
        let commitsPerWorker = 200
        await withTaskGroup(of: Void.self) { tasks in
            for worker in 0..<workers {
                tasks.addTask {
                    for i in 0..<commitsPerWorker {
                        let request = OffsetCommitRequest(
                            groupId: "g\(worker % 2)", generationIdOrMemberEpoch: -1, memberId: "",
                            topics: [.init(name: "t", partitions: [.init(partitionIndex: Int32(worker), committedOffset: Int64(i))])])
                        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                            coordinator.handleOffsetCommit(request, version: 8) { response in
                                precondition(response.topics[0].partitions[0].errorCode == 0)
                                done.resume()
                            }
                        }
                        var fetch = OffsetFetchRequest()
                        fetch.groupId = "g\(worker % 2)"
                        fetch.topics = nil
                        coordinator.handleOffsetFetch(fetch, version: 7) { _ in }
                    }
                }
            }
        }
        for worker in 0..<workers {
            let offsets = coordinator.committedOffsets(group: "g\(worker % 2)")
            #expect(offsets[GroupTopicPartition(topic: "t", partition: Int32(worker))]?.offset == Int64(commitsPerWorker - 1))
        }
        #expect(store.stored.count == workers * commitsPerWorker)
        // Replaying the log in append order gives the same state.
        let restarted = GroupCoordinator(configuration: configuration, clock: time, scheduler: time, store: store, randomSeed: 2)
        restarted.load(store.stored.map { (key: $0.key, value: $0.value) })
        #expect(restarted.committedOffsets(group: "g0") == coordinator.committedOffsets(group: "g0"))
        #expect(restarted.committedOffsets(group: "g1") == coordinator.committedOffsets(group: "g1"))
    }
}
