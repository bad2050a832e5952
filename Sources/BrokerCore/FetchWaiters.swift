import CommitLog
import Synchronization

/// Fetches parked in long-poll, indexed by the partitions they read. The appender calls
/// `partitionAppended` after a high watermark moves, which wakes exactly the fetches that read
/// that partition: a waiting fetch is answered by the append that satisfies it, not by its timer.
final class FetchWaiters: Sendable {
    struct Waiter: Sendable {
        var partitions: [TopicPartition]
        var wake: @Sendable () -> Void
    }

    private struct State {
        var nextId: UInt64 = 0
        var waiters: [UInt64: Waiter] = [:]
        var byPartition: [TopicPartition: Set<UInt64>] = [:]
    }

    private let state = Mutex(State())

    /// Registers a waiter; returns its id for `remove`.
    func add(partitions: [TopicPartition], wake: @escaping @Sendable () -> Void) -> UInt64 {
        state.withLock { state in
            state.nextId += 1
            let id = state.nextId
            state.waiters[id] = Waiter(partitions: partitions, wake: wake)
            for tp in partitions { state.byPartition[tp, default: []].insert(id) }
            return id
        }
    }

    func remove(_ id: UInt64) {
        state.withLock { state in
            guard let waiter = state.waiters.removeValue(forKey: id) else { return }
            for tp in waiter.partitions {
                state.byPartition[tp]?.remove(id)
                if state.byPartition[tp]?.isEmpty == true { state.byPartition[tp] = nil }
            }
        }
    }

    /// Called on the appender thread: cheap when nobody waits (one dictionary lookup).
    func partitionAppended(_ tp: TopicPartition) {
        let wakes: [@Sendable () -> Void] = state.withLock { state in
            guard let ids = state.byPartition[tp] else { return [] }
            return ids.compactMap { state.waiters[$0]?.wake }
        }
        for wake in wakes { wake() }
    }

    /// Wakes everyone (shutdown): each waiter answers with what it has.
    func cancelAll() {
        let wakes = state.withLock { state in state.waiters.values.map(\.wake) }
        for wake in wakes { wake() }
    }

    var count: Int { state.withLock { $0.waiters.count } }
}
