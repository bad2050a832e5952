import CCRC32C

/// CRC-32C (Castagnoli), the checksum of Kafka record batches (magic 2).
public struct CRC32C: Sendable {
    public private(set) var value: UInt32 = 0

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        value = petrel_crc32c(value, base, bytes.count)
    }

    /// CRC-32C of `bytes` in one call.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        return petrel_crc32c(0, base, bytes.count)
    }

    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        let value = bytes.withContiguousStorageIfAvailable { checksum(UnsafeRawBufferPointer($0)) }
        if let value { return value }
        return Array(bytes).withUnsafeBytes { checksum($0) }
    }

    /// The portable table implementation, for tests and benchmarks.
    public static func portableChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        return petrel_crc32c_portable(0, base, bytes.count)
    }

    /// True when the SSE4.2 instruction is in use.
    public static var isHardwareAccelerated: Bool { petrel_crc32c_hardware_available() != 0 }
}
