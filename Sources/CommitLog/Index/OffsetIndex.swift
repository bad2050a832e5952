/// One offset-index entry: the last offset of a batch (relative to the segment base) and the batch's
/// start position in the `.log`. On disk: u32 + u32, big-endian.
struct OffsetIndexEntry: Equatable, Sendable {
    var relativeOffset: UInt32
    var position: UInt32
}

/// The sparse offset index of one segment, kept in memory; the `.index` file mirrors it.
///
/// Kafka's rule (LogSegment.append and LogSegment.recover): before appending a batch, if more than
/// `index.interval.bytes` were appended since the last entry, add an entry mapping the batch's
/// **last** offset to its **start** position. The first batch of a segment never gets one.
struct OffsetIndex: Sendable {
    static let entryByteCount = 8

    let baseOffset: Int64
    var entries: [OffsetIndexEntry] = []

    init(baseOffset: Int64, entries: [OffsetIndexEntry] = []) {
        self.baseOffset = baseOffset
        self.entries = entries
    }

    var count: Int { entries.count }
    var byteCount: Int { entries.count * Self.entryByteCount }

    func offset(of entry: OffsetIndexEntry) -> Int64 { baseOffset + Int64(entry.relativeOffset) }

    /// The position to start scanning for `offset`: the greatest entry whose offset is <= `offset`,
    /// or the segment start.
    func lookup(_ offset: Int64) -> (offset: Int64, position: Int64) {
        guard offset >= baseOffset, let last = entries.last else { return (baseOffset, 0) }
        if offset - baseOffset >= Int64(last.relativeOffset) { return (self.offset(of: last), Int64(last.position)) }
        let relative = UInt32(clamping: offset - baseOffset)
        // Greatest index with relativeOffset <= relative.
        var low = 0
        var high = entries.count  // exclusive
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].relativeOffset <= relative { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return (baseOffset, 0) }
        let entry = entries[low - 1]
        return (self.offset(of: entry), Int64(entry.position))
    }

    /// The greatest entry position that is <= `position`, or nil if none is.
    func floorPosition(atMost position: Int64) -> Int64? {
        guard let first = entries.first, Int64(first.position) <= position else { return nil }
        if let last = entries.last, Int64(last.position) <= position { return Int64(last.position) }
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if Int64(entries[mid].position) <= position { low = mid + 1 } else { high = mid }
        }
        return Int64(entries[low - 1].position)
    }

    // MARK: File format

    static func encode(_ entry: OffsetIndexEntry, into buffer: UnsafeMutableRawBufferPointer) {
        buffer.storeBytes(of: entry.relativeOffset.bigEndian, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: entry.position.bigEndian, toByteOffset: 4, as: UInt32.self)
    }

    static func encode(_ entries: [OffsetIndexEntry]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: entries.count * entryByteCount)
        bytes.withUnsafeMutableBytes { raw in
            for (i, entry) in entries.enumerated() {
                encode(entry, into: UnsafeMutableRawBufferPointer(rebasing: raw[(i * entryByteCount)...]))
            }
        }
        return bytes
    }

    /// Decodes an `.index` file. The all-zero tail of a preallocated file (an unclean shutdown left it
    /// untrimmed) holds no entries and is dropped. Throws a description when the file is not sane:
    /// length not a multiple of 8, entries not strictly increasing, or an entry past `logSize`.
    static func decode(_ bytes: [UInt8], baseOffset: Int64, logSize: Int64) throws(IndexCorruption) -> OffsetIndex {
        guard bytes.count % entryByteCount == 0 else {
            throw IndexCorruption("offset index length \(bytes.count) is not a multiple of \(entryByteCount)")
        }
        var count = bytes.count / entryByteCount
        var entries: [OffsetIndexEntry] = []
        let problem: IndexCorruption? = bytes.withUnsafeBytes { (raw) -> IndexCorruption? in
            func entry(_ i: Int) -> OffsetIndexEntry {
                OffsetIndexEntry(
                    relativeOffset: UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: i * entryByteCount, as: UInt32.self)),
                    position: UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: i * entryByteCount + 4, as: UInt32.self)))
            }
            while count > 0, entry(count - 1) == OffsetIndexEntry(relativeOffset: 0, position: 0) { count -= 1 }
            entries.reserveCapacity(count)
            for i in 0..<count {
                let current = entry(i)
                if let previous = entries.last,
                    current.relativeOffset <= previous.relativeOffset || current.position <= previous.position
                {
                    return IndexCorruption("offset index entry \(i) (\(current)) does not follow \(previous)")
                }
                if current.relativeOffset > UInt32(Int32.max) {
                    return IndexCorruption("offset index entry \(i) has relative offset \(current.relativeOffset)")
                }
                guard Int64(current.position) < logSize else {
                    return IndexCorruption("offset index entry \(i) points at \(current.position), past the log's \(logSize) bytes")
                }
                entries.append(current)
            }
            return nil
        }
        if let problem { throw problem }
        return OffsetIndex(baseOffset: baseOffset, entries: entries)
    }
}

/// Why an index file was rejected (it is then rebuilt from the log).
struct IndexCorruption: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
