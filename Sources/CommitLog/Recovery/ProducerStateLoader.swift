import DiskIO
import Logging
import RecordFormat

/// Rebuilds a partition's producer state when it is loaded (Kafka `UnifiedLog.rebuildProducerState`):
///
/// 1. Delete snapshots past the log end: they describe batches recovery truncated away (a roll
///    snapshots before the group's batches are durable).
/// 2. Load the newest snapshot that decodes (CRC, layout); delete ones that do not.
/// 3. Replay the headers of the batches at or after the snapshot's offset (all of the log when there
///    is none), trusting the log: no sequence checks. Replayed producers get the load time as their
///    last write, so expiry is at most one period late, never early.
/// 4. Drop producers whose last batch lies below the log start offset (their batches are gone).
///
/// Crash points: only deletes files the next load would delete too.
struct ProducerStateLoader {
    let directory: String
    let io: any FileIO
    let clock: any LogClock
    let logger: Logger

    func load(segments: [LogSegment], logStartOffset: Int64) throws(DiskError) -> ProducerStateManager {
        try loadWithAborts(segments: segments, logStartOffset: logStartOffset).state
    }

    /// `load`, also returning the aborted transactions whose ABORT markers were replayed (markers
    /// past the snapshot: open transactions are rebuilt from the snapshot's `currentTxnFirstOffset`
    /// and the transactional batches after it).
    func loadWithAborts(segments: [LogSegment], logStartOffset: Int64) throws(DiskError) -> (state: ProducerStateManager, aborted: [AbortedTransaction]) {
        var aborted: [AbortedTransaction] = []
        let logEndOffset = segments.last?.nextOffset ?? logStartOffset
        var offsets = try ProducerSnapshotFile.list(directory, io: io)
        for offset in offsets where offset > logEndOffset {
            try io.unlink(SegmentFileName.join(directory, ProducerSnapshotFile.name(offset)))
            logger.warning(
                "deleted producer snapshot past the log end", metadata: ["offset": "\(offset)", "logEndOffset": "\(logEndOffset)"])
        }
        offsets.removeAll { $0 > logEndOffset }

        var state = ProducerStateManager()
        var replayFrom: Int64 = .min
        for offset in offsets.reversed() {
            let path = SegmentFileName.join(directory, ProducerSnapshotFile.name(offset))
            guard let bytes = try io.readWholeFile(path) else { continue }
            do {
                state = ProducerStateManager(entries: try ProducerSnapshotFile.decode(bytes))
                replayFrom = offset
                break
            } catch {
                logger.warning("deleting unreadable producer snapshot", metadata: ["path": "\(path)", "reason": "\(error)"])
                try io.unlink(path)
            }
        }

        let now = clock.wallMilliseconds()
        var replayed = 0
        for segment in segments where segment.nextOffset > replayFrom && segment.size > 0 {
            var position = replayFrom > segment.baseOffset ? segment.offsetIndex.lookup(replayFrom).position : 0
            var reader = ChunkReader(io: io, fd: segment.file.fd, fileSize: segment.size)
            while position < segment.size {
                guard let bytes = try reader.slice(at: position, length: RecordBatchHeader.byteCount),
                    let header = RecordBatchHeader(buffer: bytes), header.batchLength >= BatchHeaderReader.batchLengthMin
                else {
                    // Loaded segments end on a batch boundary; stop rather than trust a bad header.
                    logger.warning("stopped producer-state replay at an unreadable header", metadata: ["segment": "\(segment.logPath)", "position": "\(position)"])
                    break
                }
                position += Int64(header.totalByteCount)
                guard header.lastOffset >= replayFrom, header.producerId >= 0 else { continue }
                if header.isControl {
                    let batchPosition = position - Int64(header.totalByteCount)
                    guard header.totalByteCount <= 4096,
                        let whole = try reader.slice(at: batchPosition, length: header.totalByteCount)
                    else { continue }
                    let type = ControlRecordType(controlBatch: whole)
                    if let first = state.completeTransaction(producerId: header.producerId, epoch: header.producerEpoch, now: now),
                        type == .abort
                    {
                        let lastStable = state.firstUnstableOffset ?? (header.baseOffset + 1)
                        aborted.append(
                            AbortedTransaction(producerId: header.producerId, firstOffset: first, lastOffset: header.baseOffset, lastStableOffset: lastStable))
                    }
                    replayed += 1
                    continue
                }
                state.update(
                    producerId: header.producerId, epoch: header.producerEpoch, firstSequence: header.baseSequence,
                    lastSequence: header.lastSequence, firstOffset: header.baseOffset, lastOffset: header.lastOffset,
                    maxTimestamp: header.maxTimestamp, now: now, isTransactional: header.isTransactional)
                replayed += 1
            }
        }
        state.removeProducers(lastOffsetBelow: logStartOffset)
        if replayed > 0 || !state.isEmpty {
            logger.info(
                "rebuilt producer state",
                metadata: [
                    "snapshot": "\(replayFrom == .min ? "none" : String(replayFrom))", "replayedBatches": "\(replayed)",
                    "producers": "\(state.count)",
                ])
        }
        return (state, aborted)
    }
}
