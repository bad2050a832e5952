/// One time-index entry: the greatest batch max-timestamp seen so far in the segment, and the
/// (relative) last offset of the batch that carried it. On disk: i64 + u32, big-endian.
struct TimeIndexEntry: Equatable, Sendable {
    var timestamp: Int64
    var relativeOffset: UInt32
}

/// The time index of one segment, kept in memory; the `.timeindex` file mirrors it.
///
/// Kafka's rule: whenever an offset-index entry is added, a time entry `(max timestamp so far,
/// offset of its batch)` is added too if the timestamp exceeds the last entry's; when the segment
/// stops being active a final entry for the segment's max timestamp is appended the same way.
/// Kafka counts the index full one entry early to leave room for that final entry.
struct TimeIndex: Sendable {
    static let entryByteCount = 12

    let baseOffset: Int64
    var entries: [TimeIndexEntry] = []

    init(baseOffset: Int64, entries: [TimeIndexEntry] = []) {
        self.baseOffset = baseOffset
        self.entries = entries
    }

    var count: Int { entries.count }
    var byteCount: Int { entries.count * Self.entryByteCount }
    /// The last entry's timestamp, or -1 (Kafka's NO_TIMESTAMP) when empty.
    var lastTimestamp: Int64 { entries.last?.timestamp ?? -1 }

    func offset(of entry: TimeIndexEntry) -> Int64 { baseOffset + Int64(entry.relativeOffset) }

    /// The offset to start searching for `timestamp`: that of the greatest entry whose timestamp is
    /// <= `timestamp`, or the segment base.
    func lookup(_ timestamp: Int64) -> Int64 {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].timestamp <= timestamp { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return baseOffset }
        return offset(of: entries[low - 1])
    }

    // MARK: File format

    static func encode(_ entry: TimeIndexEntry, into buffer: UnsafeMutableRawBufferPointer) {
        buffer.storeBytes(of: entry.timestamp.bigEndian, toByteOffset: 0, as: Int64.self)
        buffer.storeBytes(of: entry.relativeOffset.bigEndian, toByteOffset: 8, as: UInt32.self)
    }

    static func encode(_ entries: [TimeIndexEntry]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: entries.count * entryByteCount)
        bytes.withUnsafeMutableBytes { raw in
            for (i, entry) in entries.enumerated() {
                encode(entry, into: UnsafeMutableRawBufferPointer(rebasing: raw[(i * entryByteCount)...]))
            }
        }
        return bytes
    }

    /// Decodes a `.timeindex` file, dropping the all-zero tail of a preallocated file. Throws when the
    /// length is not a multiple of 12, timestamps do not increase, offsets decrease, or an entry's
    /// offset is at or past `nextOffset` (when known).
    static func decode(_ bytes: [UInt8], baseOffset: Int64, nextOffset: Int64?) throws(IndexCorruption) -> TimeIndex {
        guard bytes.count % entryByteCount == 0 else {
            throw IndexCorruption("time index length \(bytes.count) is not a multiple of \(entryByteCount)")
        }
        var count = bytes.count / entryByteCount
        var entries: [TimeIndexEntry] = []
        let problem: IndexCorruption? = bytes.withUnsafeBytes { (raw) -> IndexCorruption? in
            func entry(_ i: Int) -> TimeIndexEntry {
                TimeIndexEntry(
                    timestamp: Int64(bigEndian: raw.loadUnaligned(fromByteOffset: i * entryByteCount, as: Int64.self)),
                    relativeOffset: UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: i * entryByteCount + 8, as: UInt32.self)))
            }
            while count > 0, entry(count - 1) == TimeIndexEntry(timestamp: 0, relativeOffset: 0) { count -= 1 }
            entries.reserveCapacity(count)
            for i in 0..<count {
                let current = entry(i)
                if let previous = entries.last,
                    current.timestamp <= previous.timestamp || current.relativeOffset < previous.relativeOffset
                {
                    return IndexCorruption("time index entry \(i) (\(current)) does not follow \(previous)")
                }
                if current.relativeOffset > UInt32(Int32.max) {
                    return IndexCorruption("time index entry \(i) has relative offset \(current.relativeOffset)")
                }
                if let nextOffset, baseOffset + Int64(current.relativeOffset) >= nextOffset {
                    return IndexCorruption("time index entry \(i) names offset \(baseOffset + Int64(current.relativeOffset)), past the segment's end \(nextOffset)")
                }
                entries.append(current)
            }
            return nil
        }
        if let problem { throw problem }
        return TimeIndex(baseOffset: baseOffset, entries: entries)
    }
}
