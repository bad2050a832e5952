public import NIOCore
import RecordFormat

/// Random record batches built with `RecordBatchBuilder`, for tests and simulations.
public enum RandomBatches {
    /// One random uncompressed batch.
    ///
    /// - Parameters:
    ///   - baseOffset: Header base offset.
    ///   - recordCount: Records in the batch (at least 1 unless you want an empty batch).
    ///   - valueBytesMax: Upper bound of each value's length.
    ///   - timestamp: Timestamp of the first record; later records add small random deltas.
    ///   - rng: The seeded generator.
    public static func batch(
        baseOffset: Int64 = 0, recordCount: Int, valueBytesMax: Int = 64, timestamp: Int64 = 1_700_000_000_000,
        using rng: inout some RandomNumberGenerator
    ) -> ByteBuffer {
        var builder = RecordBatchBuilder(baseOffset: baseOffset)
        for index in 0..<recordCount {
            let key: [UInt8]? = Bool.random(using: &rng) ? nil : bytes(count: Int.random(in: 0...16, using: &rng), using: &rng)
            let value: [UInt8]? = Int.random(in: 0..<10, using: &rng) == 0
                ? nil : bytes(count: Int.random(in: 0...valueBytesMax, using: &rng), using: &rng)
            var headers: [(String, [UInt8]?)] = []
            for headerIndex in 0..<Int.random(in: 0...2, using: &rng) {
                headers.append(("h\(headerIndex)", Bool.random(using: &rng) ? nil : bytes(count: 4, using: &rng)))
            }
            let ts = timestamp + Int64(index) + Int64.random(in: -5...5, using: &rng)
            builder.append(key: key, value: value, headers: headers, timestamp: ts)
        }
        return builder.build()
    }

    /// `count` random batches concatenated, with consecutive base offsets starting at `firstOffset`.
    ///
    /// - Returns: The bytes and each batch's (position, base offset, record count).
    public static func log(
        batchCount: Int, firstOffset: Int64 = 0, recordCountMax: Int = 8, valueBytesMax: Int = 64,
        using rng: inout some RandomNumberGenerator
    ) -> (bytes: ByteBuffer, batches: [(position: Int, baseOffset: Int64, recordCount: Int)]) {
        var all = ByteBuffer()
        var batches: [(position: Int, baseOffset: Int64, recordCount: Int)] = []
        var offset = firstOffset
        for _ in 0..<batchCount {
            let recordCount = Int.random(in: 1...recordCountMax, using: &rng)
            var one = batch(baseOffset: offset, recordCount: recordCount, valueBytesMax: valueBytesMax, using: &rng)
            batches.append((all.writerIndex, offset, recordCount))
            all.writeBuffer(&one)
            offset += Int64(recordCount)
        }
        return (all, batches)
    }

    /// `count` random bytes.
    public static func bytes(count: Int, using rng: inout some RandomNumberGenerator) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }
}
