public import DiskIO
import Synchronization

/// Hands out producer ids for InitProducerId: monotonic and never reused across restarts.
///
/// Like Kafka's controller it reserves blocks of `blockSize` ids: before the first id of a block is
/// handed out, the start of the *next* block is written to `<data dir>/petrel-producer-ids`
/// (atomically: `.tmp`, fsync, rename, fsync the directory). A restart continues at that stored
/// value, so the unused rest of a block is skipped, never reissued.
///
/// File: text, line 1 the version `0`, line 2 the next unreserved producer id.
///
/// Crash points: before the rename the old value stands and no id of the new block was handed out;
/// after it the whole block counts as used.
public final class ProducerIdAllocator: Sendable {
    /// Ids reserved per write (Kafka's `ProducerIdsBlock` size).
    public static let blockSize: Int64 = 1000
    static let fileName = "petrel-producer-ids"

    private struct State {
        var loaded = false
        /// The next id to hand out.
        var next: Int64 = 0
        /// The first id not reserved on disk.
        var blockEnd: Int64 = 0
    }

    public let path: String
    private let io: any FileIO
    private let state = Mutex(State())

    /// - Parameter dataDirectory: where `petrel-producer-ids` lives.
    public init(dataDirectory: String, io: any FileIO) {
        self.path = SegmentFileName.join(dataDirectory, Self.fileName)
        self.io = io
    }

    /// A producer id never handed out before (by this data directory).
    /// - Throws: `.storage` if the id file cannot be read or the next block cannot be reserved;
    ///   also if the file is malformed (it is not silently reset: ids could repeat).
    public func allocate() throws(CommitLogError) -> Int64 {
        try state.withLock { (s) throws(CommitLogError) -> Int64 in
            if !s.loaded {
                let stored = try readStored()
                s.next = stored
                s.blockEnd = stored
                s.loaded = true
            }
            if s.next >= s.blockEnd {
                let (end, overflow) = s.next.addingReportingOverflow(Self.blockSize)
                guard !overflow else { throw CommitLogError(.storage, "producer ids exhausted") }
                do throws(DiskError) { try io.writeFileAtomically(path, Array("0\n\(end)\n".utf8)) } catch {
                    throw .storage(error, "reserving producer ids up to \(end) in \(path)")
                }
                s.blockEnd = end
            }
            let id = s.next
            s.next += 1
            return id
        }
    }

    /// Whether `producerId` was handed out by this data directory at some point (or lies in a
    /// reserved block).
    public func wasIssued(_ producerId: Int64) throws(CommitLogError) -> Bool {
        try state.withLock { (s) throws(CommitLogError) -> Bool in
            if !s.loaded {
                let stored = try readStored()
                s.next = stored
                s.blockEnd = stored
                s.loaded = true
            }
            return producerId >= 0 && producerId < s.blockEnd
        }
    }

    private func readStored() throws(CommitLogError) -> Int64 {
        let bytes: [UInt8]?
        do throws(DiskError) { bytes = try io.readWholeFile(path) } catch { throw .storage(error, "reading \(path)") }
        guard let bytes else { return 0 }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        guard lines.count == 2, lines[0] == "0", let value = Int64(lines[1]), value >= 0 else {
            throw CommitLogError(.storage, "\(path) is malformed; refusing to reuse producer ids")
        }
        return value
    }
}
