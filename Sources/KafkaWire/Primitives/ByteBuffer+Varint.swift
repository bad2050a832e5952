import NIOCore

// Variable-length integers.
// * Unsigned varint/varlong: 7 data bits per byte, least-significant group first (protocol lengths,
//   tagged fields).
// * Signed varint/varlong: zig-zag encoded (record batches).

extension ByteBuffer {
    /// Reads an unsigned varint of at most 5 bytes (32 bits).
    public mutating func readUnsignedVarint() throws(WireError) -> UInt32 {
        var result: UInt32 = 0
        var shift: UInt32 = 0
        while true {
            guard let byte = readInteger(as: UInt8.self) else { throw .truncated }
            if shift == 28 {
                guard byte & 0xF0 == 0 else { throw .malformed("varint is too long") }
            }
            result |= UInt32(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Reads an unsigned varlong of at most 10 bytes (64 bits).
    public mutating func readUnsignedVarlong() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard let byte = readInteger(as: UInt8.self) else { throw .truncated }
            if shift == 63 {
                guard byte & 0xFE == 0 else { throw .malformed("varlong is too long") }
            }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Reads a zig-zag encoded signed varint (32 bits).
    public mutating func readVarint() throws(WireError) -> Int32 {
        let raw = try readUnsignedVarint()
        return Int32(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// Reads a zig-zag encoded signed varlong (64 bits).
    public mutating func readVarlong() throws(WireError) -> Int64 {
        let raw = try readUnsignedVarlong()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    @discardableResult
    public mutating func writeUnsignedVarint(_ value: UInt32) -> Int {
        writeUnsignedVarlong(UInt64(value))
    }

    @discardableResult
    public mutating func writeUnsignedVarlong(_ value: UInt64) -> Int {
        var v = value
        var written = 0
        while v >= 0x80 {
            writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
            written += 1
        }
        writeInteger(UInt8(truncatingIfNeeded: v))
        return written + 1
    }

    @discardableResult
    public mutating func writeVarint(_ value: Int32) -> Int {
        writeUnsignedVarint(ByteBuffer.zigZag(value))
    }

    @discardableResult
    public mutating func writeVarlong(_ value: Int64) -> Int {
        writeUnsignedVarlong(ByteBuffer.zigZag(value))
    }

    @inline(__always)
    public static func zigZag(_ value: Int32) -> UInt32 {
        UInt32(bitPattern: (value << 1) ^ (value >> 31))
    }

    @inline(__always)
    public static func zigZag(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    /// Encoded size of an unsigned varint/varlong.
    @inline(__always)
    public static func unsignedVarintSize(_ value: UInt64) -> Int {
        // 1 byte per started 7 bits; 0 takes one byte.
        let bits = 64 - value.leadingZeroBitCount
        return bits == 0 ? 1 : (bits + 6) / 7
    }

    @inline(__always)
    public static func varintSize(_ value: Int32) -> Int {
        unsignedVarintSize(UInt64(zigZag(value)))
    }

    @inline(__always)
    public static func varlongSize(_ value: Int64) -> Int {
        unsignedVarintSize(zigZag(value))
    }
}
