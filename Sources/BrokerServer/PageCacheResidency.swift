#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Synchronization

/// Whether file ranges are in the page cache, without touching the disk, and bringing them in: a
/// sendfile of non-resident bytes blocks the event loop on disk reads (Kafka's KAFKA-7504), so the
/// fetch path asks first and has cold ranges read into the page cache on a reader thread.
enum PageCacheResidency {
    static let pageSize = max(4096, sysconf(Int32(_SC_PAGESIZE)))

    /// Fetch file regions brought into the page cache on the reader pool because they were not
    /// resident, and their bytes (`petrel_fetch_cold_reads_total`, `petrel_fetch_cold_read_bytes_total`).
    static let offloadedReads = Atomic<Int>(0)
    static let offloadedBytes = Atomic<Int>(0)

    static func countOffloaded(bytes: Int) {
        offloadedReads.add(1, ordering: .relaxed)
        offloadedBytes.add(bytes, ordering: .relaxed)
    }

    /// True when every page of `offset ..< offset + length` of `fd` is resident. A failed check
    /// answers false: reading off the event loop is always safe, only slower.
    static func isResident(fd: CInt, offset: Int, length: Int) -> Bool {
        guard length > 0, offset >= 0 else { return true }
        let start = offset & ~(pageSize - 1)
        let span = offset + length - start
        let pages = (span + pageSize - 1) / pageSize
        // A mapping that is never touched: no page faults, no reads; mincore reports the page
        // cache state of the file's pages behind it.
        guard let base = mmap(nil, span, PROT_READ, MAP_SHARED, fd, off_t(start)), base != UnsafeMutableRawPointer(bitPattern: -1) else {
            return false
        }
        defer { munmap(base, span) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: pages) { vector in
            guard mincore(base, span, vector.baseAddress) == 0 else { return false }
            for flags in vector where flags & 1 == 0 { return false }
            return true
        }
    }

    /// `/dev/null`, opened once: `warm` splices file pages into it, which waits for them to be
    /// read without copying a byte.
    private static let devNull: CInt = open("/dev/null", O_WRONLY | O_CLOEXEC)

    /// The most one `warm` pread moves into its scratch buffer (when splicing is not available).
    static let warmChunkBytes = 256 * 1024

    /// Reads `offset ..< offset + length` of `fd` and discards the bytes, so that the range is in
    /// the page cache afterwards. Blocks the calling thread (a reader thread, never an event loop)
    /// on the disk. The whole range is asked for first (`POSIX_FADV_WILLNEED`), so the disk works
    /// on all of it at once; a sendfile into `/dev/null` then waits for the pages without copying
    /// them (preads into a small scratch buffer where that fails).
    /// Returns the bytes read; throws when the file ends before the range does (the log changed).
    static func warm(fd: CInt, offset: Int, length: Int) throws -> Int {
        guard length > 0 else { return 0 }
        _ = posix_fadvise(fd, off_t(offset), off_t(length), POSIX_FADV_WILLNEED)
        let spliced = try warmBySplicing(fd: fd, offset: offset, length: length)
        return spliced + (try warmByReading(fd: fd, offset: offset + spliced, length: length - spliced))
    }

    /// Sendfile into `/dev/null`: the pages are read, then dropped by reference. Stops early
    /// (returning what it moved) where the kernel cannot splice this file.
    static func warmBySplicing(fd: CInt, offset: Int, length: Int) throws -> Int {
        guard devNull >= 0 else { return 0 }
        var position = off_t(offset)
        var done = 0
        while done < length {
            let n = sendfile(devNull, fd, &position, length - done)
            if n < 0 {
                if errno == EINTR { continue }
                return done
            }
            guard n > 0 else { throw IOError(errnoCode: EIO, reason: "sendfile: the file ends before the fetched range") }
            done += n
        }
        return done
    }

    /// Preads through one scratch buffer of at most `warmChunkBytes`.
    static func warmByReading(fd: CInt, offset: Int, length: Int) throws -> Int {
        guard length > 0 else { return 0 }
        let chunk = min(length, warmChunkBytes)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: pageSize)
        defer { scratch.deallocate() }
        var done = 0
        while done < length {
            let n = pread(fd, scratch, min(chunk, length - done), off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw IOError(errnoCode: errno, reason: "pread")
            }
            guard n > 0 else { throw IOError(errnoCode: EIO, reason: "pread: the file ends before the fetched range") }
            done += n
        }
        return done
    }
}
