import NIOCore

/// Zig-zag varint / varlong coding as used inside record batches (protobuf style).
enum Varint {
    /// Bytes `value` takes as a zig-zag varint.
    static func size(_ value: Int32) -> Int {
        size(unsigned: UInt64(UInt32(bitPattern: (value << 1) ^ (value >> 31))))
    }

    /// Bytes `value` takes as a zig-zag varlong.
    static func size(_ value: Int64) -> Int {
        size(unsigned: UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    static func size(unsigned value: UInt64) -> Int {
        var value = value
        var count = 1
        while value >= 0x80 {
            value >>= 7
            count += 1
        }
        return count
    }

    static func write(_ value: Int32, to buffer: inout ByteBuffer) {
        write(unsigned: UInt64(UInt32(bitPattern: (value << 1) ^ (value >> 31))), to: &buffer)
    }

    static func write(_ value: Int64, to buffer: inout ByteBuffer) {
        write(unsigned: UInt64(bitPattern: (value << 1) ^ (value >> 63)), to: &buffer)
    }

    static func write(unsigned value: UInt64, to buffer: inout ByteBuffer) {
        var value = value
        while value >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        buffer.writeInteger(UInt8(value))
    }
}

extension ByteBuffer {
    /// Reads a zig-zag varint (at most 5 bytes, as Kafka's `ByteUtils.readVarint`).
    mutating func readRecordVarint() throws(RecordBatchError) -> Int32 {
        let raw = try readUnsignedVarint(maxBytes: 5)
        guard raw <= UInt64(UInt32.max) else { throw RecordBatchError(.corrupt, "varint overflows 32 bits") }
        let value = UInt32(raw)
        return Int32(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
    }

    /// Reads a zig-zag varlong (at most 10 bytes).
    mutating func readRecordVarlong() throws(RecordBatchError) -> Int64 {
        let value = try readUnsignedVarint(maxBytes: 10)
        return Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
    }

    private mutating func readUnsignedVarint(maxBytes: Int) throws(RecordBatchError) -> UInt64 {
        var result: UInt64 = 0
        for index in 0..<maxBytes {
            guard let byte = readInteger(as: UInt8.self) else {
                throw RecordBatchError(.corrupt, "record data ends inside a varint")
            }
            let shift = UInt64(7 * index)
            let bits = UInt64(byte & 0x7F)
            // The 10th byte of a varlong may only carry the top bit of 64.
            guard index < 9 || bits <= 1 else { throw RecordBatchError(.corrupt, "varlong overflows 64 bits") }
            result |= bits << shift
            if byte & 0x80 == 0 { return result }
        }
        throw RecordBatchError(.corrupt, "varint longer than \(maxBytes) bytes")
    }
}
