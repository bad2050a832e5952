import NIOCore

/// The cleaner's key → latest-offset map with a fixed memory budget (Kafka `SkimpyOffsetMap`).
///
/// Keys are not stored: each slot holds a 128-bit hash of the key (two salted SipHash runs of the
/// standard library's `Hasher`, seeded per process) and an offset — 24 bytes, as Kafka's MD5 + offset.
/// Open addressing with linear probing; at most `loadFactor` of the slots are used
/// (`log.cleaner.io.buffer.load.factor`, 0.9), after which `put` of a new key fails and the cleaner
/// stops mapping there (a later round maps the rest). A 128-bit collision would merge two keys; at
/// this width that is as unlikely as Kafka's MD5 collision, which Kafka accepts too.
struct KeyOffsetMap {
    static let slotByteCount = 24
    static let loadFactor = 0.9

    /// Slots allocated (`memoryBytes / 24`).
    let slotCount: Int
    /// Keys that fit before `put` refuses new ones.
    let entriesMax: Int
    private var hashHigh: [UInt64]
    private var hashLow: [UInt64]
    /// -1 marks an empty slot.
    private var offsets: [Int64]
    private(set) var count = 0
    /// The greatest offset put since the last `clear`, -1 if none.
    private(set) var latestOffset: Int64 = -1

    /// - Parameter memoryBytes: The budget (`log.cleaner.dedupe.buffer.size` / cleaner threads);
    ///   at least two slots are allocated.
    init(memoryBytes: Int) {
        slotCount = max(2, memoryBytes / Self.slotByteCount)
        entriesMax = max(1, min(slotCount - 1, Int(Double(slotCount) * Self.loadFactor)))
        hashHigh = [UInt64](repeating: 0, count: slotCount)
        hashLow = [UInt64](repeating: 0, count: slotCount)
        offsets = [Int64](repeating: -1, count: slotCount)
    }

    var isFull: Bool { count >= entriesMax }
    /// Bytes held by the slots (the budget actually used).
    var memoryBytes: Int { slotCount * Self.slotByteCount }

    mutating func clear() {
        guard count > 0 else { return }
        for index in offsets.indices { offsets[index] = -1 }
        count = 0
        latestOffset = -1
    }

    static func hash(_ key: ByteBuffer) -> (UInt64, UInt64) {
        key.withUnsafeReadableBytes { raw in
            var first = Hasher()
            first.combine(0x9E37_79B9_7F4A_7C15 as UInt64)
            first.combine(bytes: raw)
            var second = Hasher()
            second.combine(0xC2B2_AE3D_27D4_EB4F as UInt64)
            second.combine(bytes: raw)
            return (UInt64(bitPattern: Int64(first.finalize())), UInt64(bitPattern: Int64(second.finalize())))
        }
    }

    /// Records `offset` as the latest for `key`. Returns false, changing nothing, when the key is new
    /// and the map is full.
    mutating func put(_ key: ByteBuffer, offset: Int64) -> Bool {
        let (high, low) = Self.hash(key)
        var index = Int(high % UInt64(slotCount))
        while offsets[index] >= 0 {
            if hashHigh[index] == high && hashLow[index] == low {
                offsets[index] = max(offsets[index], offset)
                latestOffset = max(latestOffset, offset)
                return true
            }
            index = index + 1 == slotCount ? 0 : index + 1
        }
        guard count < entriesMax else { return false }
        hashHigh[index] = high
        hashLow[index] = low
        offsets[index] = offset
        count += 1
        latestOffset = max(latestOffset, offset)
        return true
    }

    /// The latest offset recorded for `key`, or nil.
    func get(_ key: ByteBuffer) -> Int64? {
        let (high, low) = Self.hash(key)
        var index = Int(high % UInt64(slotCount))
        while offsets[index] >= 0 {
            if hashHigh[index] == high && hashLow[index] == low { return offsets[index] }
            index = index + 1 == slotCount ? 0 : index + 1
        }
        return nil
    }
}
