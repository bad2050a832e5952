import DiskIO
import Logging
import RecordFormat
import Synchronization

/// Transactions on a partition: the last stable offset and the aborted-transaction index.
///
/// The appender feeds transactional batches and markers through `ProducerStateManager`
/// (`noteTransactionalAppend`); at publish, `publishTransactionsLocked` moves the first unstable
/// offset and the new aborted transactions into the reader-visible state, and writes the active
/// segment's `.txnindex` for an abort.
///
/// Crash points: the `.txnindex` is rewritten atomically after the ABORT marker's write was
/// submitted. A crash before it leaves the marker in the log (or torn away) without an index
/// entry; `LogLoader` replays markers past the producer snapshot and re-adds missing entries.
extension PartitionLog {
    /// The last stable offset: below it every transaction is decided (Kafka's LSO).
    public var lastStableOffset: Int64 {
        state.withLock { s in min(s.firstUnstableOffset ?? s.highWatermark, s.highWatermark) }
    }

    /// A read_committed read: like `read`, but only whole batches below the last stable offset
    /// (taken before the read). Without an open transaction the LSO is the high watermark and
    /// nothing is trimmed; otherwise batch headers of the read are walked to cut at the LSO.
    public func readCommitted(from offset: Offset, maxBytes: Int) throws(CommitLogError) -> (LogReadResult, lastStableOffset: Offset) {
        let lastStable = lastStableOffset
        var result = try read(from: offset, maxBytes: maxBytes)
        guard lastStable < result.highWatermark.value else { return (result, Offset(lastStable)) }
        guard offset.value < lastStable else {
            result.slices = []
            result.byteCount = 0
            return (result, Offset(lastStable))
        }
        var kept: [FileSlice] = []
        var byteCount = 0
        slices: for slice in result.slices {
            var position = slice.position.value
            let end = position + Int64(slice.length)
            while position < end {
                let header = try BatchHeaderReader.header(io: io, file: slice.file, at: position, end: end)
                if header.baseOffset >= lastStable {
                    let length = Int(position - slice.position.value)
                    if length > 0 { kept.append(FileSlice(file: slice.file, position: slice.position, length: length)) }
                    byteCount += length
                    break slices
                }
                position += Int64(header.totalByteCount)
            }
            kept.append(slice)
            byteCount += slice.length
        }
        result.slices = kept
        result.byteCount = byteCount
        return (result, Offset(lastStable))
    }

    /// Aborted transactions that overlap `[from, upTo)` (their data may be in the fetched range).
    public func abortedTransactions(from: Int64, upTo: Int64) -> [AbortedTransaction] {
        state.withLock { s in
            s.abortedTransactions.filter { $0.lastOffset >= from && $0.firstOffset < upTo }
        }
    }

    /// All aborted transactions known for this partition (tools and tests).
    public var allAbortedTransactions: [AbortedTransaction] { state.withLock { $0.abortedTransactions } }

    /// Appender thread, after a batch with a producer id was placed at `firstOffset...lastOffset`.
    /// Returns an error message when a marker is refused (checked before placement by `checkMarker`).
    func noteTransactionalMarker(producerId: Int64, epoch: Int16, type: ControlRecordType?, markerOffset: Int64, now: Int64) {
        guard let first = writer.producers.completeTransaction(producerId: producerId, epoch: epoch, now: now) else { return }
        guard type == .abort else { return }
        // The LSO right after this marker (Kafka records it for the fetch-side index).
        let lastStable = writer.producers.firstUnstableOffset ?? (markerOffset + 1)
        writer.groupAborted.append(AbortedTransaction(producerId: producerId, firstOffset: first, lastOffset: markerOffset, lastStableOffset: lastStable))
    }

    /// Called by the appender's publish, under the state lock. Returns the aborted transactions
    /// to write to the active segment's `.txnindex` (after the lock), nil when none were added.
    func publishTransactionsLocked(_ s: inout State) -> [AbortedTransaction]? {
        s.firstUnstableOffset = writer.producers.firstUnstableOffset
        guard !writer.groupAborted.isEmpty else { return nil }
        s.abortedTransactions.append(contentsOf: writer.groupAborted)
        writer.groupAborted.removeAll()
        let base = writer.active.baseOffset
        return s.abortedTransactions.filter { $0.lastOffset >= base }
    }

    /// Rewrites the active segment's `.txnindex` (small: aborts are rare, 34 bytes each). Writer thread.
    func writeTransactionIndex(_ entries: [AbortedTransaction]) {
        let base = writer.active.baseOffset
        let path = SegmentFileName.join(directory, TransactionIndexFile.name(base))
        do throws(DiskError) {
            try io.writeFileAtomically(path, TransactionIndexFile.encode(entries))
        } catch {
            logger.warning("could not write the transaction index", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// Loads the aborted-transaction index (`LogLoader`): every segment's `.txnindex` (indexes of
    /// segments no longer present are deleted), plus ABORT markers found by the producer-state
    /// replay that no index holds yet (a crash before the index write), which are written back.
    func loadTransactionIndexes(segments: [LogSegment], replayed: [AbortedTransaction]) throws(DiskError) {
        let bases = Set(segments.map(\.baseOffset))
        var entries: [AbortedTransaction] = []
        for name in try io.listDirectory(directory) {
            guard let base = TransactionIndexFile.baseOffset(of: name) else { continue }
            let path = SegmentFileName.join(directory, name)
            guard bases.contains(base) else {
                try io.unlink(path)
                continue
            }
            entries.append(contentsOf: TransactionIndexFile.decode(try io.readWholeFile(path) ?? []))
        }
        entries.sort { $0.lastOffset < $1.lastOffset }
        let end = writer.nextOffset
        entries.removeAll { $0.lastOffset >= end }  // markers recovery truncated away
        let known = Set(entries.map(\.lastOffset))
        let missing = replayed.filter { !known.contains($0.lastOffset) }
        entries.append(contentsOf: missing)
        entries.sort { $0.lastOffset < $1.lastOffset }
        state.withLock { s in
            s.abortedTransactions = entries
            s.firstUnstableOffset = writer.producers.firstUnstableOffset
        }
        // Rewrite the index of each segment that gained (or lost) entries.
        for segment in segments {
            let upper = segments.first { $0.baseOffset > segment.baseOffset }?.baseOffset ?? .max
            let own = entries.filter { $0.lastOffset >= segment.baseOffset && $0.lastOffset < upper }
            let path = SegmentFileName.join(directory, TransactionIndexFile.name(segment.baseOffset))
            let changed = !missing.filter { $0.lastOffset >= segment.baseOffset && $0.lastOffset < upper }.isEmpty
            if changed { try io.writeFileAtomically(path, TransactionIndexFile.encode(own)) }
        }
    }
}

/// One producer's state on a partition, as DescribeProducers reports it.
public struct ActiveProducer: Sendable, Equatable {
    public var producerId: Int64
    public var producerEpoch: Int16
    public var lastSequence: Int32
    public var lastTimestamp: Int64
    public var coordinatorEpoch: Int32
    /// First offset of its open transaction here (-1: none).
    public var currentTxnStartOffset: Int64
}

extension PartitionLog {
    /// The producers this partition knows (read on the writer thread, which owns the state; waits
    /// for it, so call off the event loops).
    public func activeProducers(_ appender: LogAppender) -> [ActiveProducer] {
        appender.perform { [self] in
            writer.producers.sortedEntries.map {
                ActiveProducer(
                    producerId: $0.producerId, producerEpoch: $0.epoch, lastSequence: $0.lastSequence, lastTimestamp: $0.lastTimestamp,
                    coordinatorEpoch: $0.coordinatorEpoch, currentTxnStartOffset: $0.currentTxnFirstOffset)
            }
        }
    }
}
