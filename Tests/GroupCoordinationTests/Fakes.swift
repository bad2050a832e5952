import GroupCoordination
import KafkaWire
import NIOCore
import Synchronization

/// Fake clock + scheduler: time only moves in `advance(by:)`, which fires due timers in deadline order.
final class FakeTime: CoordinatorClock, CoordinatorScheduler, @unchecked Sendable {
    private struct Entry {
        let id: Int
        let deadline: Int64
        let body: @Sendable () -> Void
    }

    private struct State {
        var now: Int64 = 1_700_000_000_000
        var entries: [Entry] = []
        var nextId = 0
    }

    private let state = Mutex(State())

    func nowMilliseconds() -> Int64 { state.withLock { $0.now } }

    var pendingTimers: Int { state.withLock { $0.entries.count } }

    func schedule(after ms: Int64, _ body: @escaping @Sendable () -> Void) -> any CancellableTimer {
        let id = state.withLock { state in
            state.nextId += 1
            state.entries.append(Entry(id: state.nextId, deadline: state.now + ms, body: body))
            return state.nextId
        }
        return Timer(time: self, id: id)
    }

    func cancel(_ id: Int) {
        state.withLock { $0.entries.removeAll { $0.id == id } }
    }

    func advance(by ms: Int64) {
        let target = state.withLock { $0.now + ms }
        while true {
            let due: (@Sendable () -> Void)? = state.withLock { state in
                guard let next = state.entries.filter({ $0.deadline <= target })
                    .min(by: { ($0.deadline, $0.id) < ($1.deadline, $1.id) }) else { return nil }
                state.entries.removeAll { $0.id == next.id }
                state.now = max(state.now, next.deadline)
                return next.body
            }
            guard let due else { break }
            due()
        }
        state.withLock { $0.now = target }
    }

    private struct Timer: CancellableTimer {
        let time: FakeTime
        let id: Int
        func cancel() { time.cancel(id) }
    }
}

/// In-memory `__consumer_offsets`: keeps every persisted record; can hold completions or fail.
final class MemoryStore: GroupStore, @unchecked Sendable {
    private struct State {
        var records: [CoordinatorRecord] = []
        var held: [([CoordinatorRecord], @Sendable (Bool) -> Void)] = []
        var hold = false
        var failing = false
    }

    private let state = Mutex(State())

    var records: [CoordinatorRecord] { state.withLock { $0.records } }

    var hold: Bool {
        get { state.withLock { $0.hold } }
        set { state.withLock { $0.hold = newValue } }
    }

    var failing: Bool {
        get { state.withLock { $0.failing } }
        set { state.withLock { $0.failing = newValue } }
    }

    func persist(_ records: [CoordinatorRecord], completion: @escaping @Sendable (Bool) -> Void) {
        enum Outcome { case fail, held, stored }
        let outcome: Outcome = state.withLock { state in
            if state.failing { return .fail }
            if state.hold {
                state.held.append((records, completion))
                return .held
            }
            state.records.append(contentsOf: records)
            return .stored
        }
        switch outcome {
        case .fail: completion(false)
        case .held: break
        case .stored: completion(true) // synchronously: exercises coordinator re-entrancy
        }
    }

    func releaseHeld() {
        let held = state.withLock { state in
            let held = state.held
            state.held = []
            state.records.append(contentsOf: held.flatMap(\.0))
            return held
        }
        for (_, completion) in held { completion(true) }
    }

    /// The log as the broker would replay it.
    var replay: [(key: ByteBuffer, value: ByteBuffer?)] { records.map { (key: $0.key, value: $0.value) } }
}

/// Collects a handler's responses.
final class Reply<T: Sendable>: @unchecked Sendable {
    private let values = Mutex<[T]>([])

    var callback: @Sendable (T) -> Void { { [self] value in values.withLock { $0.append(value) } } }
    var all: [T] { values.withLock { $0 } }
    var value: T? { all.last }
    var isDone: Bool { !all.isEmpty }
}

/// Consumer-protocol subscription metadata: int16 version + ConsumerProtocolSubscription.
func subscription(_ topics: [String], version: Int16 = 1, userData: String? = nil) -> ByteBuffer {
    var message = ConsumerProtocolSubscription()
    message.topics = topics
    message.userData = userData.map { ByteBuffer(string: $0) }
    var writer = WireWriter()
    writer.buffer.writeWireInt16(version)
    try! message.write(to: &writer, version: version)
    return writer.finishSingleBuffer()!
}

/// Consumer-protocol assignment bytes.
func assignment(_ topic: String, _ partitions: [Int32]) -> ByteBuffer {
    var message = ConsumerProtocolAssignment()
    message.assignedPartitions = [.init(topic: topic, partitions: partitions)]
    var writer = WireWriter()
    writer.buffer.writeWireInt16(0)
    try! message.write(to: &writer, version: 0)
    return writer.finishSingleBuffer()!
}

/// A coordinator over fake time and an in-memory store.
struct Harness {
    let time: FakeTime
    let store: MemoryStore
    let coordinator: GroupCoordinator

    init(
        time: FakeTime = FakeTime(), store: MemoryStore = MemoryStore(), seed: UInt64 = 42,
        configure: (inout GroupCoordinatorConfiguration) -> Void = { _ in }
    ) {
        var configuration = GroupCoordinatorConfiguration()
        configuration.offsetsRetentionCheckIntervalMs = 0
        configure(&configuration)
        self.time = time
        self.store = store
        self.coordinator = GroupCoordinator(configuration: configuration, clock: time, scheduler: time, store: store, randomSeed: seed)
    }

    /// A new coordinator (a broker restart) over the same store and clock, loaded from the store.
    func restarted() -> Harness {
        let next = Harness(time: time, store: store, seed: 7)
        next.coordinator.load(store.replay)
        return next
    }
}
