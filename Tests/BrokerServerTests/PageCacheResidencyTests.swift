import Foundation
import Testing

@testable import BrokerServer

#if canImport(Glibc)
import Glibc
#endif

/// The cold-read check (KAFKA-7504) against the real page cache: pages evicted with
/// POSIX_FADV_DONTNEED are reported cold, pages just read are resident.
@Suite struct PageCacheResidencyTests {
    /// Runs `body` with a file of `size` bytes, written, synced and evicted from the page cache
    /// (POSIX_FADV_DONTNEED); the file is removed afterwards.
    private func withEvictedFile(size: Int, _ body: (CInt) throws -> Void) throws {
        let path = NSTemporaryDirectory() + "petrel-residency-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0)
        defer {
            close(fd)
            unlink(path)
        }
        let bytes = [UInt8](repeating: 7, count: size)
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, size) } == size)
        #expect(fsync(fd) == 0)
        #expect(posix_fadvise(fd, 0, off_t(size), POSIX_FADV_DONTNEED) == 0)
        try body(fd)
    }

    @Test func evictedRangesAreColdAndReadOnesResident() throws {
        try withEvictedFile(size: 1 << 20) { fd in
            #expect(!PageCacheResidency.isResident(fd: fd, offset: 1000, length: 200_000))
            // Read the middle: that range (unaligned ends included) becomes resident.
            var buffer = [UInt8](repeating: 0, count: 300_000)
            #expect(buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 300_000, 100_000) } == 300_000)
            #expect(PageCacheResidency.isResident(fd: fd, offset: 100_001, length: 299_000))
            #expect(PageCacheResidency.isResident(fd: fd, offset: 0, length: 0))
            #expect(!PageCacheResidency.isResident(fd: -1, offset: 0, length: 10))  // a failed check says cold
        }
    }

    /// Warming (the reader pool's job) leaves the range resident, by splicing into `/dev/null` and
    /// by the pread fallback alike, and a range past the end of the file is an error.
    @Test func warmingLeavesTheRangeResident() throws {
        let size = 4 << 20
        try withEvictedFile(size: size) { fd throws in
            #expect(!PageCacheResidency.isResident(fd: fd, offset: 100_000, length: 1_000_000))
            #expect(try PageCacheResidency.warm(fd: fd, offset: 100_000, length: 1_000_000) == 1_000_000)
            #expect(PageCacheResidency.isResident(fd: fd, offset: 100_000, length: 1_000_000))

            #expect(posix_fadvise(fd, 0, off_t(size), POSIX_FADV_DONTNEED) == 0)
            #expect(try PageCacheResidency.warmBySplicing(fd: fd, offset: 1 << 20, length: 700_000) == 700_000)
            #expect(PageCacheResidency.isResident(fd: fd, offset: 1 << 20, length: 700_000))
            // The kernel's readahead may have brought in more than was asked: evict again.
            #expect(posix_fadvise(fd, 0, off_t(size), POSIX_FADV_DONTNEED) == 0)
            #expect(!PageCacheResidency.isResident(fd: fd, offset: 3 << 20, length: 600_000))
            #expect(try PageCacheResidency.warmByReading(fd: fd, offset: 3 << 20, length: 600_000) == 600_000)
            #expect(PageCacheResidency.isResident(fd: fd, offset: 3 << 20, length: 600_000))

            #expect(throws: (any Error).self) { try PageCacheResidency.warm(fd: fd, offset: size - 100, length: 1000) }
            #expect(throws: (any Error).self) { try PageCacheResidency.warmByReading(fd: fd, offset: size - 100, length: 1000) }
        }
    }
}
