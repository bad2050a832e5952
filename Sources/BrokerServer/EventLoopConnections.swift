import NIOCore
import Synchronization

/// How many Kafka connections one event loop serves. A large response is written in pieces, going
/// round the loop between them, only when its loop has other connections to serve meanwhile: a
/// consumer alone on its loop gets back-to-back writes (pacing cost a lone consumer 40% of its
/// throughput in `petrel bench consume`).
final class EventLoopConnections: @unchecked Sendable {
    /// Read and written only on the event loop's own thread.
    private(set) var count = 0

    /// Responses written in pieces (`petrel_responses_paced_total`).
    static let pacedResponses = Atomic<Int>(0)

    static func countPaced() { pacedResponses.add(1, ordering: .relaxed) }

    private static let all = Mutex<[ObjectIdentifier: EventLoopConnections]>([:])

    /// The counter of `eventLoop` (created at its first connection; event loops live as long as
    /// the server).
    static func of(_ eventLoop: any EventLoop) -> EventLoopConnections {
        let id = ObjectIdentifier(eventLoop)
        return all.withLock { table in
            if let counter = table[id] { return counter }
            let counter = EventLoopConnections()
            table[id] = counter
            return counter
        }
    }

    func opened(on eventLoop: any EventLoop) {
        eventLoop.assertInEventLoop()
        count += 1
    }

    func closed(on eventLoop: any EventLoop) {
        eventLoop.assertInEventLoop()
        count -= 1
        assert(count >= 0, "more connections closed than opened on this event loop")
    }
}
