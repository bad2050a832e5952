// The cost of Produce's validation per record: the framing check (CRC-32C over the batch) that
// always ran, beside the record walk added for untrusted input, and decompress + walk for
// compressed batches. Prints ns per record and MiB/s, median of 9 rounds, in one process.
//
// Run: PETREL_VALIDATION_BENCH=1 swift run -c release --scratch-path .build-bench ValidationBenchmark
// (PETREL_BENCHMARKS=1 builds it too).
import NIOCore
import RecordCompression
import RecordFormat

#if canImport(Glibc)
import Glibc
#endif

func nanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

func format(_ value: Double, _ digits: Int = 1) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    return String((value * scale).rounded() / scale)
}

/// Builds one batch of `count` records of `valueBytes` random letters with 8-byte keys.
func makeBatch(count: Int, valueBytes: Int, seed: UInt64) -> ByteBuffer {
    var state = seed
    func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    var builder = RecordBatchBuilder()
    for index in 0..<count {
        let value = (0..<valueBytes).map { _ in UInt8(97 + next() % 26) }
        builder.append(key: Array("key\(index % 100_000)".utf8), value: value, timestamp: 1_700_000_000_000 + Int64(index))
    }
    return builder.build()
}

/// Median ns per record of `body` over 9 rounds of `iterations` calls on a batch of `records`.
func measure(records: Int, iterations: Int, _ body: () throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0..<9 {
        let start = nanoseconds()
        for _ in 0..<iterations { try body() }
        samples.append(Double(nanoseconds() - start) / Double(iterations * records))
    }
    return samples.sorted()[4]
}

print("| batch | framing + CRC ns/rec | record walk ns/rec | walk ÷ framing | walk MiB/s |")
print("| --- | --- | --- | --- | --- |")
for (count, valueBytes) in [(1000, 100), (1000, 1024), (16, 1024 * 64)] {
    let batch = makeBatch(count: count, valueBytes: valueBytes, seed: 42)
    let header = try RecordBatch.validateFromClient(batch)
    let iterations = max(20, 20_000_000 / batch.readableBytes)
    let framing = try measure(records: count, iterations: iterations) { _ = try RecordBatch.validateFromClient(batch) }
    let walk = try measure(records: count, iterations: iterations) {
        _ = try RecordBatch.validateRecordsDeep(batch, header: header, offsets: .sequential)
    }
    let mibPerSecond = Double(batch.readableBytes) / (walk * Double(count)) * 1e9 / 1_048_576
    print("| \(count) × \(valueBytes) B | \(format(framing)) | \(format(walk)) | \(format(walk / framing, 2)) | \(format(mibPerSecond, 0)) |")
}

print("")
print("| codec (1000 × 1 KiB random letters) | decompress + walk ns/rec | MiB/s of records |")
print("| --- | --- | --- |")
let plain = makeBatch(count: 1000, valueBytes: 1024, seed: 7)
for codec in [CompressionCodec.gzip, .snappy, .lz4, .zstd] {
    let compressed = try RecordBatch.compressed(plain, codec: codec)
    let header = try RecordBatch.validateFromClient(compressed)
    let cost = try measure(records: 1000, iterations: 20) {
        _ = try RecordBatch.validateRecordsDeep(compressed, header: header, offsets: .sequential)
    }
    print("| \(codec.name) | \(format(cost)) | \(format(Double(plain.readableBytes) / (cost * 1000) * 1e9 / 1_048_576, 0)) |")
}
