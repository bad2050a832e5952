import DiskIO
import DiskIOTesting
import SeededRandom
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

private func write(_ disk: SimulatedDisk, _ fd: Int32, _ bytes: [UInt8], at offset: Int) throws {
    try bytes.withUnsafeBytes { buffer in try disk.write(fd, buffer, at: Int64(offset)) }
}

@Suite struct SimulatedDiskConformanceTests {
    private func disk() throws -> SimulatedDisk {
        let disk = SimulatedDisk()
        try disk.createDirectory("/data")
        return disk
    }

    @Test func writeReadSizeTruncate() throws { try FileIOConformance.writeReadSizeTruncate(try disk(), root: "/data") }
    @Test func submitBatch() throws {
        let disk = try disk()
        try FileIOConformance.submitBatch(disk, root: "/data")
        #expect(disk.counters.submits == 1)
        #expect(disk.counters.writes == 64)
        #expect(disk.counters.syncs == 3)
    }
    @Test func namesAndDirectories() throws { try FileIOConformance.namesAndDirectories(try disk(), root: "/data") }
    @Test func errorsCarryErrno() throws { try FileIOConformance.errorsCarryErrno(try disk(), root: "/data") }

    @Test func pathsAreNormalized() throws {
        let disk = try disk()
        let fd = try disk.open("/data//a.log", mode: .createReadWrite)
        disk.close(fd)
        #expect(disk.fileExists("/data/./a.log"))
        #expect(disk.fileExists("data/a.log/"))
        #expect(throws: DiskError.self) { try disk.open("/missing/x", mode: .createReadWrite) }
        #expect(disk.openDescriptorCount == 0)
    }
}

@Suite struct SimulatedDiskCrashTests {
    @Test func dropAllRevertsToLastSync() throws {
        let disk = SimulatedDisk()
        try disk.createDirectory("/d")
        let fd = try disk.open("/d/f", mode: .createReadWrite)
        try disk.syncDirectory("/")
        try disk.syncDirectory("/d")
        try write(disk, fd, [1, 2, 3], at: 0)
        try disk.fdatasync(fd)
        try write(disk, fd, [4, 5], at: 3)
        try write(disk, fd, [9], at: 0)
        try disk.truncate(fd, to: 1)
        #expect(disk.currentContents(of: "/d/f") == [9])
        #expect(disk.durableContents(of: "/d/f") == [1, 2, 3])
        #expect(disk.unsyncedChangeCount(of: "/d/f") == 3)

        var rng = SplitMix64(seed: 1)
        disk.crash(using: &rng, options: .dropAll)
        #expect(disk.currentContents(of: "/d/f") == [1, 2, 3])
        #expect(disk.unsyncedChangeCount(of: "/d/f") == 0)
        #expect(disk.openDescriptorCount == 0)
        do {
            try write(disk, fd, [7], at: 0)
            Issue.record("an fd survived the crash")
        } catch let error as DiskError {
            #expect(error.errno == EBADF)
        }
    }

    @Test func keepAllKeepsEverything() throws {
        let disk = SimulatedDisk()
        let fd = try disk.open("/f", mode: .createReadWrite)
        try disk.syncDirectory("/")
        try write(disk, fd, [1, 2, 3], at: 0)
        try write(disk, fd, [4, 5], at: 3)
        var rng = SplitMix64(seed: 1)
        disk.crash(using: &rng, options: .keepAll)
        #expect(disk.currentContents(of: "/f") == [1, 2, 3, 4, 5])
        #expect(disk.durableContents(of: "/f") == [1, 2, 3, 4, 5])
    }

    /// Directory changes survive a crash only once their directory is synced.
    @Test func metadataIsDurableOnlyAfterADirectorySync() throws {
        let disk = SimulatedDisk()
        try disk.createDirectory("/a/b")
        try disk.syncDirectory("/")
        try disk.syncDirectory("/a")
        let fd = try disk.open("/a/b/new", mode: .createReadWrite)
        try write(disk, fd, [1], at: 0)
        try disk.fdatasync(fd)
        try disk.rename("/a/b/new", to: "/a/b/renamed")
        let doomed = try disk.open("/a/doomed", mode: .createReadWrite)
        try write(disk, doomed, [1], at: 0)
        try disk.fdatasync(doomed)
        try disk.syncDirectory("/a")
        try disk.unlink("/a/doomed")
        var back = [UInt8](repeating: 0, count: 1)
        #expect(try back.withUnsafeMutableBytes { try disk.read(doomed, into: $0, at: 0) } == 1, "an unlinked open file stays readable")
        #expect(disk.unsyncedDirectoryChangeCount() == 2)  // /a/b/renamed added, /a/doomed removed

        var rng = SplitMix64(seed: 2)
        disk.crash(using: &rng, options: .dropAll)
        #expect(disk.isDirectory("/a/b"))
        #expect(!disk.fileExists("/a/b/renamed"), "created (even fdatasynced) but /a/b never synced: gone")
        #expect(!disk.fileExists("/a/b/new"))
        #expect(disk.currentContents(of: "/a/doomed") == [1], "unlinked, /a not synced since: back with its bytes")
        #expect(disk.allFiles() == ["/a/doomed"])
    }

    @Test func syncedDirectoryChangesSurvive() throws {
        let disk = SimulatedDisk()
        try disk.createDirectory("/a")
        try disk.syncDirectory("/")
        let fd = try disk.open("/a/tmp", mode: .createReadWrite)
        try write(disk, fd, [1, 2], at: 0)
        try disk.fdatasync(fd)
        try disk.rename("/a/tmp", to: "/a/final")
        try disk.syncDirectory("/a")
        let gone = try disk.open("/a/gone", mode: .createReadWrite)
        disk.close(gone)
        try disk.syncDirectory("/a")
        try disk.unlink("/a/gone")
        try disk.syncDirectory("/a")
        #expect(disk.unsyncedDirectoryChangeCount() == 0)

        var rng = SplitMix64(seed: 3)
        disk.crash(using: &rng, options: .dropAll)
        #expect(disk.allFiles() == ["/a/final"])
        #expect(disk.currentContents(of: "/a/final") == [1, 2])
    }

    /// Entries under a directory that is not itself durable in its parent are lost with it.
    @Test func entriesOfAnUnsyncedDirectoryAreLost() throws {
        let disk = SimulatedDisk()
        try disk.createDirectory("/data/t-0")
        let fd = try disk.open("/data/t-0/0.log", mode: .createReadWrite)
        try write(disk, fd, [1], at: 0)
        try disk.fdatasync(fd)
        try disk.syncDirectory("/data/t-0")
        try disk.syncDirectory("/data")  // but "/" never synced: /data itself is not durable
        var rng = SplitMix64(seed: 4)
        disk.crash(using: &rng, options: .keepAll)
        #expect(!disk.isDirectory("/data"))
        #expect(disk.allFiles().isEmpty)
    }

    /// Append-only log: after any crash, the synced prefix is intact and every later byte is either
    /// the byte written there or zero (a hole left by a dropped or torn earlier write).
    @Test func randomCrashesOfAnAppendOnlyFileArePlausible() throws {
        let seed = TestSeed()
        var rng = SplitMix64(seed: seed.value)
        var sawKept = false, sawDropped = false, sawTorn = false
        for _ in 0..<300 {
            let disk = SimulatedDisk()
            let fd = try disk.open("/log", mode: .createReadWrite)
            try disk.syncDirectory("/")
            var written: [UInt8] = []
            var synced = 0
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let chunk = (0..<Int.random(in: 1...40, using: &rng)).map { _ in UInt8.random(in: 1...255, using: &rng) }
                try write(disk, fd, chunk, at: written.count)
                written += chunk
                if Int.random(in: 0..<4, using: &rng) == 0 {
                    try disk.fdatasync(fd)
                    synced = written.count
                }
            }
            disk.crash(using: &rng)
            let after = try #require(disk.currentContents(of: "/log"))
            #expect(after.count >= synced && after.count <= written.count, "seed \(seed.value)")
            #expect(Array(after[0..<synced]) == Array(written[0..<synced]), "seed \(seed.value)")
            for index in synced..<after.count {
                #expect(after[index] == written[index] || after[index] == 0, "seed \(seed.value) byte \(index)")
            }
            if after.count == written.count && after == written && synced < written.count { sawKept = true }
            if after.count == synced && synced < written.count { sawDropped = true }
            if after.count > synced && after.count < written.count { sawTorn = true }
        }
        #expect(sawKept && sawDropped && sawTorn, "seed \(seed.value): every outcome should occur in 300 crashes")
    }

    @Test func crashesAreDeterministicForASeed() throws {
        func run(seed: UInt64) throws -> [[UInt8]] {
            let disk = SimulatedDisk()
            var results: [[UInt8]] = []
            for file in 0..<5 {
                let fd = try disk.open("/f\(file)", mode: .createReadWrite)
                try disk.syncDirectory("/")
                for chunk in 0..<10 {
                    try write(disk, fd, [UInt8](repeating: UInt8(chunk + 1), count: 50), at: chunk * 50)
                }
            }
            var rng = SplitMix64(seed: seed)
            disk.crash(using: &rng, options: .init(tornWritesLeaveGarbage: true))
            for file in 0..<5 { results.append(disk.currentContents(of: "/f\(file)") ?? []) }
            return results
        }
        #expect(try run(seed: 42) == run(seed: 42))
        #expect(try run(seed: 42) != run(seed: 43))
    }

    @Test func tornWritesCanLeaveGarbage() throws {
        var rng = SplitMix64(seed: 7)
        var sawGarbage = false
        for _ in 0..<50 {
            let disk = SimulatedDisk()
            let fd = try disk.open("/f", mode: .createReadWrite)
            try disk.syncDirectory("/")
            let bytes = [UInt8](repeating: 0xAA, count: 100)
            try write(disk, fd, bytes, at: 0)
            disk.crash(using: &rng, options: .init(keepWeight: 0, dropWeight: 0, tearWeight: 1, tornWritesLeaveGarbage: true))
            let after = try #require(disk.currentContents(of: "/f"))
            #expect(after.count == 100, "garbage fills the whole range")
            if after != bytes { sawGarbage = true }
        }
        #expect(sawGarbage)
    }

    @Test func failedSyncLeavesWritesUnsynced() throws {
        let disk = SimulatedDisk()
        let fd = try disk.open("/f", mode: .createReadWrite)
        try write(disk, fd, [1, 2], at: 0)
        disk.injectFault(.sync, errno: EIO, persistent: false)
        #expect(throws: DiskError.self) { try disk.fdatasync(fd) }
        #expect(disk.durableContents(of: "/f") == [])
        try disk.fdatasync(fd)  // one-shot fault is gone
        #expect(disk.durableContents(of: "/f") == [1, 2])
        #expect(disk.counters.faultsFired == 1)
    }
}

@Suite struct SimulatedDiskFaultTests {
    @Test func faultFiresAfterCountAndOnlyOnce() throws {
        let disk = SimulatedDisk()
        let fd = try disk.open("/f", mode: .createReadWrite)
        disk.injectFault(.write, errno: EIO, after: 2, persistent: false)
        try write(disk, fd, [1], at: 0)
        try write(disk, fd, [2], at: 1)
        do {
            try write(disk, fd, [3], at: 2)
            Issue.record("the fault did not fire")
        } catch let error as DiskError {
            #expect(error.errno == EIO)
            #expect(error.operation == .write)
            #expect(error.path == "/f")
        }
        try write(disk, fd, [4], at: 2)
        #expect(disk.currentContents(of: "/f") == [1, 2, 4], "a failed write changes nothing")
    }

    @Test func persistentFaultKeepsFiringUntilRemoved() throws {
        let disk = SimulatedDisk()
        let fd = try disk.open("/f", mode: .createReadWrite)
        let id = disk.injectFault(.sync, errno: EIO, persistent: true)
        for _ in 0..<3 { #expect(throws: DiskError.self) { try disk.fdatasync(fd) } }
        disk.removeFault(id)
        try disk.fdatasync(fd)
    }

    @Test func pathFilterSelectsFiles() throws {
        let disk = SimulatedDisk()
        let log = try disk.open("/0.log", mode: .createReadWrite)
        let index = try disk.open("/0.index", mode: .createReadWrite)
        disk.injectFault(.write, errno: ENOSPC, path: ".index", persistent: true)
        try write(disk, log, [1], at: 0)
        #expect(throws: DiskError.self) { try write(disk, index, [1], at: 0) }
        disk.close(try disk.open("/x.index", mode: .createReadWrite))  // only writes are faulted
    }

    @Test func faultsApplyInsideSubmit() throws {
        let disk = SimulatedDisk()
        let fd = try disk.open("/f", mode: .createReadWrite)
        disk.injectFault(.write, errno: EIO, after: 1, persistent: false)
        disk.injectFault(.submit, errno: ENOSPC, after: 3, persistent: false)
        let bytes: [UInt8] = [1, 2, 3, 4]
        bytes.withUnsafeBytes { buffer in
            var operations = (0..<4).map { IOOperation(.write(fd: fd, offset: Int64($0 * 4), bytes: buffer)) }
            operations.append(IOOperation(.fdatasync(fd: fd)))
            disk.submit(&operations)
            let errnos = operations.map { result -> Int32 in
                switch result.result {
                case .success?: 0
                case .failure(let error)?: error.errno
                case nil: -1
                }
            }
            #expect(errnos == [0, EIO, 0, ENOSPC, 0])
        }
        #expect(disk.durableContents(of: "/f") == [1, 2, 3, 4, 0, 0, 0, 0, 1, 2, 3, 4])
    }

    @Test func capacityLimitGivesENOSPC() throws {
        let disk = SimulatedDisk(capacityBytes: 100)
        let a = try disk.open("/a", mode: .createReadWrite)
        let b = try disk.open("/b", mode: .createReadWrite)
        try write(disk, a, [UInt8](repeating: 1, count: 60), at: 0)
        try write(disk, b, [UInt8](repeating: 1, count: 40), at: 0)
        try write(disk, b, [UInt8](repeating: 2, count: 40), at: 0)  // overwrite needs no space
        do {
            try write(disk, b, [3], at: 40)
            Issue.record("wrote past capacity")
        } catch let error as DiskError {
            #expect(error.isNoSpace)
        }
        #expect(throws: DiskError.self) { try disk.truncate(a, to: 61) }
        try disk.truncate(a, to: 10)
        try write(disk, b, [UInt8](repeating: 3, count: 50), at: 40)
        #expect(disk.usedBytes == 100)
        try disk.unlink("/b")
        disk.close(b)
        #expect(disk.usedBytes == 10)
    }

    @Test func concurrentUseIsSafe() async throws {
        let disk = SimulatedDisk()
        try disk.createDirectory("/c")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    let fd = try disk.open("/c/\(worker)", mode: .createReadWrite)
                    for index in 0..<200 {
                        try [UInt8](repeating: UInt8(worker), count: 10).withUnsafeBytes { buffer in
                            try disk.write(fd, buffer, at: Int64(index * 10))
                        }
                        if index % 50 == 0 { try disk.fdatasync(fd) }
                    }
                    disk.close(fd)
                }
            }
            try await group.waitForAll()
        }
        for worker in 0..<8 {
            #expect(disk.currentContents(of: "/c/\(worker)") == [UInt8](repeating: UInt8(worker), count: 2000))
        }
    }
}
