// Append-path throughput of the store (LogAppender) beside raw loops writing the same batches.
// Run: PETREL_BENCHMARKS=1 swift package benchmark --target StorageBenchmarks
// Every benchmark iteration writes 1 MiB, so the throughput metric (iterations/s) reads as MiB/s.
//
// What each case does per iteration (1 MiB of batches, 64 × 16 KiB or 1 × 1 MiB):
// - LogAppender + URingFileIO / PosixFileIO: queue the batches on a LogManager's appender (one
//   partition, Kafka's defaults: 1 GiB segments, no fsync) and wait for the last acknowledgement.
//   The appender copies each (shared) batch into reused staging memory, patches its offset, writes
//   the group (consecutive batches joined into one write) plus the offset-index entries, and then
//   starts write-behind (`sync_file_range(SYNC_FILE_RANGE_WRITE)`) every `writeBehindBytes`.
// - raw pwrite loop: one `pwrite` per batch, then the same write-behind: `sync_file_range` over
//   what was written since the last one, whenever that reaches `writeBehindBytes`.
// - raw URingFileIO.submit loop: one `submit` of a write per batch, then the same write-behind as a
//   second `submit` (the appender also submits write-behind separately, after the writes).
// `PETREL_BENCH_WRITE_BEHIND=<bytes>` sets write-behind for the store and the raw loops alike
// (0 = off; default: LogConfiguration's 1 MiB).
//
// Fairness: every case runs in a fresh directory, writes the same bytes (warm-up + measured
// iterations = 512 MiB: far below the dirty-page thresholds, and no segment roll), and deletes its
// files in teardown. Before each case, setup `sync()`s and "prewarms" the page cache: it writes and
// deletes a 1 GiB scratch file (`PETREL_BENCH_PREWARM_MIB`, 0 = off). Why: on these VMs the balloon
// driver reports free memory to the hypervisor, which discards it; a page the guest gets back costs
// a host fault (~10 µs per 4 KiB, so ~380 MiB/s). 1 MiB writes allocate large page-cache folios,
// which come from exactly those high-order free blocks, so without prewarming a 1 MiB case runs at
// ~380 MiB/s or at ~5 GiB/s depending on what the case before it freed in the last ~2 s. Freeing
// 1 GiB of page cache right before the case leaves enough host-backed memory for it to run on.
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
/// Measured iterations per case (each 1 MiB); with the warm-up, 512 MiB per case.
let measuredIterations = 496
let warmupIterations = 16

let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.throughput, .wallClock, .cpuTotal, .mallocCountTotal],
        warmupIterations: warmupIterations,
        scalingFactor: .one,
        maxDuration: .seconds(30),
        maxIterations: measuredIterations
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

/// Same starting point for every case: no dirty data of ours (or anyone's) being written back, and
/// host-backed free memory for the case's page cache (see the header). Runs in setup, unmeasured.
func prepareCase(in directory: String) {
    sync()
    let prewarmMiB = environmentInt("PETREL_BENCH_PREWARM_MIB") ?? 1024
    guard prewarmMiB > 0 else { return }
    let path = directory + "/prewarm"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    precondition(fd >= 0, "prewarm: cannot create \(path)")
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: mebibyte, alignment: 4096)
    defer { chunk.deallocate() }
    chunk.initializeMemory(as: UInt8.self, repeating: 0x5A)
    for index in 0..<prewarmMiB {
        precondition(pwrite(fd, chunk.baseAddress, mebibyte, off_t(index * mebibyte)) == mebibyte, "prewarm: pwrite failed")
    }
    close(fd)
    unlink(path)  // its dirty pages are dropped unwritten; the memory is free and host-backed again
}

func environmentInt(_ name: String) -> Int? {
    guard let text = getenv(name) else { return nil }
    return Int(String(cString: text))
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
        prepareCase(in: directory)
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

/// The same writes without the store: a loop of `pwrite`s, or one `URingFileIO.submit` per MiB, each
/// followed by the store's write-behind policy (`sync_file_range` every `writeBehindBytes`).
final class RawWorkload: @unchecked Sendable {
    let uring: Bool
    let batch: ByteBuffer
    let perIteration: Int
    let writeBehindBytes: Int
    var io: (any FileIO)?
    var directory = ""
    var fd: Int32 = -1
    var position: Int64 = 0
    var writeBehindPosition: Int64 = 0
    var operations: [IOOperation] = []
    var syncOperations: [IOOperation] = []

    init(batchBytes: Int, uring: Bool) {
        self.uring = uring
        batch = makeBatch(byteCount: batchBytes)
        perIteration = max(1, mebibyte / batchBytes)
        writeBehindBytes = benchConfiguration().writeBehindBytes
    }

    func setUp() {
        directory = makeTemporaryDirectory()
        prepareCase(in: directory)
        io = uring ? (try? URingFileIO(entries: 256)) : PosixFileIO()
        guard let io, let fd = try? io.open(directory + "/00000000000000000000.log", mode: .createReadWrite) else {
            preconditionFailure("benchmark setup failed")
        }
        self.fd = fd
        position = 0
        writeBehindPosition = 0
        operations.reserveCapacity(perIteration)
        syncOperations.reserveCapacity(1)
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
                for operation in operations {
                    guard case .success(bytes.count) = operation.result else { preconditionFailure("write failed: \(String(describing: operation.result))") }
                }
            } else {
                for _ in 0..<perIteration {
                    do { try io.write(fd, bytes, at: position) } catch { preconditionFailure("write failed: \(error)") }
                    position += Int64(bytes.count)
                }
            }
        }
        // The appender's write-behind (LogAppender.queueWriteBehind), same threshold and range.
        guard writeBehindBytes > 0, position - writeBehindPosition >= Int64(writeBehindBytes) else { return }
        syncOperations.removeAll(keepingCapacity: true)
        syncOperations.append(IOOperation(.syncFileRange(fd: fd, offset: writeBehindPosition, length: position - writeBehindPosition)))
        io.submit(&syncOperations)
        writeBehindPosition = position
    }

    func tearDown() {
        io?.close(fd)
        io = nil
        try? PosixFileIO().removeDirectory(directory)
    }
}

/// Kafka's defaults; `PETREL_BENCH_WRITE_BEHIND=<bytes>` overrides Petrel's write-behind (0 = off), for
/// the store and the raw loops.
func benchConfiguration() -> LogConfiguration {
    var configuration = LogConfiguration()
    if let bytes = environmentInt("PETREL_BENCH_WRITE_BEHIND") {
        configuration.writeBehindBytes = bytes
    }
    return configuration
}
