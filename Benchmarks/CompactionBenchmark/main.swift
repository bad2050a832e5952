// Compaction throughput (MiB of log cleaned per second) and the cleaner's effect on produce latency
// (p50/p99 of appends with and without the cleaner running), on the real file system.
//
// Run: PETREL_BENCHMARKS=1 swift run -c release --scratch-path .build-bench CompactionBenchmark [logMiB] [dir]
// (or PETREL_COMPACTION_BENCH=1 to build only this target without the ordo-one package).
import CommitLog
import DiskIO
import Logging
import NIOCore
import RecordFormat
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
let logMiB = arguments.count > 1 ? Int(arguments[1]) ?? 256 : 256
let root = arguments.count > 2 ? arguments[2] : "/tmp/petrel-compaction-bench-\(getpid())"
let keyCount = 100_000
let valueBytes = 200
let recordsPerBatch = 50

var logger = Logger(label: "compaction-bench")
logger.logLevel = .warning
let clock = SystemLogClock()
let io = PosixFileIO()
_ = system("rm -rf '\(root)'")

func now() -> UInt64 { clock.monotonicNanoseconds() }

/// `value` with `digits` decimals (no Foundation).
func f(_ value: Double, _ digits: Int = 1) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return digits == 0 ? String(Int(rounded)) : String(rounded)
}

var configuration = LogConfiguration()
configuration.segmentBytes = 64 << 20
configuration.cleanupPolicy = .compact
configuration.minCleanableDirtyRatio = 0.01
configuration.retentionMs = -1

/// A batch of `recordsPerBatch` records over random keys.
func batch(_ rng: inout some RandomNumberGenerator, size: Int = recordsPerBatch) -> ByteBuffer {
    var builder = RecordBatchBuilder()
    let value = [UInt8](repeating: 0x61, count: valueBytes)
    let timestamp = clock.wallMilliseconds()
    for _ in 0..<size {
        builder.append(key: Array("key-\(Int.random(in: 0..<keyCount, using: &rng))".utf8), value: value, timestamp: timestamp)
    }
    return builder.build()
}

func append(_ manager: LogManager, _ log: PartitionLog, _ batch: ByteBuffer) -> UInt64 {
    let done = Mutex<Bool>(false)
    let start = now()
    manager.appender.append(batch, to: log) { _ in done.withLock { $0 = true } }
    while !done.withLock({ $0 }) { sched_yield() }
    return now() - start
}

func fill(_ manager: LogManager, _ log: PartitionLog, mebibytes: Int) {
    var rng = SystemRandomNumberGenerator()
    let remaining = Mutex<Int>(0)
    var written = 0
    while written < mebibytes << 20 {
        let b = batch(&rng)
        written += b.readableBytes
        remaining.withLock { $0 += 1 }
        manager.appender.append(b, to: log) { _ in remaining.withLock { $0 -= 1 } }
        while remaining.withLock({ $0 }) > 256 { sched_yield() }
    }
    while remaining.withLock({ $0 }) > 0 { sched_yield() }
}

func percentile(_ sorted: [UInt64], _ p: Double) -> Double {
    Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000
}

/// Appends paced at ~2000/s for `seconds`; returns sorted latencies (ns).
func produceLatencies(_ manager: LogManager, _ log: PartitionLog, seconds: Double) -> [UInt64] {
    var rng = SystemRandomNumberGenerator()
    var latencies: [UInt64] = []
    let end = now() + UInt64(seconds * 1e9)
    var next = now()
    while now() < end {
        while now() < next { sched_yield() }
        latencies.append(append(manager, log, batch(&rng, size: 10)))
        next += 500_000
    }
    return latencies.sorted()
}

let manager = try LogManager(dataDirectory: root, io: io, clock: clock, logger: logger)
manager.appender.start()
let log = try manager.createLog(TopicPartition(topic: "bench", partition: 0), configuration: configuration)
var fillConfiguration = configuration
fill(manager, log, mebibytes: logMiB)
// Roll so every byte is cleanable: a time roll via a tiny segment.ms.
fillConfiguration.segmentMs = 1
log.updateConfiguration(fillConfiguration)
usleep(5000)
manager.runPeriodicTasks()
usleep(200_000)
log.updateConfiguration(configuration)
print("filled \(logMiB) MiB: \(log.segmentBaseOffsets.count) segments, \(log.sizeInBytes >> 20) MiB, \(keyCount) keys")

var cleanerConfiguration = CleanerConfiguration()
cleanerConfiguration.backoffMs = 50
let cleaner = manager.startCleaner(cleanerConfiguration, startThread: false)!
let started = now()
let passes = cleaner.cleanUntilIdle()
let seconds = Double(now() - started) / 1e9
let read = passes.reduce(Int64(0)) { $0 + $1.bytesRead }
let written = passes.reduce(Int64(0)) { $0 + $1.bytesWritten }
let readMiB = Double(read) / 1_048_576
let writtenMiB = Double(written) / 1_048_576
print("compaction: \(passes.count) passes, read \(f(readMiB)) MiB, wrote \(f(writtenMiB)) MiB in \(f(seconds, 2)) s => \(f(readMiB / seconds)) MiB/s of log cleaned")

// Produce latency without, then with, the cleaner working on a second dirty log.
let quiet = produceLatencies(manager, log, seconds: 5)
let other = try manager.createLog(TopicPartition(topic: "bench-dirty", partition: 0), configuration: configuration)
fill(manager, other, mebibytes: logMiB)
fillConfiguration.segmentMs = 1
other.updateConfiguration(fillConfiguration)
usleep(5000)
manager.runPeriodicTasks()
usleep(200_000)
other.updateConfiguration(configuration)
let background = manager.startCleaner(cleanerConfiguration, startThread: true)!
background.wakeUp()
let busy = produceLatencies(manager, log, seconds: 5)
let cleanedDuring = background.totals
print("produce latency (10-record appends at 2000/s), cleaner idle:    p50 \(f(percentile(quiet, 0.5), 0)) us  p99 \(f(percentile(quiet, 0.99), 0)) us  max \(f(percentile(quiet, 1.0), 0)) us (\(quiet.count) appends)")
let cleanedMiB = Double(cleanedDuring.bytesRead) / 1_048_576
print("produce latency (10-record appends at 2000/s), cleaner running: p50 \(f(percentile(busy, 0.5), 0)) us  p99 \(f(percentile(busy, 0.99), 0)) us  max \(f(percentile(busy, 1.0), 0)) us (\(busy.count) appends; cleaner read \(f(cleanedMiB, 0)) MiB meanwhile)")
try manager.shutdown()
_ = system("rm -rf '\(root)'")
