@testable import CommitLog
import DiskIO
import DiskIOTesting
import Logging
import NIOCore
import RecordFormat
import SeededRandom
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Seeded random workloads on a `SimulatedDisk`, crashed at random points and recovered, checked
/// against an in-memory reference log. `PETREL_TEST_SEED=<n>` replays one seed (every argument then
/// runs it); a failure names its seed.
@Suite struct CrashSimulationTests {
    @Test(arguments: 0..<50)
    func randomWorkloadSurvivesCrashes(run: Int) throws {
        let seed = TestSeed().value
        var simulation = Simulation(seed: seed)
        do {
            try simulation.run()
        } catch {
            Issue.record("seed \(seed) (PETREL_TEST_SEED=\(seed)): \(error)")
        }
        if simulation.failures.isEmpty == false {
            print("simulation failed; replay with PETREL_TEST_SEED=\(seed)")
            for failure in simulation.failures.prefix(10) { Issue.record("seed \(seed): \(failure)") }
        }
    }
}

/// A clock moved by the simulation.
final class SimulatedClock: LogClock {
    private let now = Mutex<Int64>(1_700_000_000_000)
    func wallMilliseconds() -> Int64 { now.withLock { $0 } }
    func monotonicNanoseconds() -> UInt64 { UInt64(now.withLock { $0 }) * 1_000_000 }
    func advance(by milliseconds: Int64) { now.withLock { $0 += milliseconds } }
}

struct SimulationError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The reference of one partition.
struct ReferencePartition {
    let topicPartition: TopicPartition
    let configuration: LogConfiguration
    /// Batches as they must be stored, by base offset, from the log start offset on (verified state).
    var batches: [(baseOffset: Int64, bytes: [UInt8])] = []
    var logStartOffset: Int64 = 0
    var logEndOffset: Int64 = 0
}

/// One attempted append of the current epoch.
struct Attempt {
    let partition: Int
    let baseOffset: Int64  // predicted: appends succeed in queue order until the kill
    let bytes: [UInt8]  // as they must be stored (base offset patched, leader epoch 0)
    var acknowledged = false
    var durable = false
}

final class EpochState: @unchecked Sendable {
    let lock = Mutex(())
    var attempts: [Attempt] = []
    var outstanding = 0
    var acknowledgements = 0
    var failures: [String] = []
    /// Partitions given an injected disk fault: their appends may fail (and the partition go offline).
    var faulty: Set<Int> = []
    /// Partitions that saw a failed append before the crash.
    var failedPartitions: Set<Int> = []
}

struct Simulation {
    let seed: UInt64
    var rng: SplitMix64
    /// Cuts reads at varying sizes, reproducibly.
    var readRNG: SplitMix64
    var failures: [String] = []
    let disk = SimulatedDisk()
    let clock = SimulatedClock()
    var partitions: [ReferencePartition] = []
    let logger: Logger = {
        var logger = Logger(label: "petrel.simulation")
        logger.logLevel = .critical
        return logger
    }()

    init(seed: UInt64) {
        self.seed = seed
        rng = SplitMix64(seed: seed)
        readRNG = SplitMix64(seed: seed ^ 0x5EED_0F_4EAD)
    }

    mutating func run() throws {
        let partitionCount = Int.random(in: 1...4, using: &rng)
        for index in 0..<partitionCount {
            var configuration = LogConfiguration()
            configuration.segmentBytes = Int.random(in: 400...6000, using: &rng)
            configuration.segmentIndexBytes = [24, 64, 256, 4096].randomElement(using: &rng)!
            configuration.indexIntervalBytes = [0, 100, 512, 4096].randomElement(using: &rng)!
            configuration.flushMessages = Bool.random(using: &rng) ? 1 : [Int64.max, 5].randomElement(using: &rng)!
            configuration.flushMs = Bool.random(using: &rng) ? .max : 2000
            configuration.segmentMs = Bool.random(using: &rng) ? 604_800_000 : 5000
            configuration.writeBehindBytes = [0, 1000].randomElement(using: &rng)!
            partitions.append(ReferencePartition(topicPartition: TopicPartition(topic: "sim\(index)", partition: Int32(index % 2)), configuration: configuration))
        }
        let epochs = Int.random(in: 2...4, using: &rng)
        for epoch in 0..<epochs {
            try runEpoch(epoch)
        }
    }

    /// Starts a manager (creating or recovering), runs random operations, crashes, recovers, verifies.
    mutating func runEpoch(_ epoch: Int) throws {
        let io = KillableIO(disk)
        // The store's own random choices (segment jitter, deleted-directory names) replay with the seed too.
        let manager = try LogManager(dataDirectory: "/data", io: io, clock: clock, logger: logger, randomSeed: seed &+ UInt64(epoch))
        // A partition made read-only by ENOSPC stays so for the epoch: the reference predicts offsets
        // at enqueue time, which a probe bringing writes back would reuse (DiskFullTests covers that).
        manager.diskFullProbeIntervalMs = .max
        let byName = Dictionary(uniqueKeysWithValues: partitions.map { ($0.topicPartition, $0.configuration) })
        var logs = try manager.loadLogs { byName[$0] ?? LogConfiguration() }
        if epoch == 0 {
            logs = try partitions.map { try manager.createLog($0.topicPartition, configuration: $0.configuration) }
        } else {
            try verify(logs, context: "after crash \(epoch)")
        }
        let ordered = try partitions.map { reference in
            guard let log = logs.first(where: { $0.topicPartition == reference.topicPartition }) else {
                throw SimulationError("\(reference.topicPartition) did not load")
            }
            return log
        }
        manager.appender.start()

        let state = EpochState()
        var nextOffsets = ordered.map(\.highWatermark)
        let operationCount = Int.random(in: 20...120, using: &rng)
        let crashInFlight = Bool.random(using: &rng)
        let crashAfterAcks = Int.random(in: 1...max(1, operationCount), using: &rng)
        let crashGenerator = SplitMix64(seed: rng.next())
        let crashOptions = SimulatedDisk.CrashOptions(
            keepWeight: Int.random(in: 0...3, using: &rng), dropWeight: Int.random(in: 0...3, using: &rng),
            tearWeight: Int.random(in: 1...3, using: &rng), tornWritesLeaveGarbage: Bool.random(using: &rng),
            keepTruncateWeight: Int.random(in: 0...2, using: &rng))
        let crashBox = CrashBox(disk: disk, io: io, generator: crashGenerator, options: crashOptions)
        // Some epochs inject EIO/ENOSPC into one partition's files; some end with an orderly shutdown.
        let injectFaults = Int.random(in: 0..<3, using: &rng) == 0
        let endCleanly = Int.random(in: 0..<4, using: &rng) == 0

        for _ in 0..<operationCount {
            let roll = Int.random(in: 0..<100, using: &rng)
            if roll < 80 {
                // Append a random batch to a random partition.
                let partition = Int.random(in: 0..<partitions.count, using: &rng)
                let recordCount = Int.random(in: 1...12, using: &rng)
                let valueBytes = [0, 10, 100, 400].randomElement(using: &rng)!
                let batch = RandomBatches.batch(recordCount: recordCount, valueBytesMax: valueBytes, timestamp: clock.wallMilliseconds(), using: &rng)
                var expected = Array(batch.readableBytesView)
                Self.patch(&expected, baseOffset: nextOffsets[partition])
                let index = state.lock.withLock { _ in
                    state.attempts.append(Attempt(partition: partition, baseOffset: nextOffsets[partition], bytes: expected))
                    state.outstanding += 1
                    return state.attempts.count - 1
                }
                nextOffsets[partition] += Int64(recordCount)
                let durableFlush = partitions[partition].configuration.flushMessages == 1
                let shouldCrashInFlight = crashInFlight
                manager.appender.append(batch, to: ordered[partition]) { result in
                    var crashNow = false
                    state.lock.withLock { _ in
                        state.outstanding -= 1
                        switch result {
                        case .success(let appended):
                            guard !io.isKilled else { return }
                            if appended.baseOffset.value != state.attempts[index].baseOffset {
                                state.failures.append("append \(index) got offset \(appended.baseOffset), expected \(state.attempts[index].baseOffset)")
                            }
                            state.attempts[index].acknowledged = true
                            state.attempts[index].durable = durableFlush
                            state.acknowledgements += 1
                            crashNow = shouldCrashInFlight && state.acknowledgements == crashAfterAcks
                        case .failure(let error):
                            guard !io.isKilled else { return }
                            if state.faulty.contains(partition) {
                                state.failedPartitions.insert(partition)
                            } else {
                                state.failures.append("append \(index) failed before the crash: \(error)")
                            }
                        }
                    }
                    // Power loss right after this acknowledgement, with the appender mid-group.
                    if crashNow { crashBox.crash() }
                }
            } else if roll < 83 && injectFaults {
                // A failing disk under one partition: EIO or ENOSPC on writes, syncs, truncations or opens.
                let partition = Int.random(in: 0..<partitions.count, using: &rng)
                let operation = [DiskError.Operation.submit, .sync, .truncate, .open].randomElement(using: &rng)!
                state.lock.withLock { _ in _ = state.faulty.insert(partition) }
                disk.injectFault(
                    operation, errno: [5, 28].randomElement(using: &rng)!, after: Int.random(in: 0...4, using: &rng),
                    path: "/data/\(partitions[partition].topicPartition.directoryName)/", persistent: Bool.random(using: &rng))
            } else if roll < 88 {
                clock.advance(by: Int64.random(in: 0...3000, using: &rng))
                manager.runPeriodicTasks()
            } else if roll < 95 {
                waitForOutstanding(state)
            } else {
                // DeleteRecords at a quiet moment (nothing in flight, so no crash can interleave).
                waitForOutstanding(state)
                guard !io.isKilled else { continue }
                let partition = Int.random(in: 0..<partitions.count, using: &rng)
                let log = ordered[partition]
                let target = Int64.random(in: log.logStartOffset...log.highWatermark, using: &rng)
                _ = try log.deleteRecords(before: Offset(target))
                partitions[partition].logStartOffset = max(partitions[partition].logStartOffset, target)
            }
        }
        waitForOutstanding(state)
        // Partitions that failed an append are offline; the others never are.
        state.lock.withLock { _ in
            guard !io.isKilled else { return }
            for (index, log) in ordered.enumerated() {
                if state.failedPartitions.contains(index) && !log.isOffline && !log.isReadOnly {
                    state.failures.append("\(log.topicPartition) failed an append but is neither offline nor read-only")
                }
                if !state.faulty.contains(index) && (log.isOffline || log.isReadOnly) {
                    state.failures.append("\(log.topicPartition) went offline without a disk fault")
                }
            }
        }
        let crashedInFlight = io.isKilled
        if !crashedInFlight {
            // Before the crash, the live logs serve only valid batches.
            for log in ordered {
                do { _ = try readAll(log, io: disk) } catch {
                    state.lock.withLock { _ in state.failures.append("before the crash: \(error)") }
                }
            }
            // The recovery point's promise: every segment below it is durable as it is.
            for log in ordered {
                let recoveryPoint = manager.appender.perform { log.writer.recoveryPoint }
                let bases = log.segmentBaseOffsets
                for (i, base) in bases.enumerated() where i + 1 < bases.count && bases[i + 1] <= recoveryPoint {
                    let path = log.directory + "/" + SegmentFileName.log(base)
                    if disk.currentContents(of: path) != disk.durableContents(of: path) {
                        state.lock.withLock { _ in
                            state.failures.append("\(log.topicPartition): segment \(base) is below the recovery point \(recoveryPoint) but not durable (offline \(log.isOffline))")
                        }
                    }
                }
            }
        }
        if endCleanly && !crashedInFlight {
            // Orderly shutdown, then power loss: the shutdown flushes every partition, so nothing
            // acknowledged to a partition that shut down cleanly may be lost. A partition whose
            // injected fault fires in that final flush (its appends all succeeded, so it is not in
            // `failedPartitions`) goes offline instead: its acknowledged but never-synced batches
            // (flush.messages > 1) may be lost, as in Kafka, where a failed fsync takes the log dir
            // offline. Its promise is only its recovery point, which never passes unsynced bytes.
            try? manager.shutdown()
            disk.clearFaults()
            let shutdownState = ordered.map { (offline: $0.isOffline, recoveryPoint: $0.writer.recoveryPoint) }
            state.lock.withLock { _ in
                for index in state.attempts.indices where state.attempts[index].acknowledged
                    && !state.failedPartitions.contains(state.attempts[index].partition)
                {
                    let partition = shutdownState[state.attempts[index].partition]
                    let end = (try? Self.header(state.attempts[index].bytes).nextOffset) ?? .max
                    if !partition.offline || end <= partition.recoveryPoint {
                        state.attempts[index].durable = true
                    }
                }
            }
            var generator = SplitMix64(seed: rng.next())
            io.kill()
            disk.crash(using: &generator, options: crashOptions)
        }
        disk.clearFaults()
        if getenv("PETREL_SIM_STATS") != nil {
            let (failed, acks) = state.lock.withLock { _ in (state.failedPartitions.count, state.acknowledgements) }
            print("sim \(seed) epoch \(epoch): acks \(acks) faults \(injectFaults) failedPartitions \(failed) clean \(endCleanly && !crashedInFlight) crashedInFlight \(crashedInFlight)")
        }
        if !io.isKilled { crashBox.crash() }  // crash when idle (or after everything, if never triggered)
        manager.appender.shutdown()
        failures += state.failures

        // Fold the epoch into the reference: what survives must be a prefix of the attempts.
        let recoveredManager = try LogManager(
            dataDirectory: "/data", io: KillableIO(disk), clock: clock, logger: logger, randomSeed: seed ^ UInt64(epoch))
        let recovered = try recoveredManager.loadLogs { byName[$0] ?? LogConfiguration() }
        for (index, reference) in partitions.enumerated() {
            guard let log = recovered.first(where: { $0.topicPartition == reference.topicPartition }) else {
                failures.append("\(reference.topicPartition) missing after crash")
                continue
            }
            let stored = try readAll(log, io: disk)
            let attempts = state.attempts.filter { $0.partition == index }
            try check(stored: stored, log: log, reference: reference, attempts: attempts)
            partitions[index].batches = stored
            partitions[index].logStartOffset = log.logStartOffset
            partitions[index].logEndOffset = log.highWatermark
        }
        recoveredManager.appender.shutdown()
        if !failures.isEmpty { throw SimulationError("epoch \(epoch): \(failures.count) problems") }
    }

    /// Checks one recovered partition against the reference and this epoch's attempts.
    mutating func check(stored: [(baseOffset: Int64, bytes: [UInt8])], log: PartitionLog, reference: ReferencePartition, attempts: [Attempt]) throws {
        let tp = reference.topicPartition
        if log.logStartOffset != reference.logStartOffset {
            failures.append("\(tp): log start \(log.logStartOffset), deleted records up to \(reference.logStartOffset)")
        }
        // Offsets contiguous from the log start; nothing served past the high watermark.
        var expectedNext: Int64? = nil
        for batch in stored {
            if let next = expectedNext, batch.baseOffset != next {
                failures.append("\(tp): batch at \(batch.baseOffset) after offset \(next - 1): not contiguous")
            }
            expectedNext = try Self.header(batch.bytes).nextOffset
        }
        if let first = stored.first, first.baseOffset > log.logStartOffset {
            failures.append("\(tp): first batch \(first.baseOffset) is after the log start \(log.logStartOffset)")
        }
        if let expectedNext, expectedNext != log.highWatermark {
            failures.append("\(tp): batches end at \(expectedNext), high watermark \(log.highWatermark)")
        } else if stored.isEmpty, log.highWatermark != log.logStartOffset {
            failures.append("\(tp): no batches below the high watermark \(log.highWatermark)")
        }
        let beyond = try log.read(from: Offset(log.highWatermark), maxBytes: 1 << 20)
        if !beyond.slices.isEmpty { failures.append("\(tp): data served at the high watermark") }
        if (try? log.read(from: Offset(log.highWatermark + 1), maxBytes: 100)) != nil {
            failures.append("\(tp): read past the high watermark did not fail")
        }

        // Batches from earlier epochs (still at or after the log start) are unchanged.
        for old in reference.batches where try Self.header(old.bytes).lastOffset >= log.logStartOffset {
            guard let now = stored.first(where: { $0.baseOffset == old.baseOffset }) else {
                failures.append("\(tp): batch \(old.baseOffset) from an earlier epoch is gone")
                continue
            }
            if now.bytes != old.bytes { failures.append("\(tp): batch \(old.baseOffset) from an earlier epoch changed") }
        }
        // This epoch's batches: consecutive attempts, byte for byte (a prefix of what was appended).
        let fresh = stored.filter { $0.baseOffset >= reference.logEndOffset }
        if let first = fresh.first {
            if let start = attempts.firstIndex(where: { $0.baseOffset == first.baseOffset }) {
                for (k, batch) in fresh.enumerated() {
                    let i = start + k
                    guard i < attempts.count else {
                        failures.append("\(tp): batch at \(batch.baseOffset) was never appended")
                        break
                    }
                    if batch.baseOffset != attempts[i].baseOffset || batch.bytes != attempts[i].bytes {
                        let firstDifference = zip(batch.bytes, attempts[i].bytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                        failures.append("\(tp): batch at \(batch.baseOffset) differs from append \(i) at \(attempts[i].baseOffset) (\(batch.bytes.count) vs \(attempts[i].bytes.count) bytes, first difference at \(firstDifference ?? -1))")
                        break
                    }
                }
            } else {
                failures.append("\(tp): batch at \(first.baseOffset) matches no append")
            }
        }
        // Every durably acknowledged batch survived.
        if let lastDurable = attempts.last(where: { $0.durable }) {
            let end = try Self.header(lastDurable.bytes).nextOffset
            if log.highWatermark < end {
                failures.append("\(tp): durably acknowledged batch at \(lastDurable.baseOffset) lost (high watermark \(log.highWatermark))")
            }
        }
    }

    /// Every batch of the log, read through `PartitionLog.read` (CRC-checked here).
    mutating func readAll(_ log: PartitionLog, io: any FileIO) throws -> [(baseOffset: Int64, bytes: [UInt8])] {
        var result: [(Int64, [UInt8])] = []
        var offset = log.logStartOffset
        while offset < log.highWatermark {
            let read = try log.read(from: Offset(offset), maxBytes: Int.random(in: 1...5000, using: &readRNG))
            guard !read.slices.isEmpty else {
                let files = (try? disk.listDirectory(log.directory))?.map { "\($0):\(disk.currentContents(of: log.directory + "/" + $0)?.count ?? -1)" } ?? []
                throw SimulationError("\(log.topicPartition): empty read at \(offset) below HW \(log.highWatermark); segments \(log.segmentBaseOffsets), files \(files)")
            }
            var bytes: [UInt8] = []
            for slice in read.slices {
                var chunk = [UInt8](repeating: 0, count: slice.length)
                let count = try chunk.withUnsafeMutableBytes { try io.read(slice.file.fd, into: $0, at: slice.position.value) }
                guard count == slice.length else { throw SimulationError("short read") }
                bytes += chunk
            }
            var buffer = ByteBuffer(bytes: bytes)
            while buffer.readableBytes > 0 {
                let header: RecordBatchHeader
                do { header = try RecordBatch.validate(buffer, requireExactLength: false) } catch {
                    let files = (try? disk.listDirectory(log.directory))?.map { "\($0):\(disk.currentContents(of: log.directory + "/" + $0)?.count ?? -1)" } ?? []
                    let checkpoint = disk.currentContents(of: "/data/recovery-point-offset-checkpoint").map { String(decoding: $0, as: UTF8.self) } ?? "none"
                    throw SimulationError("\(log.topicPartition): served a batch that fails validation at offset \(offset) (slices \(read.slices.map { "\($0.file.path)@\($0.position)+\($0.length)" })): \(error); segments \(log.segmentBaseOffsets), files \(files), checkpoint \(checkpoint.split(separator: "\n"))")
                }
                result.append((header.baseOffset, Array(buffer.readableBytesView.prefix(header.totalByteCount))))
                buffer.moveReaderIndex(forwardBy: header.totalByteCount)
                offset = header.nextOffset
            }
        }
        return result
    }

    func verify(_ logs: [PartitionLog], context: String) throws {
        for reference in partitions where !logs.contains(where: { $0.topicPartition == reference.topicPartition }) {
            throw SimulationError("\(context): \(reference.topicPartition) missing")
        }
    }

    func waitForOutstanding(_ state: EpochState) {
        var spins = 0
        while state.lock.withLock({ _ in state.outstanding }) > 0 {
            usleep(50)
            spins += 1
            precondition(spins < 2_000_000, "appends never completed")
        }
    }

    static func patch(_ bytes: inout [UInt8], baseOffset: Int64) {
        withUnsafeBytes(of: baseOffset.bigEndian) { for i in 0..<8 { bytes[i] = $0[i] } }
        for i in 12..<16 { bytes[i] = 0 }
    }

    static func header(_ bytes: [UInt8]) throws -> RecordBatchHeader {
        guard let header = bytes.withUnsafeBytes({ RecordBatchHeader(bytes: $0) }) else { throw SimulationError("short batch") }
        return header
    }
}

/// Crashes the disk once, from whichever thread gets there first.
final class CrashBox: @unchecked Sendable {
    let disk: SimulatedDisk
    let io: KillableIO
    let options: SimulatedDisk.CrashOptions
    private let generator: Mutex<SplitMix64>

    init(disk: SimulatedDisk, io: KillableIO, generator: SplitMix64, options: SimulatedDisk.CrashOptions) {
        self.disk = disk
        self.io = io
        self.options = options
        self.generator = Mutex(generator)
    }

    func crash() {
        generator.withLock { generator in
            guard !io.isKilled else { return }
            io.kill()
            disk.crash(using: &generator, options: options)
        }
    }
}
