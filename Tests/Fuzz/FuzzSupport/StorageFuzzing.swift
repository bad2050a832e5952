public import CommitLog
public import DiskIO
import DiskIOTesting
import Logging
public import NIOCore
public import RecordFormat

/// A clock that never moves: recovery and loading must not depend on time for their invariants.
public struct FixedClock: LogClock {
    public init() {}
    public func wallMilliseconds() -> Int64 { 1_700_000_000_000 }
    public func monotonicNanoseconds() -> UInt64 { 1 }
}

/// One partition directory on a fresh `SimulatedDisk`, for the storage fuzz targets.
public final class StorageFixture {
    public static let root = "/data"
    public static let topicPartition = TopicPartition(topic: "fuzz", partition: 0)
    public static var directory: String { "\(root)/fuzz-0" }

    public let disk = SimulatedDisk()
    public var io: any FileIO { disk }
    public private(set) var manager: LogManager

    /// Small indexes (SimulatedDisk materializes preallocated bytes) and an entry every 128 bytes, so
    /// even small inputs get index entries; no retention (fuzzed timestamps are arbitrary).
    public static var configuration: LogConfiguration {
        var configuration = LogConfiguration()
        configuration.segmentIndexBytes = 4096
        configuration.indexIntervalBytes = 128
        configuration.retentionMs = -1
        return configuration
    }

    static let logger: Logger = {
        var logger = Logger(label: "petrel.fuzz")
        logger.logLevel = .critical
        return logger
    }()

    public init() {
        do {
            try disk.createDirectory(Self.root)
            try disk.createDirectory(Self.directory)
            manager = try LogManager(dataDirectory: Self.root, io: disk, clock: FixedClock(), logger: Self.logger)
        } catch {
            fatalError("setting up the simulated disk failed: \(error)")
        }
    }

    /// Path of segment file `base` with `suffix` (".log", ".index", ".timeindex").
    public static func path(_ base: Int64, _ suffix: String) -> String {
        let digits = String(base)
        return "\(directory)/\(String(repeating: "0", count: max(0, 20 - digits.count)))\(digits)\(suffix)"
    }

    public func write(_ path: String, _ bytes: [UInt8]) {
        do {
            let fd = try disk.open(path, mode: .createReadWrite)
            defer { disk.close(fd) }
            try disk.truncate(fd, to: 0)
            try bytes.withUnsafeBytes { raw in try disk.write(fd, raw, at: 0) }
            try disk.fdatasync(fd)
        } catch {
            fatalError("writing \(path) failed: \(error)")
        }
    }

    /// Marks the previous shutdown clean: segments are then trusted and only their indexes checked.
    public func writeCleanShutdownMarker() {
        write("\(Self.root)/.kafka_cleanshutdown", Array(#"{"version":0,"brokerEpoch":-1}"#.utf8))
    }

    /// Loads the partition (as the broker does at startup). Loading never fails on a healthy disk,
    /// whatever the files hold.
    public func load() -> PartitionLog {
        do {
            let logs = try manager.loadLogs { _ in Self.configuration }
            guard logs.count == 1, let log = logs.first else {
                violated("the partition did not load (\(logs.count) logs): recovery must cope with any bytes")
            }
            return log
        } catch {
            violated("loading failed: \(error)")
        }
    }

    /// Shuts down cleanly and loads again on a fresh manager over the same disk.
    public func restart() -> PartitionLog {
        do { try manager.shutdown() } catch { violated("clean shutdown failed: \(error)") }
        do {
            manager = try LogManager(dataDirectory: Self.root, io: disk, clock: FixedClock(), logger: Self.logger)
        } catch {
            violated("reopening failed: \(error)")
        }
        return load()
    }
}

/// What reading a whole log returned.
public struct LogContents: Equatable {
    public var bytes: [UInt8] = []
    public var batches: [RecordBatchHeader] = []
}

extension PartitionLog {
    /// Reads every batch from the log start to the high watermark, checking what any consumer relies
    /// on: whole CRC-valid batches, offsets increasing, nothing at or past the high watermark, and
    /// progress (a read below the high watermark returns at least one batch).
    /// - Parameter verifyCRC: false after a clean shutdown, where segments are trusted as they are:
    ///   then only trapping is a failure, and a failed check returns nil.
    public func readEverything(verifyCRC: Bool) -> LogContents? {
        // Recovered logs must pass every check; trusted (possibly hostile) ones only must not trap.
        func holds(_ condition: Bool, _ message: @autoclosure () -> String, line: UInt = #line) -> Bool {
            if !condition && verifyCRC { violated(message(), line: line) }
            return condition
        }
        var contents = LogContents()
        let logStart = logStartOffset
        let highWatermark = self.highWatermark
        guard holds(logStart <= highWatermark, "log start \(logStart) is past the high watermark \(highWatermark)") else { return nil }
        var offset = logStart
        var previousLast: Int64?
        var rounds = 0
        while offset < highWatermark {
            rounds += 1
            guard holds(rounds <= 1_000_000, "reading does not progress") else { return nil }
            var buffer = ByteBuffer()
            do {
                let result = try read(from: Offset(offset), maxBytes: 4096)
                for slice in result.slices {
                    let wanted = slice.length
                    let got = try slice.read(appendingTo: &buffer)
                    guard holds(got == wanted, "a slice of \(wanted) bytes read \(got)") else { return nil }
                }
            } catch {
                _ = holds(false, "reading offset \(offset) of a recovered log threw: \(error)")
                return nil
            }
            guard holds(buffer.readableBytes > 0, "read(from: \(offset)) below the high watermark \(highWatermark) returned nothing") else { return nil }
            var iterator = RecordBatchIterator(buffer, validatingCRC: verifyCRC)
            var first = true
            while let (_, header) = iterator.next() {
                if first {
                    guard holds(header.lastOffset >= offset, "read(from: \(offset)) started with a batch ending at \(header.lastOffset)") else { return nil }
                    first = false
                }
                if let previousLast {
                    guard holds(header.baseOffset > previousLast, "batch at \(header.baseOffset) does not follow \(previousLast)") else { return nil }
                }
                guard holds(header.lastOffset < highWatermark, "batch ending at \(header.lastOffset) is past the high watermark \(highWatermark)") else { return nil }
                previousLast = header.lastOffset
                contents.batches.append(header)
            }
            guard holds(iterator.endedCleanly, "a read returned a torn or invalid batch: \(String(describing: iterator.invalidBatch)) \(String(describing: iterator.truncatedTailPosition))") else { return nil }
            guard holds((previousLast ?? .min) >= offset, "read(from: \(offset)) returned no batch at or after it"), let last = previousLast else { return nil }
            contents.bytes += buffer.readableBytesView
            offset = last + 1
        }
        return contents
    }
}

/// Recomputes the CRC of every batch that frames correctly from the start of `bytes`, so mutated
/// inputs reach the checks behind the CRC. Stops at the first batch that does not frame.
public func fixBatchCRCs(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { raw in
        var position = 0
        while raw.count - position >= RecordBatchHeader.byteCount {
            let rest = UnsafeMutableRawBufferPointer(rebasing: raw[position...])
            guard rest.load(fromByteOffset: RecordBatchHeader.magicOffset, as: Int8.self) == 2 else { return }
            let batchLength = Int(Int32(bigEndian: rest.loadUnaligned(fromByteOffset: 8, as: Int32.self)))
            let total = batchLength + RecordBatchHeader.logOverhead
            guard batchLength >= RecordBatchHeader.byteCount - RecordBatchHeader.logOverhead, total <= rest.count else { return }
            RecordBatch.updateCRC(in: UnsafeMutableRawBufferPointer(rebasing: rest[..<total]))
            position += total
        }
    }
}

/// A batch of `count` records at `baseOffset`, timestamps from `timestamp` in steps of 10.
public func makeBatch(baseOffset: Int64, count: Int, timestamp: Int64, valueBytes: Int = 20) -> ByteBuffer {
    var builder = RecordBatchBuilder(baseOffset: baseOffset)
    for i in 0..<count {
        builder.append(
            key: Array("key-\(baseOffset + Int64(i))".utf8), value: [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: valueBytes),
            headers: i % 2 == 0 ? [("h", [1, 2])] : [], timestamp: timestamp + Int64(i) * 10)
    }
    return builder.build()
}
