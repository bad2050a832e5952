/// Which old segments retention deletes (Kafka `UnifiedLog.deleteOldSegments`), as a pure function
/// of the segment list so it is tested without a disk.
///
/// Three passes, each deleting a prefix of the segments and stopping at the first that does not
/// qualify (Kafka's order): `retention.ms`, `retention.bytes`, then the log start offset. The first
/// two run only when `cleanup.policy` contains `delete`; the last always does (DeleteRecords).
/// Unlike Kafka, the active segment is never deleted (Kafka would first roll an empty one).
enum RetentionPlanner {
    struct Segment: Sendable, Equatable {
        var baseOffset: Int64
        var sizeBytes: Int64
        /// The segment's largest record (batch max) timestamp, -1 when none is known.
        var largestTimestamp: Int64
    }

    enum Reason: String, Sendable, Equatable {
        case retentionMs = "retention.ms"
        case retentionBytes = "retention.bytes"
        case logStartOffset = "log start offset"
    }

    struct Plan: Sendable, Equatable {
        /// How many segments, from the oldest, to delete.
        var count: Int = 0
        /// Why each of them goes, oldest first.
        var reasons: [Reason] = []
    }

    /// - Parameters:
    ///   - segments: All segments, oldest first; the last is the active one.
    ///   - logStartOffset: The partition's log start offset.
    ///   - now: Wall-clock milliseconds.
    static func plan(
        segments: [Segment], logStartOffset: Int64, configuration: LogConfiguration, now: Int64
    ) -> Plan {
        var plan = Plan()
        // Never the active segment.
        let closedCount = max(0, segments.count - 1)
        func take(_ reason: Reason, _ qualifies: (Int) -> Bool) {
            while plan.count < closedCount, qualifies(plan.count) {
                plan.count += 1
                plan.reasons.append(reason)
            }
        }
        if configuration.cleanupPolicy.contains(.delete) {
            if configuration.retentionMs >= 0 {
                // Time: the largest timestamp, so one record dated in the future pins the segment
                // (now - future is negative); a segment without timestamps is never deleted by time.
                take(.retentionMs) { index in
                    let largest = segments[index].largestTimestamp
                    return largest >= 0 && now - largest > configuration.retentionMs
                }
            }
            if configuration.retentionBytes >= 0 {
                var excess = segments.reduce(Int64(0)) { $0 + $1.sizeBytes } - configuration.retentionBytes
                for index in 0..<plan.count { excess -= segments[index].sizeBytes }
                take(.retentionBytes) { index in
                    guard excess - segments[index].sizeBytes >= 0 else { return false }
                    excess -= segments[index].sizeBytes
                    return true
                }
            }
        }
        take(.logStartOffset) { index in segments[index + 1].baseOffset <= logStartOffset }
        return plan
    }
}
