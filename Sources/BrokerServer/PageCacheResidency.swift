#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Whether file ranges are in the page cache, without touching the disk: a sendfile of
/// non-resident bytes blocks the event loop on disk reads (Kafka's KAFKA-7504), so the fetch path
/// asks first and reads cold ranges on a reader thread.
enum PageCacheResidency {
    static let pageSize = max(4096, sysconf(Int32(_SC_PAGESIZE)))

    /// Fetch file regions read on the reader pool because they were not resident, and their bytes
    /// (`petrel_fetch_cold_reads_total`, `petrel_fetch_cold_read_bytes_total`).
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
}
