import CommitLog
import KafkaWire
import Synchronization

/// KIP-227 incremental fetch sessions, as Kafka's `FetchSessionCache` / `FetchManager`:
///
/// - epoch 0 (full fetch): any session named by the request is closed; a new session holding the
///   request's partitions is created when the cache has a free slot (or can evict one), and the
///   response carries its id. The client then sends epoch 1, 2, ...
/// - epoch > 0 (incremental): the request names only the partitions whose fetch state changed
///   (plus `forgottenTopicsData` to drop); the broker reads every partition of the session and
///   answers only those with records, an error, or a changed high watermark / last stable offset /
///   log start offset. Unknown session: FETCH_SESSION_ID_NOT_FOUND; wrong epoch:
///   INVALID_FETCH_SESSION_EPOCH (the client then falls back to a full fetch).
/// - epoch -1: a sessionless full fetch; a named session is closed.
///
/// `max.incremental.fetch.session.cache.slots` (1000) bounds the sessions. When full, a session
/// unused for `evictionMs` (Kafka: 120 s) is evicted, else the smallest session if the new one
/// has more partitions (Kafka's rule); otherwise the fetch is answered without a session.
public final class FetchSessionCache: Sendable {
    struct PartitionKey: Hashable {
        var topic: String
        var topicId: KafkaUUID
        var partition: Int32
    }

    struct PartitionState {
        var key: PartitionKey
        var fetchOffset: Int64
        var maxBytes: Int32
        var currentLeaderEpoch: Int32
        // What the last response told the client (-2: never sent).
        var highWatermark: Int64 = -2
        var lastStableOffset: Int64 = -2
        var logStartOffset: Int64 = -2
    }

    final class Session: @unchecked Sendable {
        let id: Int32
        let usesTopicIds: Bool
        var epoch: Int32 = 1
        var lastUsedMs: Int64
        /// In Kafka's iteration order: partitions that returned records move to the end.
        var order: [PartitionKey] = []
        var partitions: [PartitionKey: PartitionState] = [:]

        init(id: Int32, usesTopicIds: Bool, now: Int64) {
            self.id = id
            self.usesTopicIds = usesTopicIds
            self.lastUsedMs = now
        }

        func upsert(_ state: PartitionState) {
            if partitions[state.key] == nil { order.append(state.key) }
            var updated = state
            if let old = partitions[state.key] {
                updated.highWatermark = old.highWatermark
                updated.lastStableOffset = old.lastStableOffset
                updated.logStartOffset = old.logStartOffset
            }
            partitions[state.key] = updated
        }

        func remove(_ key: PartitionKey) {
            if partitions.removeValue(forKey: key) != nil { order.removeAll { $0 == key } }
        }
    }

    private struct State {
        var sessions: [Int32: Session] = [:]
        var random = SystemRandomNumberGenerator()
        var evictions = 0
        var created = 0
    }

    public let maxSlots: Int
    public let evictionMs: Int64
    /// Partitions all sessions may hold together (bounds the cache's memory, ~100 bytes each);
    /// a full fetch that would pass it is answered without a session. Kafka has no such cap.
    public let maxTotalPartitions: Int
    private let state = Mutex(State())

    public init(maxSlots: Int, evictionMs: Int64 = 120_000, maxTotalPartitions: Int = 1_000_000) {
        self.maxSlots = maxSlots
        self.evictionMs = evictionMs
        self.maxTotalPartitions = maxTotalPartitions
    }

    public var sessionCount: Int { state.withLock { $0.sessions.count } }
    public var evictionCount: Int { state.withLock { $0.evictions } }
    public var createdCount: Int { state.withLock { $0.created } }
    public var partitionCount: Int { state.withLock { $0.sessions.values.reduce(0) { $0 + $1.partitions.count } } }

    /// What a fetch request resolves to.
    enum Resolution {
        /// Answer with this top-level error and no partitions.
        case error(KafkaErrorCode)
        /// A sessionless full fetch (epoch -1, or a version without sessions): nothing to change.
        case sessionless
        /// A full fetch that opened `session` (or none could be opened: `session == nil`).
        case full(Session?)
        /// An incremental fetch of `session`: read every partition (a snapshot, in session order).
        case incremental(Session, [PartitionState])
    }

    static let finalEpoch: Int32 = -1
    static let initialEpoch: Int32 = 0

    func resolve(_ request: FetchRequest, version: Int16, now: Int64) -> Resolution {
        guard version >= 7 else { return .sessionless }
        let usesTopicIds = version >= 13
        return state.withLock { s -> Resolution in
            let epoch = request.sessionEpoch
            if epoch == Self.finalEpoch || epoch == Self.initialEpoch {
                if request.sessionId != 0 { s.sessions[request.sessionId] = nil }
                if epoch == Self.finalEpoch { return .sessionless }
                // A full fetch: try to open a session with its partitions.
                let size = request.topics.reduce(0) { $0 + $1.partitions.count }
                let held = s.sessions.values.reduce(0) { $0 + $1.partitions.count }
                guard maxSlots > 0, size > 0, held + size <= maxTotalPartitions, makeRoom(&s, newSize: size, now: now) else { return .full(nil) }
                var id: Int32 = 0
                while id <= 0 || s.sessions[id] != nil { id = Int32.random(in: 1...Int32.max, using: &s.random) }
                let session = Session(id: id, usesTopicIds: usesTopicIds, now: now)
                for topic in request.topics {
                    for partition in topic.partitions {
                        session.upsert(Self.partitionState(topic, partition, usesTopicIds: usesTopicIds))
                    }
                }
                s.sessions[id] = session
                s.created += 1
                return .full(session)
            }
            guard let session = s.sessions[request.sessionId] else { return .error(.fetchSessionIdNotFound) }
            guard session.epoch == epoch else { return .error(.invalidFetchSessionEpoch) }
            guard session.usesTopicIds == usesTopicIds else { return .error(.fetchSessionTopicIdError) }
            session.epoch = epoch == Int32.max ? 1 : epoch + 1
            session.lastUsedMs = now
            for topic in request.topics {
                for partition in topic.partitions {
                    session.upsert(Self.partitionState(topic, partition, usesTopicIds: usesTopicIds))
                }
            }
            for forgotten in request.forgottenTopicsData {
                for partition in forgotten.partitions {
                    session.remove(PartitionKey(topic: usesTopicIds ? "" : forgotten.topic, topicId: usesTopicIds ? forgotten.topicId : .zero, partition: partition))
                }
            }
            return .incremental(session, session.order.compactMap { session.partitions[$0] })
        }
    }

    private static func partitionState(_ topic: FetchRequest.FetchTopic, _ partition: FetchRequest.FetchPartition, usesTopicIds: Bool) -> PartitionState {
        PartitionState(
            key: PartitionKey(topic: usesTopicIds ? "" : topic.topic, topicId: usesTopicIds ? topic.topicId : .zero, partition: partition.partition),
            fetchOffset: partition.fetchOffset, maxBytes: partition.partitionMaxBytes, currentLeaderEpoch: partition.currentLeaderEpoch)
    }

    /// Frees a slot if the cache is full: a stale session first, else the smallest one if the new
    /// session is larger (least recently used among equals).
    private func makeRoom(_ s: inout State, newSize: Int, now: Int64) -> Bool {
        guard s.sessions.count >= maxSlots else { return true }
        if let stale = s.sessions.values.filter({ now - $0.lastUsedMs >= evictionMs }).min(by: { $0.lastUsedMs < $1.lastUsedMs }) {
            s.sessions[stale.id] = nil
            s.evictions += 1
            return true
        }
        if let smallest = s.sessions.values.min(by: { ($0.partitions.count, $0.lastUsedMs) < ($1.partitions.count, $1.lastUsedMs) }),
            smallest.partitions.count < newSize
        {
            s.sessions[smallest.id] = nil
            s.evictions += 1
            return true
        }
        return false
    }

    /// Filters a response to what an incremental client must see and remembers what it was told;
    /// `keys` are the response's partitions in order. A full response is kept whole.
    func finish(_ session: Session, keys: [PartitionKey], incremental: Bool, response: inout FetchResponse) {
        state.withLock { _ in
            var index = 0
            var withRecords: [PartitionKey] = []
            for topicIndex in response.responses.indices {
                var kept: [FetchResponse.PartitionData] = []
                for partition in response.responses[topicIndex].partitions {
                    defer { index += 1 }
                    guard index < keys.count, var cached = session.partitions[keys[index]] else {
                        kept.append(partition)
                        continue
                    }
                    let hasRecords = (partition.records?.byteCount ?? 0) > 0
                    var mustRespond = hasRecords || partition.errorCode != 0
                    if cached.highWatermark != partition.highWatermark || cached.lastStableOffset != partition.lastStableOffset
                        || cached.logStartOffset != partition.logStartOffset
                    {
                        mustRespond = true
                    }
                    cached.highWatermark = partition.errorCode != 0 ? -1 : partition.highWatermark
                    cached.lastStableOffset = partition.lastStableOffset
                    cached.logStartOffset = partition.logStartOffset
                    session.partitions[keys[index]] = cached
                    if hasRecords { withRecords.append(keys[index]) }
                    if mustRespond || !incremental { kept.append(partition) }
                }
                response.responses[topicIndex].partitions = kept
            }
            response.responses.removeAll { $0.partitions.isEmpty }
            if incremental && !withRecords.isEmpty {
                // Kafka's fairness: partitions that just returned data go to the back of the line.
                let moved = Set(withRecords)
                session.order = session.order.filter { !moved.contains($0) } + withRecords
            }
        }
    }
}

enum FetchSessionOutcome {
    case proceed(FetchSessionContext?)
    case refused(KafkaErrorCode)
}

/// A fetch served through a session: what `sendFetchResponse` needs to filter and remember.
struct FetchSessionContext: Sendable {
    let cache: FetchSessionCache
    let session: FetchSessionCache.Session
    let keys: [FetchSessionCache.PartitionKey]
    let incremental: Bool

    var responseSessionId: Int32 { session.id }

    func finish(_ response: inout FetchResponse) {
        cache.finish(session, keys: keys, incremental: incremental, response: &response)
    }
}

extension Broker {
    /// Applies KIP-227 to a fetch whose `targets` / `responseTopics` were built from the request:
    /// an incremental fetch replaces them with every partition of its session. Returns a top-level
    /// error to answer with instead (unknown session, wrong epoch).
    func applyFetchSession(
        _ request: FetchRequest, version: Int16, targets: inout [FetchTarget], responseTopics: inout [FetchResponse.FetchableTopicResponse]
    ) -> FetchSessionOutcome {
        let usesTopicIds = version >= 13
        switch fetchSessions.resolve(request, version: version, now: clock.wallMilliseconds()) {
        case .error(let code):
            return .refused(code)
        case .sessionless, .full(nil):
            return .proceed(nil)
        case .full(let session?):
            var keys: [FetchSessionCache.PartitionKey] = []
            keys.reserveCapacity(targets.count)
            for topic in request.topics {
                for partition in topic.partitions {
                    keys.append(.init(topic: usesTopicIds ? "" : topic.topic, topicId: usesTopicIds ? topic.topicId : .zero, partition: partition.partition))
                }
            }
            return .proceed(FetchSessionContext(cache: fetchSessions, session: session, keys: keys, incremental: false))
        case .incremental(let session, let partitions):
            targets.removeAll(keepingCapacity: true)
            responseTopics.removeAll(keepingCapacity: true)
            var keys: [FetchSessionCache.PartitionKey] = []
            keys.reserveCapacity(partitions.count)
            var currentTopic: Topic?
            for state in partitions {
                let key = state.key
                if let last = keys.last, last.topic == key.topic, last.topicId == key.topicId {
                    // same topic as the previous partition: same response entry
                } else {
                    currentTopic = usesTopicIds ? topics.topic(id: key.topicId) : topics.topic(named: key.topic)
                    responseTopics.append(.init(topic: usesTopicIds ? "" : key.topic, topicId: key.topicId, partitions: []))
                }
                var target = FetchTarget(
                    topicIndex: responseTopics.count - 1, partitionIndex: key.partition, log: nil, error: .none,
                    fetchOffset: state.fetchOffset, partitionMaxBytes: max(0, Int(state.maxBytes)))
                if let currentTopic, let log = currentTopic.partition(key.partition) {
                    target.log = log
                    if state.currentLeaderEpoch > 0 { target.error = .unknownLeaderEpoch }
                } else {
                    target.error = usesTopicIds ? .unknownTopicId : .unknownTopicOrPartition
                }
                targets.append(target)
                keys.append(key)
            }
            return .proceed(FetchSessionContext(cache: fetchSessions, session: session, keys: keys, incremental: true))
        }
    }
}
