/// Stable scratch memory for one append group: index entries and staged batch copies must stay put
/// until `submit` returns, so the arena hands out pieces of chunks it never moves, and reuses the
/// chunks for the next group (no fresh pages on the hot path once warm).
final class ScratchArena {
    private static let chunkByteCount = 4 << 20
    private var chunks: [UnsafeMutableRawBufferPointer] = []
    /// The chunk being filled, and how much of it is used.
    private var chunkIndex = 0
    private var used = 0

    deinit { for chunk in chunks { chunk.deallocate() } }

    func reset() {
        chunkIndex = 0
        used = 0
    }

    /// `aligned: false` packs allocations back to back (staged batch copies), so consecutive ones are
    /// contiguous and their writes can be joined.
    func allocate(_ byteCount: Int, aligned alignResult: Bool = true) -> UnsafeMutableRawBufferPointer {
        if alignResult { used = (used + 15) & ~15 }
        while chunkIndex < chunks.count {
            if used + byteCount <= chunks[chunkIndex].count { break }
            chunkIndex += 1
            used = 0
        }
        if chunkIndex == chunks.count {
            chunks.append(.allocate(byteCount: max(byteCount, Self.chunkByteCount), alignment: 16))
            used = 0
        }
        let slice = UnsafeMutableRawBufferPointer(rebasing: chunks[chunkIndex][used..<(used + byteCount)])
        used += byteCount
        return slice
    }
}
