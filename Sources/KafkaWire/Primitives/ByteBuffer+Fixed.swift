import NIOCore

// Fixed-width primitives. Every read checks the remaining bytes and throws `WireError.truncated`
// instead of returning nil or trapping.

extension ByteBuffer {
    /// Reads `length` bytes as a zero-copy slice, or throws if fewer are readable.
    @inline(__always)
    public mutating func readWireSlice(length: Int) throws(WireError) -> ByteBuffer {
        guard length >= 0 else { throw .malformed("negative length \(length)") }
        guard length <= readableBytes, let slice = readSlice(length: length) else { throw .truncated }
        return slice
    }

    /// Skips `length` bytes, or throws if fewer are readable.
    @inline(__always)
    public mutating func skipWireBytes(_ length: Int) throws(WireError) {
        guard length >= 0 else { throw .malformed("negative length \(length)") }
        guard length <= readableBytes else { throw .truncated }
        moveReaderIndex(forwardBy: length)
    }

    @inline(__always)
    public mutating func readWireInt8() throws(WireError) -> Int8 {
        guard let v = readInteger(as: Int8.self) else { throw .truncated }
        return v
    }

    @inline(__always)
    public mutating func readWireInt16() throws(WireError) -> Int16 {
        guard let v = readInteger(endianness: .big, as: Int16.self) else { throw .truncated }
        return v
    }

    @inline(__always)
    public mutating func readWireInt32() throws(WireError) -> Int32 {
        guard let v = readInteger(endianness: .big, as: Int32.self) else { throw .truncated }
        return v
    }

    @inline(__always)
    public mutating func readWireInt64() throws(WireError) -> Int64 {
        guard let v = readInteger(endianness: .big, as: Int64.self) else { throw .truncated }
        return v
    }

    @inline(__always)
    public mutating func readWireUInt16() throws(WireError) -> UInt16 {
        guard let v = readInteger(endianness: .big, as: UInt16.self) else { throw .truncated }
        return v
    }

    @inline(__always)
    public mutating func readWireUInt32() throws(WireError) -> UInt32 {
        guard let v = readInteger(endianness: .big, as: UInt32.self) else { throw .truncated }
        return v
    }

    @inline(__always)
    public mutating func readWireFloat64() throws(WireError) -> Double {
        Double(bitPattern: UInt64(bitPattern: try readWireInt64()))
    }

    /// Kafka booleans: one byte, any non-zero value is `true` (as Kafka's `ByteBuffer.get() != 0`).
    @inline(__always)
    public mutating func readWireBool() throws(WireError) -> Bool {
        try readWireInt8() != 0
    }

    @inline(__always)
    public mutating func writeWireInt8(_ v: Int8) { writeInteger(v) }
    @inline(__always)
    public mutating func writeWireInt16(_ v: Int16) { writeInteger(v, endianness: .big) }
    @inline(__always)
    public mutating func writeWireInt32(_ v: Int32) { writeInteger(v, endianness: .big) }
    @inline(__always)
    public mutating func writeWireInt64(_ v: Int64) { writeInteger(v, endianness: .big) }
    @inline(__always)
    public mutating func writeWireUInt16(_ v: UInt16) { writeInteger(v, endianness: .big) }
    @inline(__always)
    public mutating func writeWireUInt32(_ v: UInt32) { writeInteger(v, endianness: .big) }
    @inline(__always)
    public mutating func writeWireFloat64(_ v: Double) { writeInteger(v.bitPattern, endianness: .big) }
    @inline(__always)
    public mutating func writeWireBool(_ v: Bool) { writeInteger(v ? 1 : 0, as: UInt8.self) }

    @inline(__always)
    public mutating func readWireUUID() throws(WireError) -> KafkaUUID {
        guard readableBytes >= 16 else { throw .truncated }
        let hi = readInteger(endianness: .big, as: UInt64.self) ?? 0
        let lo = readInteger(endianness: .big, as: UInt64.self) ?? 0
        return KafkaUUID(mostSignificantBits: hi, leastSignificantBits: lo)
    }

    @inline(__always)
    public mutating func writeWireUUID(_ v: KafkaUUID) {
        writeInteger(v.mostSignificantBits, endianness: .big)
        writeInteger(v.leastSignificantBits, endianness: .big)
    }
}
