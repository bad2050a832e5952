#if canImport(Glibc)
import Glibc
#endif

/// The process's allocator policy, set before anything allocates much.
///
/// glibc serves a block at or over its mmap threshold (128 KiB to start) with a fresh `mmap`, and
/// gives the top of a heap back to the kernel once more than the trim threshold is free. Petrel's
/// request frames, socket read buffers and TLS frame copies are 64 KiB–1 MiB and short-lived, so
/// with the defaults every one of them is mapped, page-faulted in 4 KiB at a time, zeroed by the
/// kernel and unmapped again: `perf` showed page faults and `clear_page` as a sixth of the
/// broker's cycles in a TLS produce run. Serving blocks up to 4 MiB from the heap and keeping
/// 64 MiB of free heap lets those buffers be reused warm. A `GLIBC_TUNABLES` malloc setting in the
/// environment wins over this.
enum MallocPolicy {
    static let mmapThreshold: Int32 = 4 << 20
    static let trimThreshold: Int32 = 64 << 20

    static func apply() {
        #if canImport(Glibc)
        if let tunables = getenv("GLIBC_TUNABLES"), String(cString: tunables).contains("glibc.malloc.") { return }
        // mallopt is in <malloc.h>, which the Glibc module does not import.
        guard let symbol = dlsym(nil, "mallopt") else { return }
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let mMmapThreshold: Int32 = -3, mTrimThreshold: Int32 = -1  // <malloc.h>
        _ = mallopt(mMmapThreshold, mmapThreshold)
        _ = mallopt(mTrimThreshold, trimThreshold)
        #endif
    }
}
