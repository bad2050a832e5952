import DiskIO
import Logging
import RecordFormat

extension PartitionLog {
    /// Writes the producer snapshot `<nextOffset>.snapshot` (atomically: `.tmp`, fsync, rename, fsync
    /// the directory), then deletes all but the newest `ProducerSnapshotFile.retainedMax` snapshots.
    /// Writer thread (appender, or `LogManager` while it is stopped).
    ///
    /// Crash points: before the rename, the `.tmp` is deleted by the next load; after it, the snapshot
    /// may describe batches that were not yet durable — the load then finds it past the recovered log
    /// end and deletes it. Deleting older snapshots last means one valid snapshot is always present.
    func writeProducerSnapshot() throws(DiskError) {
        let offset = writer.nextOffset
        let path = SegmentFileName.join(directory, ProducerSnapshotFile.name(offset))
        try io.writeFileAtomically(path, ProducerSnapshotFile.encode(writer.producers.sortedEntries))
        let offsets = try ProducerSnapshotFile.list(directory, io: io)
        for old in offsets.dropLast(ProducerSnapshotFile.retainedMax) where old != offset {
            try io.unlink(SegmentFileName.join(directory, ProducerSnapshotFile.name(old)))
        }
        logger.debug("wrote producer snapshot", metadata: ["offset": "\(offset)", "producers": "\(writer.producers.count)"])
    }

    /// `writeProducerSnapshot`, logging instead of throwing: a missing snapshot only makes the next
    /// load replay more of the log.
    func writeProducerSnapshotLogging() {
        do { try writeProducerSnapshot() } catch {
            logger.warning("could not write the producer snapshot", metadata: ["offset": "\(writer.nextOffset)", "error": "\(error)"])
        }
    }

    /// Drops producers idle for `producer.id.expiration.ms` (writer thread).
    func expireProducers(now: Int64) {
        let removed = writer.producers.removeExpired(now: now, expirationMs: writer.configuration.producerIdExpirationMs)
        if removed > 0 { logger.debug("expired producer ids", metadata: ["count": "\(removed)"]) }
    }
}
