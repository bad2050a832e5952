import BrokerCore
import KafkaWire
import NIOCore
import Testing

/// Client quotas through encoded AlterClientQuotas requests: Kafka's entity precedence and the
/// throttle-time arithmetic of its windowed rate.
@Suite(.serialized) struct ClientQuotaTests {
    static func set(_ harness: BrokerHarness, user: String?? = .none, client: String?? = .none, _ key: String, _ value: Double) throws {
        var entity: [AlterClientQuotasRequest.EntityData] = []
        if case .some(let name) = user { entity.append(.init(entityType: "user", entityName: name)) }
        if case .some(let name) = client { entity.append(.init(entityType: "client-id", entityName: name)) }
        let response = try harness.call(
            AlterClientQuotasRequest(entries: [.init(entity: entity, ops: [.init(key: key, value: value, remove: false)])]), version: 1)
        #expect(response.entries[0].errorCode == 0)
    }

    @Test func precedenceFollowsKafka() throws {
        let harness = try BrokerHarness(sets: ["quota.window.num": "2", "quota.window.size.seconds": "1"])
        let quotas = harness.broker.clientQuotas
        try Self.set(harness, client: .some(nil), "producer_byte_rate", 100)  // default client-id
        // 150 bytes in a 1 s window: over the default client quota.
        #expect(quotas.record(.produce, clientId: "a", amount: 150, nowMs: 10_000) > 0)
        // A client-id quota beats the default client-id's.
        try Self.set(harness, client: "b", "producer_byte_rate", 1000)
        #expect(quotas.record(.produce, clientId: "b", amount: 150, nowMs: 10_000) == 0)
        // A user quota (every unauthenticated client is ANONYMOUS) beats any client-id-only quota.
        try Self.set(harness, user: "ANONYMOUS", "producer_byte_rate", 120)
        #expect(quotas.record(.produce, clientId: "b", amount: 150, nowMs: 10_000) > 0)
        // ... and user + client-id beats the user alone.
        try Self.set(harness, user: "ANONYMOUS", client: "b", "producer_byte_rate", 10_000)
        #expect(quotas.record(.produce, clientId: "b", amount: 150, nowMs: 10_000) == 0)
        // Fetch quotas are separate keys: none set, never throttled.
        #expect(quotas.record(.fetch, clientId: "b", amount: 1e9, nowMs: 10_000) == 0)
    }

    @Test func throttleTimeIsTheTimeToGetBackToTheQuota() throws {
        let harness = try BrokerHarness(sets: ["quota.window.num": "11", "quota.window.size.seconds": "1"])
        let quotas = harness.broker.clientQuotas
        try Self.set(harness, client: "c", "producer_byte_rate", 1000)
        // 20,000 bytes at once: Kafka's window is at least 10 s, so the rate is 2,000 B/s and the
        // throttle (2000 - 1000) / 1000 * 10 s = 10 s.
        let throttle = quotas.record(.produce, clientId: "c", amount: 20_000, nowMs: 50_000)
        #expect(throttle == 10_000)
        // Within the quota: no throttle.
        try Self.set(harness, client: "d", "producer_byte_rate", 1000)
        #expect(quotas.record(.produce, clientId: "d", amount: 9_000, nowMs: 50_000) == 0)
    }

    /// KIP-124/KIP-219: a request's time is charged once up to its response's encoding (whose
    /// throttle the response reports), then the rest when the handling returns; a response that
    /// completes later reports the throttle found then, and its wait is never charged.
    @Test func requestTimeIsChargedForTheResponseThenTheRest() throws {
        let harness = try BrokerHarness(sets: ["quota.window.num": "2", "quota.window.size.seconds": "1"])
        let quotas = harness.broker.clientQuotas
        try Self.set(harness, client: "r", "request_percentage", 1)  // 10 ms of handling per second
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let sync = RequestTiming(started: t0)
        let (throttle, chargedNow) = sync.chargeForResponse(quotas, user: "ANONYMOUS", clientId: "r", now: t0 + .milliseconds(500))
        #expect(chargedNow && throttle > 0)
        #expect(sync.chargeForResponse(quotas, user: "ANONYMOUS", clientId: "r", now: t0 + .milliseconds(900)) == (throttle, false))
        #expect(sync.chargeRest(quotas, user: "ANONYMOUS", clientId: "r", now: t0 + .milliseconds(501)) > 0)

        // Another client, within its quota: the response reports no throttle.
        try Self.set(harness, client: "s", "request_percentage", 100)
        let quick = RequestTiming(started: t0)
        #expect(quick.chargeForResponse(quotas, user: "ANONYMOUS", clientId: "s", now: t0 + .milliseconds(1)) == (0, true))

        // Completing later: charged when the handling returns, the wait (5 s) is not charged.
        try Self.set(harness, client: "t", "request_percentage", 50)
        let later = RequestTiming(started: t0)
        #expect(later.chargeRest(quotas, user: "ANONYMOUS", clientId: "t", now: t0 + .milliseconds(2)) == 0)
        #expect(later.chargeForResponse(quotas, user: "ANONYMOUS", clientId: "t", now: t0 + .seconds(5)) == (0, false))
    }

    @Test func describeFiltersAndRefusals() throws {
        let harness = try BrokerHarness()
        try Self.set(harness, client: "x", "consumer_byte_rate", 5)
        try Self.set(harness, user: "u", "request_percentage", 50)
        let all = try harness.call(DescribeClientQuotasRequest(components: [], strict: false), version: 1)
        #expect(all.errorCode == 0 && all.entries?.count == 2)
        let clients = try harness.call(DescribeClientQuotasRequest(components: [.init(entityType: "client-id", matchType: 2, match: nil)], strict: true), version: 1)
        #expect(clients.entries?.map { $0.entity.map(\.entityName) } == [["x"]])
        let bad = try harness.call(DescribeClientQuotasRequest(components: [.init(entityType: "ip", matchType: 2, match: nil)], strict: false), version: 1)
        #expect(bad.errorCode == KafkaErrorCode.invalidRequest.rawValue)
        let refused = try harness.call(
            AlterClientQuotasRequest(entries: [.init(entity: [.init(entityType: "client-id", entityName: "x")], ops: [.init(key: "nope", value: 1, remove: false)])]),
            version: 1)
        #expect(refused.entries[0].errorCode == KafkaErrorCode.invalidRequest.rawValue)
    }
}
