public import CoreMetrics
import KafkaWire
import NIOCore
import Synchronization

/// The broker's request-path metrics through swift-metrics: one request-duration timer per API
/// (created up front, so timing a request is a clock read and one histogram observation) and
/// error counters by code for Produce and Fetch (created on the first error of each code).
/// Traffic counters live on the partitions (`PartitionLog.traffic`) and are read at scrape time.
public final class BrokerMetrics: Sendable {
    public let factory: any MetricsFactory
    private let timers: [Int16: CoreMetrics.Timer]
    private let errorCounters = Mutex<[ErrorKey: CoreMetrics.Counter]>([:])

    private struct ErrorKey: Hashable {
        var api: APIKey
        var code: Int16
    }

    public init(factory: any MetricsFactory, apis: [APIKey]) {
        self.factory = factory
        var timers: [Int16: CoreMetrics.Timer] = [:]
        for api in apis {
            timers[api.rawValue] = CoreMetrics.Timer(
                label: "petrel_request_duration_seconds", dimensions: [("api", api.name)], factory: factory)
        }
        self.timers = timers
    }

    /// A request of `api` answered `nanoseconds` after it was read.
    func requestCompleted(_ api: APIKey, nanoseconds: UInt64) {
        timers[api.rawValue]?.recordNanoseconds(Int64(truncatingIfNeeded: nanoseconds))
    }

    func countError(_ api: APIKey, code: Int16) {
        let key = ErrorKey(api: api, code: code)
        let counter = errorCounters.withLock { counters -> CoreMetrics.Counter in
            if let counter = counters[key] { return counter }
            let name = KafkaErrorCode(rawValue: code).name ?? String(code)
            let label = api == .produce ? "petrel_produce_errors_total" : "petrel_fetch_errors_total"
            let counter = CoreMetrics.Counter(label: label, dimensions: [("error", name)], factory: factory)
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    func countErrors(_ response: ProduceResponse) {
        for topic in response.responses {
            for partition in topic.partitionResponses where partition.errorCode != 0 {
                countError(.produce, code: partition.errorCode)
            }
        }
    }

    func countErrors(_ response: FetchResponse) {
        if response.errorCode != 0 { countError(.fetch, code: response.errorCode) }
        for topic in response.responses {
            for partition in topic.partitions where partition.errorCode != 0 {
                countError(.fetch, code: partition.errorCode)
            }
        }
    }
}
