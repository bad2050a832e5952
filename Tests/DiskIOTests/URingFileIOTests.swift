import DiskIO
import SeededRandom
import Testing
import TestSupport
@testable import URingIO

#if canImport(Glibc)
import Glibc
#endif

private let uringAvailable: Bool = (try? URingFileIO(entries: 8)) != nil

@Suite(.enabled(if: uringAvailable, "io_uring is unavailable here (old kernel, seccomp or io_uring_disabled)"))
struct URingFileIOTests {
    @Test func writeReadSizeTruncate() throws {
        let directory = TempDirectory(prefix: "uring")
        try FileIOConformance.writeReadSizeTruncate(try URingFileIO(), root: directory.path)
    }

    @Test func submitBatchOf64WritesToThreeFilesUsesFewSyscalls() throws {
        let directory = TempDirectory(prefix: "uring")
        let io = try URingFileIO(entries: 256)
        try FileIOConformance.submitBatch(io, root: directory.path)
        let statistics = io.statistics
        #expect(statistics.batches == 1)
        // Ideally one enter for the 64 writes and one for the 4 syncs; allow a few for short submits.
        #expect(statistics.enterCalls >= 2 && statistics.enterCalls <= 4, "\(statistics)")
        #expect(statistics.sqesSubmitted == 68)
        #expect(!io.isUsingFallback)
    }

    @Test func namesAndDirectories() throws {
        let directory = TempDirectory(prefix: "uring")
        try FileIOConformance.namesAndDirectories(try URingFileIO(), root: directory.path)
    }

    @Test func errorsCarryErrno() throws {
        let directory = TempDirectory(prefix: "uring")
        try FileIOConformance.errorsCarryErrno(try URingFileIO(), root: directory.path)
    }

    @Test func batchesLargerThanTheRingAreChunked() throws {
        let directory = TempDirectory(prefix: "uring")
        let io = try URingFileIO(entries: 8)
        #expect(io.submissionQueueEntries == 8)
        let fd = try io.open(directory.appending("chunked"), mode: .createReadWrite)
        defer { io.close(fd) }
        var rng = SplitMix64(seed: 11)
        let bytes = RandomBatches.bytes(count: 100 * 512, using: &rng)
        bytes.withUnsafeBytes { all in
            var operations = (0..<100).map { index in
                IOOperation(.write(fd: fd, offset: Int64(index * 512), bytes: UnsafeRawBufferPointer(rebasing: all[(index * 512)..<((index + 1) * 512)])))
            }
            operations.append(IOOperation(.fdatasync(fd: fd)))
            io.submit(&operations)
            for operation in operations {
                guard case .success? = operation.result else {
                    Issue.record("unexpected result \(String(describing: operation.result))")
                    return
                }
            }
        }
        #expect(io.statistics.enterCalls >= 100 / 8)
        #expect(try io.readWholeFile(directory.appending("chunked")) == bytes)
    }

    @Test func shortWritesAreResubmitted() throws {
        let directory = TempDirectory(prefix: "uring")
        // At most 1000 bytes per SQE: every longer write completes short and must be continued.
        let io = try URingFileIO(entries: 16, writeBytesMax: 1000)
        let paths = (0..<2).map { directory.appending("short-\($0)") }
        let fds = try paths.map { try io.open($0, mode: .createReadWrite) }
        defer { fds.forEach(io.close) }
        var rng = SplitMix64(seed: 12)
        let payloads = (0..<6).map { RandomBatches.bytes(count: 2500 + $0 * 777, using: &rng) }
        var expected: [[UInt8]] = [[], []]
        var offsets: [Int64] = []
        for (index, payload) in payloads.enumerated() {
            offsets.append(Int64(expected[index % 2].count))
            expected[index % 2] += payload
        }
        let memory = payloads.map { payload -> UnsafeMutableRawBufferPointer in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: payload.count, alignment: 1)
            buffer.copyBytes(from: payload)
            return buffer
        }
        defer { memory.forEach { $0.deallocate() } }
        var operations = memory.indices.map { index in
            IOOperation(.write(fd: fds[index % 2], offset: offsets[index], bytes: UnsafeRawBufferPointer(memory[index])))
        }
        operations += fds.map { IOOperation(.fdatasync(fd: $0)) }
        io.submit(&operations)
        for (index, operation) in operations.enumerated() {
            let expectedCount = index < payloads.count ? payloads[index].count : 0
            guard case .success(let n)? = operation.result else {
                Issue.record("operation \(index): \(String(describing: operation.result))")
                continue
            }
            #expect(n == expectedCount)
        }
        #expect(io.statistics.shortWrites >= payloads.count * 2)
        for file in 0..<2 {
            #expect(try io.readWholeFile(paths[file]) == expected[file])
        }
    }

    @Test func perOperationErrorsDoNotSpoilTheBatch() throws {
        let directory = TempDirectory(prefix: "uring")
        let io = try URingFileIO(entries: 32)
        let good = try io.open(directory.appending("good"), mode: .createReadWrite)
        io.close(try io.open(directory.appending("ro"), mode: .createReadWrite))
        let readOnly = try io.open(directory.appending("ro"), mode: .readOnly)
        defer {
            io.close(good)
            io.close(readOnly)
        }
        let bytes: [UInt8] = Array("hello, ring".utf8)
        bytes.withUnsafeBytes { buffer in
            var operations = [
                IOOperation(.write(fd: good, offset: 0, bytes: buffer)),
                IOOperation(.write(fd: readOnly, offset: 0, bytes: buffer)),
                IOOperation(.write(fd: -1, offset: 0, bytes: buffer)),
                IOOperation(.write(fd: good, offset: Int64(buffer.count), bytes: UnsafeRawBufferPointer(rebasing: buffer[0..<0]))),
                IOOperation(.fdatasync(fd: good)),
                IOOperation(.fdatasync(fd: -1)),
                IOOperation(.syncFileRange(fd: good, offset: 0, length: 1 << 40)),
            ]
            io.submit(&operations)
            func errno(_ index: Int) -> Int32? {
                if case .failure(let error)? = operations[index].result { return error.errno }
                return nil
            }
            #expect(operations[0].result.flatMap { try? $0.get() } == bytes.count)
            #expect(errno(1) == EBADF)
            if case .failure(let error)? = operations[1].result {
                #expect(error.operation == .write)
                #expect(error.path == directory.appending("ro"))
            }
            #expect(errno(2) == EBADF)
            #expect(operations[3].result.flatMap { try? $0.get() } == 0)
            #expect(operations[4].result.flatMap { try? $0.get() } == 0)
            #expect(errno(5) == EBADF)
            #expect(operations[6].result.flatMap { try? $0.get() } == 0)
        }
        #expect(try io.readWholeFile(directory.appending("good")) == bytes)
        #expect(try io.readWholeFile(directory.appending("ro")) == [])
    }

    @Test func emptyBatchIsANoOp() throws {
        let io = try URingFileIO(entries: 8)
        var operations: [IOOperation] = []
        io.submit(&operations)
        #expect(io.statistics.enterCalls == 0)
    }

    @Test func concurrentBatchesAreSerialized() async throws {
        let directory = TempDirectory(prefix: "uring")
        let io = try URingFileIO(entries: 16)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    let fd = try io.open(directory.appending("w\(worker)"), mode: .createReadWrite)
                    defer { io.close(fd) }
                    let chunk = [UInt8](repeating: UInt8(worker), count: 4096)
                    for round in 0..<10 {
                        chunk.withUnsafeBytes { buffer in
                            var operations = (0..<8).map {
                                IOOperation(.write(fd: fd, offset: Int64((round * 8 + $0) * 4096), bytes: buffer))
                            }
                            operations.append(IOOperation(.fdatasync(fd: fd)))
                            io.submit(&operations)
                            #expect(operations.allSatisfy { (try? $0.result?.get()) != nil })
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        for worker in 0..<4 {
            #expect(try io.readWholeFile(directory.appending("w\(worker)")) == [UInt8](repeating: UInt8(worker), count: 80 * 4096))
        }
        #expect(io.statistics.batches == 40)
    }

    @Test func initFailsCleanlyForAnImpossibleRing() {
        // Zero entries is EINVAL: the same clean throw callers see under seccomp (EPERM) or ENOSYS.
        do {
            _ = try URingFileIO(entries: 0)
            Issue.record("a ring with 0 entries was created")
        } catch {
            #expect(error.operation == .submit)
            #expect(error.errno == EINVAL)
        }
    }
}
