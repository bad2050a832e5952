import DiskIO
import SeededRandom
import Testing
import TestSupport

@Suite struct PosixFileIOTests {
    let io = PosixFileIO()

    @Test func writeReadSizeTruncate() throws {
        let directory = TempDirectory(prefix: "posix")
        try FileIOConformance.writeReadSizeTruncate(io, root: directory.path)
    }

    @Test func submitBatch() throws {
        let directory = TempDirectory(prefix: "posix")
        try FileIOConformance.submitBatch(io, root: directory.path)
    }

    @Test func namesAndDirectories() throws {
        let directory = TempDirectory(prefix: "posix")
        try FileIOConformance.namesAndDirectories(io, root: directory.path)
    }

    @Test func errorsCarryErrno() throws {
        let directory = TempDirectory(prefix: "posix")
        try FileIOConformance.errorsCarryErrno(io, root: directory.path)
    }

    @Test func errorsOnAnOpenFileNameIt() throws {
        let directory = TempDirectory(prefix: "posix")
        let path = directory.appending("f")
        let fd = try io.open(path, mode: .createReadWrite)
        io.close(fd)
        do {
            _ = try io.fileSize(fd)
            Issue.record("fstat on a closed fd succeeded")
        } catch {
            #expect(error.operation == .stat)
            #expect(error.errno == 9)  // EBADF
        }
    }

    @Test func largeWritesAndReadsLoop() throws {
        let directory = TempDirectory(prefix: "posix")
        let fd = try io.open(directory.appending("big"), mode: .createReadWrite)
        defer { io.close(fd) }
        var rng = SplitMix64(seed: 9)
        let bytes = RandomBatches.bytes(count: 3 << 20, using: &rng)
        try bytes.withUnsafeBytes { buffer in try io.write(fd, buffer, at: 4096) }
        var back = [UInt8](repeating: 0, count: bytes.count)
        #expect(try back.withUnsafeMutableBytes { buffer in try io.read(fd, into: buffer, at: 4096) } == bytes.count)
        #expect(back == bytes)
    }

    @Test func removeDirectoryOfMissingPathThrows() {
        let directory = TempDirectory(prefix: "posix")
        #expect(throws: DiskError.self) { try io.removeDirectory(directory.appending("nope")) }
        #expect(throws: DiskError.self) { try io.createDirectory("") }
    }
}
