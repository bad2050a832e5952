/// Kafka's index-building rule for one segment, shared by the append path and recovery so that an
/// index rebuilt from the log equals the one written while appending (LogSegment.append/recover).
struct SegmentIndexer: Sendable {
    let baseOffset: Int64
    let intervalBytes: Int
    /// Bytes appended since the last offset-index entry.
    var bytesSinceLastEntry = 0
    /// Greatest batch max-timestamp in the segment, -1 if none.
    var maxTimestamp: Int64 = -1
    /// Last offset of the batch holding `maxTimestamp` (Kafka's shallow offset of max timestamp).
    var offsetOfMaxTimestamp: Int64
    /// The time index's last timestamp (-1 when empty): entries must exceed it.
    var lastTimeEntryTimestamp: Int64 = -1

    init(baseOffset: Int64, intervalBytes: Int) {
        self.baseOffset = baseOffset
        self.intervalBytes = intervalBytes
        self.offsetOfMaxTimestamp = baseOffset
    }

    /// Notes a batch about to be appended at `position`; returns the index entries it earns.
    mutating func add(lastOffset: Int64, position: Int64, byteCount: Int, maxTimestamp batchMaxTimestamp: Int64)
        -> (offset: OffsetIndexEntry?, time: TimeIndexEntry?)
    {
        if batchMaxTimestamp > maxTimestamp {
            maxTimestamp = batchMaxTimestamp
            offsetOfMaxTimestamp = lastOffset
        }
        var offsetEntry: OffsetIndexEntry?
        var timeEntry: TimeIndexEntry?
        if bytesSinceLastEntry > intervalBytes {
            offsetEntry = OffsetIndexEntry(relativeOffset: relative(lastOffset), position: UInt32(truncatingIfNeeded: position))
            timeEntry = nextTimeEntry()
            bytesSinceLastEntry = 0
        }
        bytesSinceLastEntry += byteCount
        return (offsetEntry, timeEntry)
    }

    /// The entry for the segment's max timestamp when it exceeds the last time entry (appended when the
    /// segment stops being active, and at the end of recovery).
    mutating func nextTimeEntry() -> TimeIndexEntry? {
        guard maxTimestamp > lastTimeEntryTimestamp else { return nil }
        lastTimeEntryTimestamp = maxTimestamp
        return TimeIndexEntry(timestamp: maxTimestamp, relativeOffset: relative(offsetOfMaxTimestamp))
    }

    func relative(_ offset: Int64) -> UInt32 {
        precondition(offset >= baseOffset && offset - baseOffset <= Int64(Int32.max), "offset \(offset) outside segment \(baseOffset)")
        return UInt32(offset - baseOffset)
    }
}
