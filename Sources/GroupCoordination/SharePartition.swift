/// KIP-932 share-partition state: which records of one topic partition a share group has handed
/// out, to whom, how often, and which are done. Sans-IO: the caller passes the time, the batch
/// boundaries it read from the log, and persists `snapshot()` (ShareSnapshotValue) when `isDirty`.
///
/// The window `[startOffset, endOffset)` holds one entry per offset (Kafka's in-flight records);
/// everything at or past `endOffset` has never been acquired. The window is bounded by
/// `group.share.partition.max.record.locks`: no record past `startOffset + maxRecordLocks` is acquired
/// until the start offset advances (every record before it acknowledged or archived).
public struct SharePartition: Sendable, Equatable {
    /// Kafka's delivery states (RecordState; the persisted codes are 0, 2 and 4).
    public enum RecordState: Int8, Sendable {
        case available = 0
        case acquired = 1
        case acknowledged = 2
        case archived = 4
    }

    /// Kafka's AcknowledgeType codes.
    public enum AcknowledgeType: Int8, Sendable {
        case gap = 0
        case accept = 1
        case release = 2
        case reject = 3
    }

    public struct Limits: Sendable, Equatable {
        /// `group.share.record.lock.duration.ms` (30000).
        public var recordLockDurationMs: Int64 = 30_000
        /// `group.share.delivery.count.limit` (5): a record delivered this often is archived when
        /// released or when its lock expires.
        public var deliveryCountLimit: Int16 = 5
        /// `group.share.partition.max.record.locks` (2000): in-flight records per share-partition.
        public var maxRecordLocks: Int = 2000

        public init(recordLockDurationMs: Int64 = 30_000, deliveryCountLimit: Int16 = 5, maxRecordLocks: Int = 2000) {
            self.recordLockDurationMs = recordLockDurationMs
            self.deliveryCountLimit = deliveryCountLimit
            self.maxRecordLocks = maxRecordLocks
        }
    }

    struct Entry: Sendable, Equatable {
        var state: RecordState
        var deliveryCount: Int16
        var memberId: String?
        var lockExpiresAtMs: Int64
    }

    /// An acquired run of offsets with one delivery count (ShareFetch's AcquiredRecords).
    public struct AcquiredRange: Sendable, Equatable {
        public var firstOffset: Int64
        public var lastOffset: Int64
        public var deliveryCount: Int16

        public init(firstOffset: Int64, lastOffset: Int64, deliveryCount: Int16) {
            self.firstOffset = firstOffset
            self.lastOffset = lastOffset
            self.deliveryCount = deliveryCount
        }
    }

    /// A persisted run of offsets (ShareSnapshotValue.StateBatch).
    public struct StateBatch: Sendable, Equatable {
        public var firstOffset: Int64
        public var lastOffset: Int64
        public var state: RecordState
        public var deliveryCount: Int16

        public init(firstOffset: Int64, lastOffset: Int64, state: RecordState, deliveryCount: Int16) {
            self.firstOffset = firstOffset
            self.lastOffset = lastOffset
            self.state = state
            self.deliveryCount = deliveryCount
        }
    }

    /// Largest window rebuilt from a snapshot (Kafka caps `group.share.partition.max.record.locks` at 10000).
    public static let maxRestoredWindow: Int64 = 100_000

    public private(set) var startOffset: Int64
    /// entries[i] is offset startOffset + i.
    private(set) var entries: [Entry] = []
    /// Set by every change that must be persisted (acknowledgements, releases, expired locks,
    /// a moved start offset); the caller clears it once the snapshot is written.
    public var isDirty = false
    /// The state epoch (ShareSnapshotValue.StateEpoch): bumped when the offsets are reset.
    public var stateEpoch: Int32 = 0

    public init(startOffset: Int64) {
        self.startOffset = startOffset
    }

    /// Rebuilds the state from a persisted snapshot: acquired records do not survive a restart
    /// (their locks were in memory), so everything not done is available again.
    public init(startOffset: Int64, batches: [StateBatch], stateEpoch: Int32 = 0) {
        self.startOffset = startOffset
        self.stateEpoch = stateEpoch
        for batch in batches.sorted(by: { $0.firstOffset < $1.firstOffset }) where batch.lastOffset >= startOffset {
            // A damaged record cannot make us allocate past the window we could ever have written.
            guard batch.lastOffset - startOffset < Self.maxRestoredWindow else { break }
            let first = max(batch.firstOffset, startOffset)
            let end = startOffset + Int64(entries.count)
            if first > end {
                // A hole in the snapshot: nothing is known of those offsets, deliver them.
                entries.append(contentsOf: repeatElement(Entry(state: .available, deliveryCount: 0, memberId: nil, lockExpiresAtMs: 0), count: Int(first - end)))
            }
            let state: RecordState = batch.state == .acquired ? .available : batch.state
            let from = max(first, startOffset + Int64(entries.count))
            guard batch.lastOffset >= from else { continue }
            entries.append(contentsOf: repeatElement(
                Entry(state: state, deliveryCount: max(0, batch.deliveryCount), memberId: nil, lockExpiresAtMs: 0),
                count: Int(batch.lastOffset - from + 1)))
        }
        advanceStart()
    }

    /// First offset never acquired.
    public var endOffset: Int64 { startOffset + Int64(entries.count) }

    /// Records currently locked by a member.
    public var acquiredCount: Int { entries.reduce(0) { $0 + ($1.state == .acquired ? 1 : 0) } }

    public func state(of offset: Int64) -> (state: RecordState, deliveryCount: Int16, memberId: String?)? {
        guard offset >= startOffset, offset < endOffset else { return nil }
        let entry = entries[Int(offset - startOffset)]
        return (entry.state, entry.deliveryCount, entry.memberId)
    }

    /// Where the next log read should start: the first available record, else the end offset.
    public func nextFetchOffset() -> Int64 {
        if let index = entries.firstIndex(where: { $0.state == .available }) { return startOffset + Int64(index) }
        return endOffset
    }

    /// The earliest lock expiry, for the caller's timer.
    public func earliestLockExpiry() -> Int64? {
        entries.lazy.filter { $0.state == .acquired }.map(\.lockExpiresAtMs).min()
    }

    /// Locks that ran out: the record is available again, or archived once delivered
    /// `deliveryCountLimit` times.
    public mutating func expireLocks(nowMs: Int64, limits: Limits) {
        releaseAcquired(limits: limits) { $0.lockExpiresAtMs <= nowMs }
    }

    /// Records before the log start offset are gone (retention, DeleteRecords): archive them.
    public mutating func logStartMoved(to logStartOffset: Int64) {
        guard logStartOffset > startOffset else { return }
        let drop = Int(min(Int64(entries.count), logStartOffset - startOffset))
        entries.removeFirst(drop)
        startOffset = logStartOffset
        isDirty = true
    }

    /// Acquires for `memberId` the available records of the batches read from the log (each
    /// `(baseOffset, lastOffset)`), at most `maxRecords` (ShareFetch's MaxRecords, the client's
    /// `max.poll.records`; a batch may be acquired in part, the client delivers only acquired
    /// offsets) and at most up to `startOffset + maxRecordLocks`. Returns the acquired runs and the
    /// indexes of the batches that hold at least one acquired record (the ones to send).
    public mutating func acquire(
        memberId: String, batches: [(baseOffset: Int64, lastOffset: Int64)], maxRecords: Int, nowMs: Int64, limits: Limits
    ) -> (ranges: [AcquiredRange], batchIndexes: [Int]) {
        var ranges: [AcquiredRange] = []
        var used: [Int] = []
        var count = 0
        let windowEnd = startOffset + Int64(max(1, limits.maxRecordLocks))
        for (batchIndex, batch) in batches.enumerated() {
            guard count < max(1, maxRecords) else { break }
            var acquiredInBatch = false
            var offset = max(batch.baseOffset, startOffset)
            while offset <= batch.lastOffset && count < max(1, maxRecords) {
                if offset >= endOffset {
                    guard offset < windowEnd else { break }
                    // Offsets the log skipped (compaction, control batches) are archived.
                    while endOffset < offset {
                        entries.append(Entry(state: .archived, deliveryCount: 0, memberId: nil, lockExpiresAtMs: 0))
                    }
                    entries.append(Entry(state: .available, deliveryCount: 0, memberId: nil, lockExpiresAtMs: 0))
                }
                let index = Int(offset - startOffset)
                if entries[index].state == .available {
                    entries[index].state = .acquired
                    entries[index].deliveryCount &+= 1
                    entries[index].memberId = memberId
                    entries[index].lockExpiresAtMs = nowMs + limits.recordLockDurationMs
                    let delivery = entries[index].deliveryCount
                    if var last = ranges.last, last.lastOffset == offset - 1, last.deliveryCount == delivery {
                        last.lastOffset = offset
                        ranges[ranges.count - 1] = last
                    } else {
                        ranges.append(AcquiredRange(firstOffset: offset, lastOffset: offset, deliveryCount: delivery))
                    }
                    count += 1
                    acquiredInBatch = true
                }
                offset += 1
            }
            if acquiredInBatch { used.append(batchIndex) }
        }
        return (ranges, used)
    }

    /// Applies one acknowledgement batch of `memberId`: `types` holds one type for the whole range
    /// or one per offset. Every offset must be acquired by that member, else nothing changes and
    /// the answer is `INVALID_RECORD_STATE` (or `INVALID_REQUEST` for a malformed batch).
    public mutating func acknowledge(
        memberId: String, firstOffset: Int64, lastOffset: Int64, types: [Int8], limits: Limits
    ) -> AcknowledgeResult {
        guard firstOffset >= 0, lastOffset >= firstOffset, lastOffset - firstOffset < Int64(Int32.max) else { return .invalidRequest }
        let count = Int(lastOffset - firstOffset + 1)
        guard types.count == 1 || types.count == count else { return .invalidRequest }
        var parsed: [AcknowledgeType] = []
        parsed.reserveCapacity(types.count)
        for raw in types {
            guard let type = AcknowledgeType(rawValue: raw) else { return .invalidRequest }
            parsed.append(type)
        }
        guard firstOffset >= startOffset, lastOffset < endOffset else { return .invalidRecordState }
        let base = Int(firstOffset - startOffset)
        for index in base..<(base + count) where entries[index].state != .acquired || entries[index].memberId != memberId {
            // A gap may name an offset the log does not hold (already archived).
            let type = parsed.count == 1 ? parsed[0] : parsed[index - base]
            if type == .gap && entries[index].state == .archived { continue }
            return .invalidRecordState
        }
        for index in base..<(base + count) {
            let type = parsed.count == 1 ? parsed[0] : parsed[index - base]
            guard entries[index].state == .acquired else { continue }
            switch type {
            case .accept: entries[index].state = .acknowledged
            case .gap, .reject: entries[index].state = .archived
            case .release:
                entries[index].state = entries[index].deliveryCount >= limits.deliveryCountLimit ? .archived : .available
            }
            entries[index].memberId = nil
        }
        isDirty = true
        advanceStart()
        return .ok
    }

    public enum AcknowledgeResult: Sendable, Equatable {
        case ok
        case invalidRecordState
        case invalidRequest
    }

    /// A member left or its share session closed: its records are released (archived once at the
    /// delivery count limit).
    public mutating func releaseAll(memberId: String, limits: Limits) {
        releaseAcquired(limits: limits) { $0.memberId == memberId }
    }

    /// Acquired records matching `release` become available again, or archived once delivered
    /// `deliveryCountLimit` times.
    private mutating func releaseAcquired(limits: Limits, where release: (Entry) -> Bool) {
        var changed = false
        for index in entries.indices where entries[index].state == .acquired && release(entries[index]) {
            entries[index].state = entries[index].deliveryCount >= limits.deliveryCountLimit ? .archived : .available
            entries[index].memberId = nil
            changed = true
        }
        if changed {
            isDirty = true
            advanceStart()
        }
    }

    /// AlterShareGroupOffsets / a reset: start over at `offset` with nothing in flight.
    public mutating func reset(to offset: Int64) {
        entries.removeAll()
        startOffset = offset
        stateEpoch &+= 1
        isDirty = true
    }

    /// Drops the finished prefix: the start offset moves past acknowledged and archived records.
    private mutating func advanceStart() {
        var done = 0
        while done < entries.count, entries[done].state == .acknowledged || entries[done].state == .archived { done += 1 }
        guard done > 0 else { return }
        entries.removeFirst(done)
        startOffset += Int64(done)
        isDirty = true
    }

    /// The state to persist (ShareSnapshotValue.StateBatches): runs of equal state and delivery
    /// count; acquired records are written as available (their locks do not survive a restart).
    public func snapshot() -> [StateBatch] {
        var batches: [StateBatch] = []
        for (index, entry) in entries.enumerated() {
            let offset = startOffset + Int64(index)
            let state: RecordState = entry.state == .acquired ? .available : entry.state
            if var last = batches.last, last.state == state, last.deliveryCount == entry.deliveryCount, last.lastOffset == offset - 1 {
                last.lastOffset = offset
                batches[batches.count - 1] = last
            } else {
                batches.append(StateBatch(firstOffset: offset, lastOffset: offset, state: state, deliveryCount: entry.deliveryCount))
            }
        }
        return batches
    }
}
