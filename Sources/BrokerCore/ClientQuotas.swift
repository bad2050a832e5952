import DiskIO
import Foundation
import KafkaWire
import NIOCore
import Logging
import Synchronization

/// Client quotas (KIP-13 byte rates, KIP-124 request percentage, KIP-546 DescribeClientQuotas /
/// AlterClientQuotas), as Kafka's `ClientQuotaManager`:
///
/// - Quotas are set on entities: `user` and/or `client-id`, each a name or the default (null name).
///   A request from (user, client-id) takes, per quota key, the first entity that sets it in Kafka's
///   order: user+client, user+default client, user, default user+client, default user+default
///   client, default user, client, default client.
/// - The matched entity's rate (bytes or request-handling time) is measured over
///   `quota.window.num` samples of `quota.window.size.seconds`; past the quota the response carries
///   `throttle_time_ms = (rate - quota) / quota * window` and the connection is muted that long
///   (Kafka since KIP-219). A throttled fetch is answered without records.
/// - Persisted in `DIR/petrel-client-quotas.json`. Users: until authentication exists every client
///   is Kafka's unauthenticated principal `ANONYMOUS`.
public final class ClientQuotas: Sendable {
    public static let fileName = "petrel-client-quotas.json"
    public static let anonymousUser = "ANONYMOUS"
    public static let keys: Set<String> = ["producer_byte_rate", "consumer_byte_rate", "request_percentage"]

    public enum Kind: Sendable {
        case produce, fetch, request
        var key: String {
            switch self {
            case .produce: "producer_byte_rate"
            case .fetch: "consumer_byte_rate"
            case .request: "request_percentage"
            }
        }
    }

    /// One component's name: a name, or the default entity (null on the wire).
    public enum Name: Hashable, Sendable, Codable {
        case named(String)
        case defaultEntity
    }

    public struct Entity: Hashable, Sendable, Codable {
        public var user: Name?
        public var clientId: Name?
        public init(user: Name?, clientId: Name?) {
            self.user = user
            self.clientId = clientId
        }
    }

    private struct StoredEntry: Codable {
        var entity: Entity
        var quotas: [String: Double]
    }

    private struct SensorKey: Hashable {
        var kind: String
        var user: String
        var clientId: String
    }

    /// Kafka's `Rate` over a `SampledStat`: fixed windows, the oldest recycled.
    struct Sampler {
        var starts: [Int64]
        var values: [Double]
        var current = 0

        init(samples: Int) {
            starts = Array(repeating: Int64.min, count: samples)
            values = Array(repeating: 0, count: samples)
        }

        mutating func record(_ value: Double, now: Int64, windowMs: Int64) {
            if starts[current] == Int64.min || now - starts[current] >= windowMs {
                current = (current + 1) % starts.count
                starts[current] = now
                values[current] = 0
            }
            values[current] += value
        }

        /// (rate per second, window in ms) with Kafka's rule: at least samples-1 full windows.
        func rate(now: Int64, windowMs: Int64) -> (Double, Double) {
            let horizon = now - Int64(starts.count) * windowMs
            var total = 0.0
            var oldest = now
            for index in starts.indices where starts[index] != Int64.min && starts[index] > horizon {
                total += values[index]
                oldest = min(oldest, starts[index])
            }
            var elapsed = Double(now - oldest)
            let fullWindows = elapsed / Double(windowMs)
            let minimum = Double(starts.count - 1)
            if fullWindows < minimum { elapsed += (minimum - fullWindows.rounded(.down)) * Double(windowMs) }
            return (total / max(elapsed, 1) * 1000, elapsed)
        }
    }

    private struct State {
        var quotas: [Entity: [String: Double]] = [:]
        var sensors: [SensorKey: Sampler] = [:]
        var throttled = 0
    }

    public let windowSamples: Int
    public let windowMs: Int64
    private let io: any FileIO
    private let path: String
    private let logger: Logger
    private let state = Mutex(State())
    /// Fast path: no quota configured at all (nothing recorded then).
    private let anyQuota = Atomic<Bool>(false)
    /// Some entity sets `request_percentage`: only then do connections time their requests.
    private let anyRequestQuota = Atomic<Bool>(false)

    public var hasRequestQuotas: Bool { anyRequestQuota.load(ordering: .relaxed) }

    private func quotasChanged(_ quotas: [Entity: [String: Double]]) {
        anyQuota.store(!quotas.isEmpty, ordering: .releasing)
        anyRequestQuota.store(quotas.values.contains { $0[Kind.request.key] != nil }, ordering: .releasing)
    }

    public init(dataDirectory: String, windowSamples: Int, windowMs: Int64, io: any FileIO, logger: Logger) {
        self.windowSamples = max(2, windowSamples)
        self.windowMs = max(1, windowMs)
        self.io = io
        self.path = dataDirectory + "/" + Self.fileName
        self.logger = logger
    }

    public func load() throws {
        guard let bytes = try io.readWholeFile(path) else { return }
        let entries = try JSONDecoder().decode([StoredEntry].self, from: Data(bytes))
        state.withLock { s in
            for entry in entries where !entry.quotas.isEmpty { s.quotas[entry.entity] = entry.quotas }
            quotasChanged(s.quotas)
        }
    }

    public var throttledCount: Int { state.withLock { $0.throttled } }

    /// The quota in force for (user, client-id) and the entity it comes from.
    private static func resolve(_ quotas: [Entity: [String: Double]], key: String, user: String, clientId: String) -> (Double, SensorKey)? {
        let order: [(Name?, Name?)] = [
            (.named(user), .named(clientId)), (.named(user), .defaultEntity), (.named(user), nil),
            (.defaultEntity, .named(clientId)), (.defaultEntity, .defaultEntity), (.defaultEntity, nil),
            (nil, .named(clientId)), (nil, .defaultEntity),
        ]
        for (u, c) in order {
            if let value = quotas[Entity(user: u, clientId: c)]?[key] {
                return (value, SensorKey(kind: key, user: u == nil ? "" : user, clientId: c == nil ? "" : clientId))
            }
        }
        return nil
    }

    /// Records `amount` (bytes, or percent-seconds of one thread for requests) for the client and
    /// returns the throttle time in ms (0 when within its quota or when it has none). A throttled
    /// fetch's bytes are taken back out (its response carries no records).
    public func record(_ kind: Kind, user: String = ClientQuotas.anonymousUser, clientId: String, amount: Double, nowMs: Int64) -> Int {
        guard anyQuota.load(ordering: .acquiring) else { return 0 }
        return state.withLock { s -> Int in
            guard let (quota, key) = Self.resolve(s.quotas, key: kind.key, user: user, clientId: clientId) else { return 0 }
            var sampler = s.sensors[key] ?? Sampler(samples: windowSamples)
            sampler.record(amount, now: nowMs, windowMs: windowMs)
            let (rate, window) = sampler.rate(now: nowMs, windowMs: windowMs)
            s.sensors[key] = sampler
            guard rate > quota, quota > 0 else { return 0 }
            s.throttled += 1
            if kind == .fetch {
                // A throttled fetch is answered without records: Kafka takes its bytes back out.
                sampler.record(-amount, now: nowMs, windowMs: windowMs)
                s.sensors[key] = sampler
            }
            let throttle = (rate - quota) / quota * window
            return Int(min(throttle, Double(windowMs) * Double(windowSamples)))
        }
    }

    // MARK: DescribeClientQuotas / AlterClientQuotas

    static func name(from wire: String?) -> Name { wire.map(Name.named) ?? .defaultEntity }

    func describe(_ request: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
        var seenTypes: Set<String> = []
        for component in request.components {
            guard component.entityType == "user" || component.entityType == "client-id" else {
                return .init(errorCode: KafkaErrorCode.invalidRequest.rawValue, errorMessage: "Unsupported entity type \(component.entityType)", entries: nil)
            }
            guard seenTypes.insert(component.entityType).inserted else {
                return .init(errorCode: KafkaErrorCode.invalidRequest.rawValue, errorMessage: "Duplicate entity type \(component.entityType)", entries: nil)
            }
            guard (0...2).contains(component.matchType) else {
                return .init(errorCode: KafkaErrorCode.invalidRequest.rawValue, errorMessage: "Unknown match type \(component.matchType)", entries: nil)
            }
        }
        let quotas = state.withLock { $0.quotas }
        var entries: [DescribeClientQuotasResponse.EntryData] = []
        for (entity, values) in quotas.sorted(by: { "\($0.key)" < "\($1.key)" }) {
            func component(_ type: String) -> Name? { type == "user" ? entity.user : entity.clientId }
            var matches = true
            for filter in request.components {
                guard let name = component(filter.entityType) else { matches = false; break }
                switch filter.matchType {
                case 0: matches = name == .named(filter.match ?? "")
                case 1: matches = name == .defaultEntity
                default: break  // any
                }
                if !matches { break }
            }
            if matches && request.strict {
                let present = Set([entity.user == nil ? nil : "user", entity.clientId == nil ? nil : "client-id"].compactMap { $0 })
                matches = present == seenTypes
            }
            guard matches else { continue }
            var described: [DescribeClientQuotasResponse.EntityData] = []
            if let user = entity.user { described.append(.init(entityType: "user", entityName: Self.wireName(user))) }
            if let client = entity.clientId { described.append(.init(entityType: "client-id", entityName: Self.wireName(client))) }
            entries.append(.init(entity: described, values: values.sorted { $0.key < $1.key }.map { .init(key: $0.key, value: $0.value) }))
        }
        return .init(errorCode: 0, errorMessage: nil, entries: entries)
    }

    static func wireName(_ name: Name) -> String? {
        if case .named(let text) = name { return text }
        return nil
    }

    func alter(_ request: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
        var response = AlterClientQuotasResponse(throttleTimeMs: 0, entries: [])
        var planned: [(Int, Entity, AlterClientQuotasRequest.EntryData)] = []
        for (index, entry) in request.entries.enumerated() {
            let wireEntity = entry.entity.map { AlterClientQuotasResponse.EntityData(entityType: $0.entityType, entityName: $0.entityName) }
            response.entries.append(.init(errorCode: 0, errorMessage: nil, entity: wireEntity))
            func fail(_ message: String) {
                response.entries[index].errorCode = KafkaErrorCode.invalidRequest.rawValue
                response.entries[index].errorMessage = message
            }
            var entity = Entity(user: nil, clientId: nil)
            var valid = !entry.entity.isEmpty
            if !valid { fail("The entity is empty") }
            for component in entry.entity where valid {
                switch component.entityType {
                case "user" where entity.user == nil: entity.user = Self.name(from: component.entityName)
                case "client-id" where entity.clientId == nil: entity.clientId = Self.name(from: component.entityName)
                case "user", "client-id":
                    fail("Duplicate entity type \(component.entityType)")
                    valid = false
                default:
                    fail("Unsupported entity type \(component.entityType)")
                    valid = false
                }
            }
            for op in entry.ops where valid {
                if !Self.keys.contains(op.key) {
                    fail("Invalid configuration key \(op.key)")
                    valid = false
                } else if !op.remove && !(op.value > 0 && op.value.isFinite) {
                    fail("Quota \(op.key) must be positive, got \(op.value)")
                    valid = false
                } else if op.key == "request_percentage" && !op.remove && op.value > 100_000 {
                    fail("request_percentage out of range")
                    valid = false
                }
            }
            if valid { planned.append((index, entity, entry)) }
        }
        if request.validateOnly || planned.isEmpty { return response }
        let failed: String? = state.withLock { s -> String? in
            var next = s.quotas
            for (_, entity, entry) in planned {
                var values = next[entity] ?? [:]
                for op in entry.ops {
                    if op.remove { values[op.key] = nil } else { values[op.key] = op.value }
                }
                next[entity] = values.isEmpty ? nil : values
            }
            do {
                let stored = next.map { StoredEntry(entity: $0.key, quotas: $0.value) }
                try io.writeFileAtomically(path, Array(try JSONEncoder().encode(stored)))
            } catch {
                return "cannot persist client quotas: \(error)"
            }
            s.quotas = next
            quotasChanged(next)
            return nil
        }
        if let failed {
            for (index, _, _) in planned {
                response.entries[index].errorCode = KafkaErrorCode.kafkaStorageError.rawValue
                response.entries[index].errorMessage = failed
            }
        } else {
            logger.info("client quotas changed", metadata: ["entries": "\(planned.count)"])
        }
        return response
    }
}

/// KIP-124 `request_percentage`: one request's handling time, charged to its client's request
/// quota. Kafka records the handler's time and computes the throttle just before it builds the
/// response, and reports it there (KIP-219); the network thread's time (sending it) is recorded
/// afterwards and throttles later requests. So here: `chargeForResponse` (from `Broker.encode`)
/// charges the time so far and gives the throttle to report, and `chargeRest` (from the
/// connection, when the handling returns) charges the time since, e.g. writing the response. A
/// response that completes later (a produce waiting for its append, a fetch waiting for data) is
/// charged by `chargeRest` only, never for the wait, and reports the throttle found then.
public final class RequestTiming: Sendable {
    private struct State {
        /// The end of the time charged so far.
        var chargedUntil: NIODeadline
        /// The throttle to report, once found.
        var reported: Int?
    }

    private let state: Mutex<State>

    public init(started: NIODeadline) {
        state = Mutex(State(chargedUntil: started, reported: nil))
    }

    /// The throttle in ms to report in the response, and whether this call charged it (then the
    /// connection is to be muted that long). Charges the time so far only on the first call
    /// before `chargeRest`.
    public func chargeForResponse(_ quotas: ClientQuotas, user: String, clientId: String, now: NIODeadline = .now()) -> (throttleMs: Int, chargedNow: Bool) {
        state.withLock { s in
            if let reported = s.reported { return (reported, false) }
            let throttle = Self.record(quotas, user: user, clientId: clientId, from: s.chargedUntil, to: now)
            s.chargedUntil = now
            s.reported = throttle
            return (throttle, true)
        }
    }

    /// Charges the time since the last charge; returns the throttle (mute the connection when > 0).
    public func chargeRest(_ quotas: ClientQuotas, user: String, clientId: String, now: NIODeadline = .now()) -> Int {
        state.withLock { s in
            let throttle = Self.record(quotas, user: user, clientId: clientId, from: s.chargedUntil, to: now)
            s.chargedUntil = now
            if s.reported == nil { s.reported = throttle }
            return throttle
        }
    }

    private static func record(_ quotas: ClientQuotas, user: String, clientId: String, from: NIODeadline, to: NIODeadline) -> Int {
        let elapsed = max(0, (to - from).nanoseconds)
        return quotas.record(
            .request, user: user, clientId: clientId, amount: Double(elapsed) / 10_000_000,
            nowMs: Int64(Date().timeIntervalSince1970 * 1000))
    }
}
