/// Whether and how much of a compacted partition the cleaner should clean now
/// (Kafka `LogCleanerManager.grabFilthiestCompactedLog` / `cleanableOffsets`), as a pure function.
///
/// * firstDirtyOffset: the `cleaner-offset-checkpoint` value, reset to the log start offset when
///   missing, below the log start, or past the log end.
/// * firstUncleanableOffset: the active segment's base (the active segment is never cleaned), or
///   earlier: the base of the first dirty closed segment whose largest timestamp is within
///   `min.compaction.lag.ms` of now.
/// * clean bytes: segments wholly below firstDirtyOffset; dirty bytes: segments overlapping
///   [firstDirtyOffset, firstUncleanableOffset). ratio = dirty / (clean + dirty).
/// * Eligible when dirty bytes > 0 and the ratio exceeds `min.cleanable.dirty.ratio`, or the first
///   dirty segment's first batch is older than `max.compaction.lag.ms`; also when a delete horizon
///   written by an earlier round has passed (so expired tombstones go without new dirty data).
enum CompactionPlanner {
    struct Segment: Sendable, Equatable {
        var baseOffset: Int64
        /// The next segment's base (the log end for the active one).
        var endOffset: Int64
        var sizeBytes: Int64
        var largestTimestamp: Int64
        /// Max timestamp of the segment's first batch (-1 if unknown or empty).
        var firstBatchTimestamp: Int64
    }

    struct Plan: Sendable, Equatable {
        var firstDirtyOffset: Int64
        var firstUncleanableOffset: Int64
        var cleanBytes: Int64
        var dirtyBytes: Int64
        var ratio: Double
        /// `max.compaction.lag.ms` forces a clean.
        var lagExceeded: Bool
        /// A delete horizon passed: expired tombstones are waiting in the clean part.
        var horizonPassed: Bool
        var isEligible: Bool
    }

    /// - Parameters:
    ///   - segments: All segments oldest first; the last is the active one.
    ///   - checkpoint: The partition's `cleaner-offset-checkpoint` entry.
    ///   - pendingDeleteHorizonMs: The earliest delete horizon left by an earlier round, if any.
    static func plan(
        segments: [Segment], logStartOffset: Int64, checkpoint: Int64?, configuration: LogConfiguration, now: Int64,
        pendingDeleteHorizonMs: Int64?
    ) -> Plan {
        let logEnd = segments.last?.endOffset ?? logStartOffset
        let activeBase = segments.last?.baseOffset ?? logStartOffset
        var firstDirty = checkpoint ?? logStartOffset
        if firstDirty < logStartOffset || firstDirty > logEnd { firstDirty = logStartOffset }
        var firstUncleanable = activeBase
        let closed = segments.dropLast()
        if configuration.minCompactionLagMs > 0 {
            for segment in closed where segment.endOffset > firstDirty {
                if segment.largestTimestamp > now - configuration.minCompactionLagMs {
                    firstUncleanable = min(firstUncleanable, segment.baseOffset)
                    break
                }
            }
        }
        firstDirty = min(firstDirty, max(firstUncleanable, logStartOffset))
        var clean: Int64 = 0
        var dirty: Int64 = 0
        var firstDirtySegment: Segment?
        for segment in closed {
            if segment.endOffset <= firstDirty {
                clean += segment.sizeBytes
            } else if segment.baseOffset < firstUncleanable {
                dirty += segment.sizeBytes
                if firstDirtySegment == nil { firstDirtySegment = segment }
            }
        }
        let total = clean + dirty
        let ratio = total > 0 ? Double(dirty) / Double(total) : 0
        var lagExceeded = false
        if dirty > 0, configuration.maxCompactionLagMs != .max, let first = firstDirtySegment, first.firstBatchTimestamp >= 0 {
            lagExceeded = now - first.firstBatchTimestamp > configuration.maxCompactionLagMs
        }
        let horizonPassed = clean > 0 && (pendingDeleteHorizonMs.map { now >= $0 } ?? false)
        let compact = configuration.cleanupPolicy.contains(.compact)
        let eligible = compact && ((dirty > 0 && (ratio > configuration.minCleanableDirtyRatio || lagExceeded)) || horizonPassed)
        return Plan(
            firstDirtyOffset: firstDirty, firstUncleanableOffset: firstUncleanable, cleanBytes: clean, dirtyBytes: dirty,
            ratio: ratio, lagExceeded: lagExceeded, horizonPassed: horizonPassed, isEligible: eligible)
    }
}
