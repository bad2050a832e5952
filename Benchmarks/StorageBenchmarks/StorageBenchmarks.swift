// Append-path throughput of the store (LogAppender) beside raw loops writing the same batches.
// Run: PETREL_BENCHMARKS=1 swift package benchmark --target StorageBenchmarks
// Every benchmark iteration writes 1 MiB, so the throughput metric (iterations/s) reads as MiB/s.
import Benchmark
import CommitLog
import DiskIO
import Dispatch
import Logging
import NIOCore
import RecordFormat
import URingIO

#if canImport(Glibc)
import Glibc
#endif

let mebibyte = 1 << 20

let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.throughput, .wallClock, .cpuTotal, .mallocCountTotal],
        warmupIterations: 16,
        scalingFactor: .one,
        maxDuration: .seconds(4),
        maxIterations: 3000
    )
    for batchBytes in [16 << 10, mebibyte] {
        let label = batchBytes == mebibyte ? "1 MiB" : "16 KiB"
        let stores: [(String, @Sendable () -> (any FileIO)?)] = [
            ("URingFileIO", { try? URingFileIO(entries: 256) }),
            ("PosixFileIO", { PosixFileIO() }),
        ]
        for (name, makeIO) in stores {
            let store = StoreWorkload(batchBytes: batchBytes, makeIO: makeIO)
            Benchmark("append \(label) batches, LogAppender + \(name)", configuration: configuration) { _ in
                store.appendOneMebibyte()
            } setup: {
                store.setUp()
            } teardown: {
                store.tearDown()
            }
        }
        let pwrite = RawWorkload(batchBytes: batchBytes, uring: false)
        Benchmark("append \(label) batches, raw pwrite loop", configuration: configuration) { _ in
            pwrite.writeOneMebibyte()
        } setup: {
            pwrite.setUp()
        } teardown: {
            pwrite.tearDown()
        }
        let submit = RawWorkload(batchBytes: batchBytes, uring: true)
        Benchmark("append \(label) batches, raw URingFileIO.submit loop", configuration: configuration) { _ in
            submit.writeOneMebibyte()
        } setup: {
            submit.setUp()
        } teardown: {
            submit.tearDown()
        }
    }
}

/// A fresh temporary directory.
func makeTemporaryDirectory() -> String {
    var template = Array("/tmp/petrel-bench-XXXXXX".utf8CString)
    let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: created!)
}

/// One record batch of `byteCount` bytes in total (one record carrying the payload).
func makeBatch(byteCount: Int) -> ByteBuffer {
    var builder = RecordBatchBuilder(baseOffset: 0)
    var valueBytes = byteCount - 80
    while true {
        var probe = RecordBatchBuilder(baseOffset: 0)
        probe.append(key: nil, value: [UInt8](repeating: 0x5A, count: valueBytes), timestamp: 1_700_000_000_000)
        let size = probe.build().readableBytes
        if size == byteCount || valueBytes <= 0 { break }
        valueBytes += byteCount - size
    }
    builder.append(key: nil, value: [UInt8](repeating: 0x5A, count: max(0, valueBytes)), timestamp: 1_700_000_000_000)
    return builder.build()
}

/// Appends through the store: a LogManager with one partition (Kafka's default configuration), each
/// iteration queueing 1 MiB of batches and waiting for the last acknowledgement.
final class StoreWorkload: @unchecked Sendable {
    let batchBytes: Int
    let makeIO: @Sendable () -> (any FileIO)?
    var directory = ""
    var manager: LogManager?
    var log: PartitionLog?
    let batch: ByteBuffer
    let perIteration: Int
    let done = DispatchSemaphore(value: 0)

    init(batchBytes: Int, makeIO: @escaping @Sendable () -> (any FileIO)?) {
        self.batchBytes = batchBytes
        self.makeIO = makeIO
        batch = makeBatch(byteCount: batchBytes)
        perIteration = max(1, mebibyte / batchBytes)
    }

    func setUp() {
        directory = makeTemporaryDirectory()
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        guard let io = makeIO(),
            let manager = try? LogManager(dataDirectory: directory + "/data", io: io, clock: SystemLogClock(), logger: logger),
            let log = try? manager.createLog(TopicPartition(topic: "bench", partition: 0), configuration: benchConfiguration())
        else { preconditionFailure("benchmark setup failed") }
        manager.appender.start()
        self.manager = manager
        self.log = log
    }

    func appendOneMebibyte() {
        guard let manager, let log else { return }
        let done = self.done
        for index in 0..<perIteration {
            let last = index == perIteration - 1
            manager.appender.append(batch, to: log) { result in
                if case .failure(let error) = result { preconditionFailure("append failed: \(error)") }
                if last { done.signal() }
            }
        }
        done.wait()
    }

    func tearDown() {
        try? manager?.shutdown()
        manager = nil
        log = nil
        try? PosixFileIO().removeDirectory(directory)
    }
}

/// The same writes without the store: a loop of `pwrite`s, or one `URingFileIO.submit` per MiB.
final class RawWorkload: @unchecked Sendable {
    let uring: Bool
    let batch: ByteBuffer
    let perIteration: Int
    var io: (any FileIO)?
    var directory = ""
    var fd: Int32 = -1
    var position: Int64 = 0
    var operations: [IOOperation] = []

    init(batchBytes: Int, uring: Bool) {
        self.uring = uring
        batch = makeBatch(byteCount: batchBytes)
        perIteration = max(1, mebibyte / batchBytes)
    }

    func setUp() {
        directory = makeTemporaryDirectory()
        io = uring ? (try? URingFileIO(entries: 256)) : PosixFileIO()
        guard let io, let fd = try? io.open(directory + "/00000000000000000000.log", mode: .createReadWrite) else {
            preconditionFailure("benchmark setup failed")
        }
        self.fd = fd
        position = 0
        operations.reserveCapacity(perIteration)
    }

    func writeOneMebibyte() {
        guard let io else { return }
        batch.withUnsafeReadableBytes { bytes in
            if uring {
                operations.removeAll(keepingCapacity: true)
                for _ in 0..<perIteration {
                    operations.append(IOOperation(.write(fd: fd, offset: position, bytes: bytes)))
                    position += Int64(bytes.count)
                }
                io.submit(&operations)
            } else {
                for _ in 0..<perIteration {
                    do { try io.write(fd, bytes, at: position) } catch { preconditionFailure("write failed: \(error)") }
                    position += Int64(bytes.count)
                }
            }
        }
    }

    func tearDown() {
        io?.close(fd)
        io = nil
        try? PosixFileIO().removeDirectory(directory)
    }
}

/// Kafka's defaults; `PETREL_BENCH_WRITE_BEHIND=<bytes>` overrides Petrel's write-behind (0 = off).
func benchConfiguration() -> LogConfiguration {
    var configuration = LogConfiguration()
    if let text = getenv("PETREL_BENCH_WRITE_BEHIND"), let bytes = Int(String(cString: text)) {
        configuration.writeBehindBytes = bytes
    }
    return configuration
}
