import KafkaWire
import Logging
import NIOCore
import Synchronization
import Testing
import TransactionCoordination

/// A clock tests move by hand.
final class ManualClock: TransactionClock, @unchecked Sendable {
    let now = Mutex<Int64>(1_000_000)
    func nowMilliseconds() -> Int64 { now.withLock { $0 } }
    func advance(_ ms: Int64) { now.withLock { $0 += ms } }
}

/// Records what the coordinator persisted and which markers it wrote, completing synchronously
/// (or failing marker writes while `failMarkers` is set).
final class RecordingIO: TransactionLogStore, TransactionMarkerWriter, @unchecked Sendable {
    struct Marker: Equatable {
        var producerId: Int64
        var epoch: Int16
        var commit: Bool
        var partitions: [TransactionPartition]
    }
    let records = Mutex<[(key: ByteBuffer, value: ByteBuffer?)]>([])
    let markers = Mutex<[Marker]>([])
    let failMarkers = Mutex(false)

    func persist(transactionalId: String, value: TransactionLogValue?, completion: @escaping @Sendable (Bool) -> Void) {
        records.withLock {
            $0.append((TransactionCoordinator.encodeKey(transactionalId), value.map(TransactionCoordinator.encodeValue)))
        }
        completion(true)
    }

    func writeMarkers(
        producerId: Int64, producerEpoch: Int16, commit: Bool, partitions: [TransactionPartition], completion: @escaping @Sendable (Bool) -> Void
    ) {
        if failMarkers.withLock({ $0 }) { return completion(false) }
        markers.withLock { $0.append(Marker(producerId: producerId, epoch: producerEpoch, commit: commit, partitions: partitions)) }
        completion(true)
    }

    var lastStatus: [String: TransactionState] {
        var out: [String: TransactionState] = [:]
        for r in records.withLock({ $0 }) {
            let id = TransactionCoordinator.decodeKey(r.key)!
            out[id] = r.value.flatMap { TransactionCoordinator.decodeValue($0) }.flatMap { TransactionState(rawValue: $0.transactionStatus) }
        }
        return out
    }
}

final class Box<T>: @unchecked Sendable {
    var value: T?
}

final class IdSource: Sendable {
    let next = Mutex<Int64>(1000)
}

struct Harness {
    let clock = ManualClock()
    let io = RecordingIO()
    let coordinator: TransactionCoordinator
    let nextId = IdSource()

    init(configure: (inout TransactionCoordinatorConfiguration) -> Void = { _ in }) {
        var configuration = TransactionCoordinatorConfiguration()
        configure(&configuration)
        let ids = nextId
        coordinator = TransactionCoordinator(
            configuration: configuration, clock: clock, store: io, markers: io,
            allocateProducerId: { ids.next.withLock { $0 += 1; return $0 } }, logger: Logger(label: "test"))
        coordinator.load([])
    }

    func initProducer(_ id: String, timeoutMs: Int32 = 60_000, producerId: Int64 = -1, epoch: Int16 = -1) -> TransactionCoordinator.ProducerIdAndEpoch {
        let box = Box<TransactionCoordinator.ProducerIdAndEpoch>()
        coordinator.initProducerId(transactionalId: id, transactionTimeoutMs: timeoutMs, producerId: producerId, producerEpoch: epoch) { box.value = $0 }
        return box.value!
    }

    func add(_ id: String, _ pid: Int64, _ epoch: Int16, _ partitions: [TransactionPartition]) -> KafkaErrorCode {
        let box = Box<KafkaErrorCode>()
        coordinator.addPartitions(transactionalId: id, producerId: pid, producerEpoch: epoch, partitions: partitions) { box.value = $0 }
        return box.value!
    }

    func end(_ id: String, _ pid: Int64, _ epoch: Int16, commit: Bool) -> KafkaErrorCode {
        endV(id, pid, epoch, commit: commit, version: 0).error
    }

    /// EndTxn of transaction version `version` (2: EndTxn v5), with the identity it answers.
    func endV(_ id: String, _ pid: Int64, _ epoch: Int16, commit: Bool, version: Int16 = 2) -> TransactionCoordinator.ProducerIdAndEpoch {
        let box = Box<TransactionCoordinator.ProducerIdAndEpoch>()
        coordinator.endTransaction(transactionalId: id, producerId: pid, producerEpoch: epoch, commit: commit, transactionVersion: version) {
            box.value = $0
        }
        return box.value!
    }

    /// Produce v12's implicit add: whether the write ran, or the refusal.
    func implicitAdd(_ id: String, _ pid: Int64, _ epoch: Int16, _ partition: TransactionPartition) -> KafkaErrorCode {
        let box = Box<KafkaErrorCode>()
        coordinator.addPartitionImplicitly(
            transactionalId: id, producerId: pid, producerEpoch: epoch, partition: partition, write: { box.value = KafkaErrorCode.none },
            refuse: { box.value = $0 })
        return box.value!
    }
}

let p0 = TransactionPartition(topic: "t", partition: 0)
let p1 = TransactionPartition(topic: "t", partition: 1)

@Suite struct TransactionCoordinatorTests {
    @Test func commitWritesMarkersToEveryPartitionAndCompletes() {
        let h = Harness()
        let first = h.initProducer("tx")
        #expect(first.error == .none)
        #expect(first.producerEpoch == 0)
        #expect(h.add("tx", first.producerId, 0, [p0, p1]) == .none)
        #expect(h.coordinator.verifyPartition(transactionalId: "tx", producerId: first.producerId, producerEpoch: 0, partition: p1) == .none)
        #expect(h.coordinator.verifyPartition(
            transactionalId: "tx", producerId: first.producerId, producerEpoch: 0, partition: TransactionPartition(topic: "t", partition: 7)) == .invalidTxnState)
        #expect(h.end("tx", first.producerId, 0, commit: true) == .none)
        #expect(h.io.markers.withLock { $0 } == [.init(producerId: first.producerId, epoch: 0, commit: true, partitions: [p0, p1])])
        #expect(h.coordinator.describe("tx")?.state == .completeCommit)
        // A retried EndTxn of the completed commit succeeds; an abort now is refused.
        #expect(h.end("tx", first.producerId, 0, commit: true) == .none)
        #expect(h.end("tx", first.producerId, 0, commit: false) == .invalidTxnState)
        // No partition may take transactional data after the commit.
        #expect(h.coordinator.verifyPartition(transactionalId: "tx", producerId: first.producerId, producerEpoch: 0, partition: p0) == .invalidTxnState)
    }

    @Test func timeoutAboveTheMaximumIsRefused() {
        let h = Harness { $0.transactionMaxTimeoutMs = 1000 }
        #expect(h.initProducer("tx", timeoutMs: 1001).error == .invalidTransactionTimeout)
        #expect(h.initProducer("tx", timeoutMs: 1000).error == .none)
    }

    @Test func newInstanceFencesTheOpenTransaction() {
        let h = Harness()
        let old = h.initProducer("tx")
        #expect(h.add("tx", old.producerId, old.producerEpoch, [p0]) == .none)
        // The new instance: the open transaction is aborted with a bumped epoch, caller retries.
        #expect(h.initProducer("tx").error == .concurrentTransactions)
        #expect(h.io.markers.withLock { $0 } == [.init(producerId: old.producerId, epoch: 1, commit: false, partitions: [p0])])
        let new = h.initProducer("tx")
        #expect(new.error == .none)
        #expect(new.producerId == old.producerId)
        #expect(new.producerEpoch == 2)
        // The zombie is fenced everywhere.
        #expect(h.add("tx", old.producerId, old.producerEpoch, [p1]) == .producerFenced)
        #expect(h.end("tx", old.producerId, old.producerEpoch, commit: true) == .producerFenced)
        #expect(h.coordinator.verifyPartition(transactionalId: "tx", producerId: old.producerId, producerEpoch: 0, partition: p0) == .invalidProducerEpoch)
        // KIP-360: only the current producer may bump its own epoch.
        #expect(h.initProducer("tx", producerId: old.producerId, epoch: 0).error == .producerFenced)
        #expect(h.initProducer("tx", producerId: new.producerId, epoch: 2).producerEpoch == 3)
    }

    @Test func expiredTransactionIsAbortedOnTick() {
        let h = Harness()
        let p = h.initProducer("tx", timeoutMs: 5000)
        #expect(h.add("tx", p.producerId, 0, [p0]) == .none)
        h.clock.advance(4000)
        h.coordinator.tick()
        #expect(h.io.markers.withLock { $0 }.isEmpty)
        h.clock.advance(1000)
        h.coordinator.tick()
        #expect(h.io.markers.withLock { $0 } == [.init(producerId: p.producerId, epoch: 1, commit: false, partitions: [p0])])
        #expect(h.coordinator.describe("tx")?.state == .completeAbort)
        #expect(h.end("tx", p.producerId, 0, commit: true) == .producerFenced)
    }

    @Test func preparedCommitCompletesAfterReload() {
        let h = Harness()
        let p = h.initProducer("tx")
        #expect(h.add("tx", p.producerId, 0, [p0, p1]) == .none)
        h.io.failMarkers.withLock { $0 = true }
        #expect(h.end("tx", p.producerId, 0, commit: true) == .none)  // answered at PrepareCommit
        #expect(h.io.lastStatus["tx"] == .prepareCommit)
        // "Restart": a new coordinator replays the persisted records.
        let restarted = Harness()
        let records = h.io.records.withLock { $0 }
        restarted.coordinator.load(records)
        #expect(restarted.io.markers.withLock { $0 } == [.init(producerId: p.producerId, epoch: 0, commit: true, partitions: [p0, p1])])
        #expect(restarted.coordinator.describe("tx")?.state == .completeCommit)
    }

    @Test func idleTransactionalIdsExpire() {
        let h = Harness {
            $0.transactionalIdExpirationMs = 10_000
            $0.removeExpiredTransactionalIdCleanupIntervalMs = 1000
        }
        _ = h.initProducer("tx")
        h.clock.advance(10_000)
        h.coordinator.tick()
        #expect(h.coordinator.describe("tx") == nil)
        #expect(h.io.records.withLock { $0.last?.value } == nil)
    }

    @Test func recordsUseKafkasLayout() throws {
        let key = TransactionCoordinator.encodeKey("abc")
        #expect(Array(buffer: key) == [0, 0, 0, 3, 0x61, 0x62, 0x63])
        let value = TransactionLogValue(
            producerId: 7, producerEpoch: 1, transactionTimeoutMs: 60000, transactionStatus: 1,
            transactionPartitions: [.init(topic: "t", partitionIds: [0])], transactionLastUpdateTimestampMs: 5, transactionStartTimestampMs: 4)
        let decoded = TransactionCoordinator.decodeValue(TransactionCoordinator.encodeValue(value))
        #expect(decoded == value)
    }

    @Test func transactionsV2BumpTheEpochWithEveryEnd() {
        let h = Harness()
        let p = h.initProducer("tx")
        // Produce v12: the first write starts the transaction, no AddPartitionsToTxn.
        #expect(h.implicitAdd("tx", p.producerId, 0, p0) == .none)
        #expect(h.implicitAdd("tx", p.producerId, 0, p1) == .none)
        #expect(h.coordinator.describe("tx")?.state == .ongoing)
        #expect(h.coordinator.describe("tx")?.clientTransactionVersion == 2)
        let committed = h.endV("tx", p.producerId, 0, commit: true)
        #expect(committed == .init(error: .none, producerId: p.producerId, producerEpoch: 1))
        // Markers carry the bumped epoch: a late write of the ended transaction is fenced.
        #expect(h.io.markers.withLock { $0 } == [.init(producerId: p.producerId, epoch: 1, commit: true, partitions: [p0, p1])])
        #expect(h.implicitAdd("tx", p.producerId, 0, p0) == .producerFenced)
        // A retry with the pre-bump epoch answers the current identity; an abort retry is refused.
        #expect(h.endV("tx", p.producerId, 0, commit: true) == .init(error: .none, producerId: p.producerId, producerEpoch: 1))
        #expect(h.endV("tx", p.producerId, 0, commit: false).error == .invalidTxnState)
        // The next transaction runs at epoch 1 and ends at 2.
        #expect(h.implicitAdd("tx", p.producerId, 1, p1) == .none)
        #expect(h.endV("tx", p.producerId, 1, commit: false) == .init(error: .none, producerId: p.producerId, producerEpoch: 2))
        #expect(h.io.markers.withLock { $0.last } == .init(producerId: p.producerId, epoch: 2, commit: false, partitions: [p1]))
        // An abort with nothing open bumps the epoch and marks nothing; a commit is refused.
        #expect(h.endV("tx", p.producerId, 2, commit: true).error == .invalidTxnState)
        let markers = h.io.markers.withLock { $0.count }
        #expect(h.endV("tx", p.producerId, 2, commit: false) == .init(error: .none, producerId: p.producerId, producerEpoch: 3))
        #expect(h.io.markers.withLock { $0.count } == markers)
        #expect(h.coordinator.describe("tx")?.state == .completeAbort)
        // An epoch from the future is fenced; EndTxn v4 on the same id keeps the epoch.
        #expect(h.endV("tx", p.producerId, 9, commit: false).error == .producerFenced)
        #expect(h.add("tx", p.producerId, 3, [p0]) == .none)
        #expect(h.end("tx", p.producerId, 3, commit: true) == .none)
        #expect(h.coordinator.describe("tx")?.producerEpoch == 3)
    }

    @Test func transactionsV2RotateTheProducerIdWhenTheEpochRunsOut() {
        let h = Harness()
        // A producer at the last usable epoch (as replayed from __transaction_state).
        let p = TransactionCoordinator.ProducerIdAndEpoch(error: .none, producerId: 77, producerEpoch: Int16.max - 1)
        h.coordinator.load([(
            TransactionCoordinator.encodeKey("tx"),
            TransactionCoordinator.encodeValue(TransactionLogValue(
                producerId: p.producerId, producerEpoch: p.producerEpoch, transactionTimeoutMs: 60_000,
                transactionStatus: TransactionState.completeCommit.rawValue, transactionPartitions: nil,
                transactionLastUpdateTimestampMs: 1, transactionStartTimestampMs: -1))
        )])
        let epoch = p.producerEpoch
        #expect(h.implicitAdd("tx", p.producerId, epoch, p0) == .none)
        let next = h.endV("tx", p.producerId, epoch, commit: true)
        #expect(next.error == .none)
        #expect(next.producerId != p.producerId)
        #expect(next.producerEpoch == 0)
        #expect(h.io.markers.withLock { $0 } == [.init(producerId: p.producerId, epoch: Int16.max, commit: true, partitions: [p0])])
        let meta = h.coordinator.describe("tx")
        #expect(meta?.producerId == next.producerId)
        #expect(meta?.previousProducerId == p.producerId)
        // The retry of the overflowing EndTxn (old id, old epoch) is recognised.
        #expect(h.endV("tx", p.producerId, epoch, commit: true) == next)
        #expect(h.implicitAdd("tx", next.producerId, 0, p1) == .none)
        #expect(h.endV("tx", next.producerId, 0, commit: true) == .init(error: .none, producerId: next.producerId, producerEpoch: 1))
    }

    @Test func transactionsV2StateSurvivesAReload() {
        let h = Harness()
        let p = h.initProducer("tx")
        #expect(h.implicitAdd("tx", p.producerId, 0, p0) == .none)
        h.io.failMarkers.withLock { $0 = true }
        #expect(h.endV("tx", p.producerId, 0, commit: true) == .init(error: .none, producerId: p.producerId, producerEpoch: 1))
        let restarted = Harness()
        restarted.coordinator.load(h.io.records.withLock { $0 })
        #expect(restarted.io.markers.withLock { $0 } == [.init(producerId: p.producerId, epoch: 1, commit: true, partitions: [p0])])
        let meta = restarted.coordinator.describe("tx")
        #expect(meta?.state == .completeCommit)
        #expect(meta?.producerEpoch == 1)
        #expect(meta?.clientTransactionVersion == 2)
        // Version 1 of the value (tagged fields) only when v2 state is in it.
        let v2 = h.io.records.withLock { $0.last!.value! }
        #expect(v2.getInteger(at: v2.readerIndex, as: Int16.self) == 1)
    }

    @Test func implicitAddWritesBeforeOthersSeeThePartition() {
        let h = Harness()
        let p = h.initProducer("tx")
        let order = Mutex<[String]>([])
        h.coordinator.addPartitionImplicitly(
            transactionalId: "tx", producerId: p.producerId, producerEpoch: 0, partition: p0,
            write: {
                // Still invisible: a concurrent write to the partition is told to retry.
                order.withLock { $0.append("first") }
                #expect(h.implicitAdd("tx", p.producerId, 0, p0) == .concurrentTransactions)
            },
            refuse: { _ in order.withLock { $0.append("refused") } })
        #expect(order.withLock { $0 } == ["first"])
        #expect(h.implicitAdd("tx", p.producerId, 0, p0) == .none)
    }
}
