import NIOCore

// Strings, bytes, array counts and tagged-field sections, in classic (int16/int32 length,
// -1 = null) and compact (unsigned varint length+1, 0 = null) form.
//
// Hostile-input rules: a length or count larger than the remaining readable bytes throws before
// anything is allocated; negative lengths other than the null marker throw. As in Kafka 4.4, an
// array of more than `WireLimits.maxArrayElements` elements or a tagged-field section of more than
// `WireLimits.maxTaggedFields` fields throws before anything is allocated or iterated (the broker
// closes the connection, as Kafka does for a request it cannot parse).

/// Caps on counts read from the wire, whatever the frame size.
public enum WireLimits {
    /// Largest array element count accepted in a request (Kafka 4.4: 1,000,000).
    public static let maxArrayElements = 1_000_000
    /// Largest number of tagged fields accepted in one tagged-field section (Kafka 4.4: 10,000).
    public static let maxTaggedFields = 10_000
}

extension ByteBuffer {
    // MARK: Lengths

    /// Reads a string length. Returns nil for the null marker.
    @inline(__always)
    mutating func readStringLength(compact: Bool) throws(WireError) -> Int? {
        let length: Int
        if compact {
            let raw = try readUnsignedVarint()
            if raw == 0 { return nil }
            length = Int(raw) - 1
        } else {
            let raw = try readWireInt16()
            if raw == -1 { return nil }
            guard raw >= 0 else { throw .malformed("negative string length \(raw)") }
            length = Int(raw)
        }
        guard length <= readableBytes else { throw .truncated }
        return length
    }

    /// Reads a bytes/records length. Returns nil for the null marker.
    @inline(__always)
    mutating func readBytesLength(compact: Bool) throws(WireError) -> Int? {
        let length: Int
        if compact {
            let raw = try readUnsignedVarint()
            if raw == 0 { return nil }
            length = Int(raw) - 1
        } else {
            let raw = try readWireInt32()
            if raw == -1 { return nil }
            guard raw >= 0 else { throw .malformed("negative bytes length \(raw)") }
            length = Int(raw)
        }
        guard length <= readableBytes else { throw .truncated }
        return length
    }

    /// Reads an array count; nil for null. The count is bounded by the remaining readable bytes
    /// (every element occupies at least one byte), so callers may `reserveCapacity(count)`.
    public mutating func readWireArrayCount(compact: Bool, nullable: Bool) throws(WireError) -> Int? {
        let count: Int
        if compact {
            let raw = try readUnsignedVarint()
            if raw == 0 {
                guard nullable else { throw .malformed("null array in a non-nullable field") }
                return nil
            }
            count = Int(raw) - 1
        } else {
            let raw = try readWireInt32()
            if raw == -1 {
                guard nullable else { throw .malformed("null array in a non-nullable field") }
                return nil
            }
            guard raw >= 0 else { throw .malformed("negative array count \(raw)") }
            count = Int(raw)
        }
        guard count <= WireLimits.maxArrayElements else {
            throw .malformed("array count \(count) exceeds the limit of \(WireLimits.maxArrayElements) elements")
        }
        guard count <= readableBytes else {
            throw .malformed("array count \(count) exceeds the \(readableBytes) remaining bytes")
        }
        return count
    }

    /// Reads a non-nullable array count.
    @inline(__always)
    public mutating func readWireArrayCount(compact: Bool) throws(WireError) -> Int {
        guard let count = try readWireArrayCount(compact: compact, nullable: false) else {
            throw .malformed("null array in a non-nullable field")
        }
        return count
    }

    public mutating func writeWireArrayCount(_ count: Int?, compact: Bool) throws(WireError) {
        guard let count else {
            if compact { writeUnsignedVarint(0) } else { writeWireInt32(-1) }
            return
        }
        guard count < Int(Int32.max) else { throw .valueTooLarge("array of \(count) elements") }
        if compact { writeUnsignedVarint(UInt32(count + 1)) } else { writeWireInt32(Int32(count)) }
    }

    // MARK: Strings

    /// Reads a non-nullable string; the null marker throws.
    public mutating func readWireString(compact: Bool) throws(WireError) -> String {
        guard let length = try readStringLength(compact: compact) else {
            throw .malformed("null string in a non-nullable field")
        }
        guard let s = readString(length: length) else { throw .truncated }
        return s
    }

    /// Reads a string that may be null when `nullable` is true (the null marker throws otherwise).
    public mutating func readWireNullableString(compact: Bool, nullable: Bool) throws(WireError) -> String? {
        guard let length = try readStringLength(compact: compact) else {
            guard nullable else { throw .malformed("null string in a non-nullable field") }
            return nil
        }
        guard let s = readString(length: length) else { throw .truncated }
        return s
    }

    public mutating func writeWireString(_ value: String, compact: Bool) throws(WireError) {
        let length = value.utf8.count
        if compact {
            guard length < Int(Int32.max) else { throw .valueTooLarge("string of \(length) bytes") }
            writeUnsignedVarint(UInt32(length + 1))
        } else {
            guard length <= Int(Int16.max) else { throw .valueTooLarge("string of \(length) bytes") }
            writeWireInt16(Int16(length))
        }
        writeString(value)
    }

    public mutating func writeWireNullableString(_ value: String?, compact: Bool, nullable: Bool) throws(WireError) {
        guard let value else {
            guard nullable else { throw .malformed("null value for a non-nullable string") }
            if compact { writeUnsignedVarint(0) } else { writeWireInt16(-1) }
            return
        }
        try writeWireString(value, compact: compact)
    }

    // MARK: Bytes

    /// Reads non-nullable bytes as a zero-copy slice.
    public mutating func readWireBytes(compact: Bool) throws(WireError) -> ByteBuffer {
        guard let length = try readBytesLength(compact: compact) else {
            throw .malformed("null bytes in a non-nullable field")
        }
        return try readWireSlice(length: length)
    }

    public mutating func readWireNullableBytes(compact: Bool, nullable: Bool) throws(WireError) -> ByteBuffer? {
        guard let length = try readBytesLength(compact: compact) else {
            guard nullable else { throw .malformed("null bytes in a non-nullable field") }
            return nil
        }
        return try readWireSlice(length: length)
    }

    public mutating func writeWireBytes(_ value: ByteBuffer, compact: Bool) throws(WireError) {
        try writeWireBytesLength(value.readableBytes, compact: compact)
        writeImmutableBuffer(value)
    }

    public mutating func writeWireNullableBytes(_ value: ByteBuffer?, compact: Bool, nullable: Bool) throws(WireError) {
        guard let value else {
            guard nullable else { throw .malformed("null value for non-nullable bytes") }
            try writeWireBytesLength(nil, compact: compact)
            return
        }
        try writeWireBytes(value, compact: compact)
    }

    /// Writes a bytes/records length prefix (nil = null marker).
    public mutating func writeWireBytesLength(_ length: Int?, compact: Bool) throws(WireError) {
        guard let length else {
            if compact { writeUnsignedVarint(0) } else { writeWireInt32(-1) }
            return
        }
        guard length < Int(Int32.max) else { throw .valueTooLarge("bytes of \(length) bytes") }
        if compact { writeUnsignedVarint(UInt32(length + 1)) } else { writeWireInt32(Int32(length)) }
    }

    // MARK: Records

    /// Reads a records field as one zero-copy `.bytes` chunk; nil for null.
    public mutating func readWireRecords(compact: Bool, nullable: Bool) throws(WireError) -> Records? {
        guard let length = try readBytesLength(compact: compact) else {
            guard nullable else { throw .malformed("null records in a non-nullable field") }
            return nil
        }
        return Records(try readWireSlice(length: length))
    }

    // MARK: Tagged fields

    /// Reads one tagged-field header (tag and payload) and returns the payload as a slice.
    public mutating func readTaggedField() throws(WireError) -> (tag: UInt32, payload: ByteBuffer) {
        let tag = try readUnsignedVarint()
        let size = try readUnsignedVarint()
        return (tag, try readWireSlice(length: Int(size)))
    }

    /// Reads the field count that opens a tagged-field section. More than
    /// `WireLimits.maxTaggedFields`, or more fields than could fit in the remaining bytes (each
    /// takes at least two), throws.
    public mutating func readTaggedFieldCount() throws(WireError) -> UInt32 {
        let count = try readUnsignedVarint()
        guard count <= WireLimits.maxTaggedFields else {
            throw .malformed("\(count) tagged fields exceed the limit of \(WireLimits.maxTaggedFields)")
        }
        guard Int(count) * 2 <= readableBytes else {
            throw .malformed("\(count) tagged fields cannot fit in the \(readableBytes) remaining bytes")
        }
        return count
    }

    /// Skips a whole tagged-field section (count + fields).
    public mutating func skipTaggedFields() throws(WireError) {
        let count = try readTaggedFieldCount()
        var i: UInt32 = 0
        while i < count {
            _ = try readTaggedField()
            i += 1
        }
    }

    /// Writes one tagged field whose payload was encoded separately.
    public mutating func writeTaggedField(tag: UInt32, payload: ByteBuffer) throws(WireError) {
        guard payload.readableBytes < Int(Int32.max) else { throw .valueTooLarge("tagged field of \(payload.readableBytes) bytes") }
        writeUnsignedVarint(tag)
        writeUnsignedVarint(UInt32(payload.readableBytes))
        writeImmutableBuffer(payload)
    }
}
