@testable import CommitLog
import DiskIO
import DiskIOTesting
import Logging
import NIOCore
import RecordFormat
import Synchronization

/// A clock tests move by hand.
final class ManualClock: LogClock {
    private let now: Mutex<Int64>

    init(_ start: Int64 = 1_700_000_000_000) { now = Mutex(start) }

    func wallMilliseconds() -> Int64 { now.withLock { $0 } }
    func monotonicNanoseconds() -> UInt64 { UInt64(now.withLock { $0 }) * 1_000_000 }
    func advance(by milliseconds: Int64) { now.withLock { $0 += milliseconds } }
}

let quietLogger: Logger = {
    var logger = Logger(label: "petrel.tests")
    logger.logLevel = .critical
    return logger
}()

/// A batch of `recordCount` records with values of `valueBytes` bytes and timestamps `timestamp + i`.
func makeBatch(recordCount: Int = 1, valueBytes: Int = 10, timestamp: Int64 = 1_700_000_000_000, fill: UInt8 = 0x61) -> ByteBuffer {
    var builder = RecordBatchBuilder(baseOffset: 0)
    for index in 0..<recordCount {
        builder.append(key: Array("k\(index)".utf8), value: [UInt8](repeating: fill, count: valueBytes), timestamp: timestamp + Int64(index))
    }
    return builder.build()
}

/// A batch whose records carry exactly the given timestamps.
func makeBatch(timestamps: [Int64], valueBytes: Int = 10) -> ByteBuffer {
    var builder = RecordBatchBuilder(baseOffset: 0)
    for (index, timestamp) in timestamps.enumerated() {
        builder.append(key: Array("k\(index)".utf8), value: [UInt8](repeating: 0x62, count: valueBytes), timestamp: timestamp)
    }
    return builder.build()
}

/// Kafka's defaults, but small index files: SimulatedDisk materializes preallocated bytes.
func testConfiguration() -> LogConfiguration {
    var configuration = LogConfiguration()
    configuration.segmentIndexBytes = 4096
    return configuration
}

/// Everything a storage test needs: a disk, a clock, a started manager.
final class Harness: @unchecked Sendable {
    let io: any FileIO
    let clock: ManualClock
    let root: String
    private(set) var manager: LogManager

    let openFilesMax: Int

    init(
        io: any FileIO = SimulatedDisk(), root: String = "/data", clock: ManualClock = ManualClock(), start: Bool = true,
        openFilesMax: Int = .max
    ) throws {
        self.io = io
        self.clock = clock
        self.root = root
        self.openFilesMax = openFilesMax
        manager = try LogManager(dataDirectory: root, io: io, clock: clock, logger: quietLogger, openFilesMax: openFilesMax)
        if start { manager.appender.start() }
    }

    var disk: SimulatedDisk { io as! SimulatedDisk }

    /// A fresh manager over the same disk (after shutdown or a crash), with logs loaded.
    @discardableResult
    func restart(configuration: LogConfiguration = testConfiguration()) throws -> [PartitionLog] {
        manager.appender.shutdown()
        manager = try LogManager(dataDirectory: root, io: io, clock: clock, logger: quietLogger, openFilesMax: openFilesMax)
        let logs = try manager.loadLogs { _ in configuration }
        manager.appender.start()
        return logs
    }

    func createLog(_ topic: String = "orders", _ partition: Int32 = 0, configuration: LogConfiguration = testConfiguration()) throws -> PartitionLog {
        try manager.createLog(TopicPartition(topic: topic, partition: partition), configuration: configuration)
    }

    func append(_ batch: ByteBuffer, to log: PartitionLog) async -> Result<AppendResult, CommitLogError> {
        await withCheckedContinuation { continuation in
            manager.appender.append(batch, to: log) { continuation.resume(returning: $0) }
        }
    }

    /// Appends and requires success.
    @discardableResult
    func appendOK(_ batch: ByteBuffer, to log: PartitionLog) async throws -> AppendResult {
        try await append(batch, to: log).get()
    }

    /// The bytes of a read result.
    func bytes(of result: LogReadResult) throws -> [UInt8] {
        var all: [UInt8] = []
        for slice in result.slices {
            var bytes = [UInt8](repeating: 0, count: slice.length)
            let count = try bytes.withUnsafeMutableBytes { raw in try io.read(slice.file.fd, into: raw, at: slice.position.value) }
            precondition(count == slice.length, "short read \(count) of \(slice.length) at \(slice.position) in \(slice.file.path) fd \(slice.file.fd)")
            all += bytes
        }
        return all
    }

    /// The validated batches of a read result.
    func batches(of result: LogReadResult) throws -> [RecordBatchHeader] {
        try Self.batches(in: bytes(of: result))
    }

    static func batches(in bytes: [UInt8]) throws -> [RecordBatchHeader] {
        var buffer = ByteBuffer(bytes: bytes)
        var headers: [RecordBatchHeader] = []
        while buffer.readableBytes > 0 {
            let header = try RecordBatch.validate(buffer, requireExactLength: false)
            headers.append(header)
            buffer.moveReaderIndex(forwardBy: header.totalByteCount)
        }
        return headers
    }

    /// Reads the whole log (from the log start) and returns its batches.
    func allBatches(_ log: PartitionLog) throws -> [RecordBatchHeader] {
        var headers: [RecordBatchHeader] = []
        var offset = log.logStartOffset
        while offset < log.highWatermark {
            let result = try log.read(from: Offset(offset), maxBytes: 1 << 20)
            let batch = try batches(of: result)
            guard let last = batch.last else { break }
            headers += batch
            offset = last.nextOffset
        }
        return headers
    }
}

func segmentPath(_ root: String, _ directory: String, _ base: Int64, _ suffix: String) -> String {
    "\(root)/\(directory)/\(SegmentFileName.stem(base))\(suffix)"
}
