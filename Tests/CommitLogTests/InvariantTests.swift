@testable import CommitLog
import DiskIOTesting
import Synchronization
import Testing

/// The debug-build checks behind the "appender thread only" and storage-invariant comments.
@Suite struct InvariantTests {
    #if DEBUG
    /// Writer state touched from another thread while the appender runs traps in debug builds.
    @Test func writerStateOffTheAppenderThreadTraps() async {
        await #expect(processExitsWith: .failure) {
            let h = try Harness()
            let log = try h.createLog()
            log.flushCompleted(now: 0, onlyInactive: false)  // the test's thread, not the appender's
        }
    }

    /// The same call is fine on the appender thread, and from any thread once the appender stopped.
    @Test func writerStateOnTheAppenderThreadOrStoppedIsAllowed() throws {
        let h = try Harness()
        let log = try h.createLog()
        h.manager.appender.perform { log.flushCompleted(now: 0, onlyInactive: false) }
        h.manager.appender.shutdown()
        log.flushCompleted(now: 0, onlyInactive: false)
        #expect(log.recoveryPoint == 0)
    }

    /// A recovery point past the log end breaks an invariant checked at flush completion.
    @Test func recoveryPointPastTheLogEndTraps() async {
        await #expect(processExitsWith: .failure) {
            let h = try Harness(start: false)
            let log = try h.createLog()
            log.writer.recoveryPoint = 5
            log.writer.nextOffset = 3
            log.flushCompleted(now: 0, onlyInactive: true)
        }
    }
    #endif

    /// Published state satisfies the invariants after appends, a roll and a flush.
    @Test func publishedStateHoldsTheInvariants() async throws {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.segmentBytes = 200
        let log = try h.createLog(configuration: configuration)
        for _ in 0..<5 { try await h.appendOK(makeBatch(valueBytes: 60), to: log) }
        let holds = h.manager.appender.perform {
            log.state.withLock { log.invariantsHoldLocked($0, previousHighWatermark: 0) }
        }
        #expect(holds)
        #expect(log.segmentCount > 1)
    }
}
