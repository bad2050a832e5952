import CCompressionLibs
public import NIOCore
public import RecordFormat

/// Kafka's message formats v0 and v1 (magic 0 and 1, "message sets"), which Produce v0-2 carry and
/// Fetch v0-3 clients expect. Petrel stores only record batch v2: legacy sets are converted on the
/// way in (`upConvert`) and on the way out (`downConvert`), as Kafka 3.x did.
///
/// One message (big-endian):
///
/// | size | field |
/// |---|---|
/// | 8 | offset (log entry) |
/// | 4 | message size (bytes that follow) |
/// | 4 | crc (CRC-32, IEEE, of magic..end) |
/// | 1 | magic (0 or 1) |
/// | 1 | attributes: bits 0-2 codec, bit 3 LogAppendTime (v1) |
/// | 8 | timestamp (v1 only) |
/// | 4+n | key (-1 = null) |
/// | 4+n | value (-1 = null); a compressed message's value is a compressed inner message set |
public enum LegacyMessageSet {
    static let logOverhead = 12
    static let headerBytesV0 = 4 + 1 + 1 + 4 + 4  // crc, magic, attributes, key length, value length
    static let timestampTypeBit: Int8 = 0x08

    /// One decoded message; key and value are slices of the set (or of a decompressed inner set).
    struct Message {
        var offset: Int64
        var magic: Int8
        var attributes: Int8
        var timestamp: Int64
        var key: ByteBuffer?
        var value: ByteBuffer?
    }

    /// Converts the message set of a Produce v0-2 partition into one record batch v2 with the same
    /// keys, values and timestamps (magic 0 has none: the broker's `now` is used, so time-based
    /// retention and lookups see the receive time). Every message's CRC is checked; a compressed
    /// wrapper's inner messages are decompressed (gzip, snappy, lz4 on magic 1) and taken in order.
    ///
    /// - Parameters:
    ///   - set: The partition's records field: whole messages only.
    ///   - now: The broker's wall clock in ms.
    ///   - decompressedBytesMax: The most bytes a wrapper may decompress to.
    /// - Returns: The v2 batch (base offset 0, no producer id), ready for the normal produce checks.
    /// - Throws: `RecordBatchError`: `.corrupt` for a CRC mismatch, a truncated or malformed message
    ///   or a payload that does not decompress; `.invalid` for an empty set, nested compression or
    ///   an unsupported codec.
    public static func upConvert(_ set: ByteBuffer, now: Int64, decompressedBytesMax: Int) throws(RecordBatchError) -> ByteBuffer {
        var builder = RecordBatchBuilder()
        var messages = set
        var outerMagic: Int8?
        var appended = 0
        while messages.readableBytes > 0 {
            let message = try readMessage(&messages)
            if outerMagic == nil { outerMagic = message.magic }
            guard message.magic == outerMagic else {
                throw RecordBatchError(.invalid, "message set mixes magic \(outerMagic ?? -1) and \(message.magic)")
            }
            let codec = message.attributes & 0x07
            if codec == 0 {
                builder.append(key: message.key.map { Array(buffer: $0) }, value: message.value.map { Array(buffer: $0) }, timestamp: timestamp(of: message, now: now))
                appended += 1
                continue
            }
            guard let compressed = message.value else { throw RecordBatchError(.corrupt, "compressed message without a value") }
            var inner = try decompress(compressed, codec: codec, magic: message.magic, limit: decompressedBytesMax)
            while inner.readableBytes > 0 {
                var innerMessage = try readMessage(&inner)
                guard innerMessage.attributes & 0x07 == 0 else {
                    throw RecordBatchError(.invalid, "nested compressed messages are not allowed")
                }
                if message.magic == 1, message.attributes & timestampTypeBit != 0 { innerMessage.timestamp = message.timestamp }
                builder.append(
                    key: innerMessage.key.map { Array(buffer: $0) }, value: innerMessage.value.map { Array(buffer: $0) },
                    timestamp: timestamp(of: innerMessage, now: now))
                appended += 1
            }
        }
        guard appended > 0 else { throw RecordBatchError(.invalid, "the message set holds no messages") }
        return builder.build()
    }

    private static func timestamp(of message: Message, now: Int64) -> Int64 {
        message.magic == 0 || message.timestamp < 0 ? now : message.timestamp
    }

    /// Reads one whole message at the reader index, checking its CRC and field lengths.
    static func readMessage(_ buffer: inout ByteBuffer) throws(RecordBatchError) -> Message {
        guard let offset = buffer.readInteger(as: Int64.self), let size = buffer.readInteger(as: Int32.self) else {
            throw RecordBatchError(.corrupt, "truncated message header")
        }
        guard size >= Int32(headerBytesV0), Int(size) <= buffer.readableBytes, var body = buffer.readSlice(length: Int(size)) else {
            throw RecordBatchError(.corrupt, "message size \(size) with \(buffer.readableBytes) bytes left")
        }
        let storedCRC = body.readInteger(as: UInt32.self)!
        let computed = body.withUnsafeReadableBytes { bytes in
            UInt32(truncatingIfNeeded: crc32(0, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt32(bytes.count)))
        }
        guard storedCRC == computed else { throw RecordBatchError(.corrupt, "message CRC mismatch at offset \(offset)") }
        let magic = body.readInteger(as: Int8.self)!
        let attributes = body.readInteger(as: Int8.self)!
        guard magic == 0 || magic == 1 else { throw RecordBatchError(.unsupportedMagic(magic), "message set with magic \(magic)") }
        var timestamp: Int64 = -1
        if magic == 1 {
            guard let value = body.readInteger(as: Int64.self) else { throw RecordBatchError(.corrupt, "truncated v1 message") }
            timestamp = value
        }
        let key = try readBytes(&body, "key")
        let value = try readBytes(&body, "value")
        guard body.readableBytes == 0 else { throw RecordBatchError(.corrupt, "\(body.readableBytes) bytes follow the message's value") }
        return Message(offset: offset, magic: magic, attributes: attributes, timestamp: timestamp, key: key, value: value)
    }

    private static func readBytes(_ body: inout ByteBuffer, _ what: String) throws(RecordBatchError) -> ByteBuffer? {
        guard let length = body.readInteger(as: Int32.self) else { throw RecordBatchError(.corrupt, "message ends before its \(what)") }
        if length == -1 { return nil }
        guard length >= 0, Int(length) <= body.readableBytes else {
            throw RecordBatchError(.corrupt, "message \(what) length \(length) with \(body.readableBytes) bytes left")
        }
        return body.readSlice(length: Int(length))
    }

    private static func decompress(_ payload: ByteBuffer, codec: Int8, magic: Int8, limit: Int) throws(RecordBatchError) -> ByteBuffer {
        let kind: CompressionCodec
        switch codec {
        case 1: kind = .gzip
        case 2: kind = .snappy
        case 3:
            // Magic 0 wrote LZ4 frames with a wrong header checksum (KAFKA-3160); not accepted.
            guard magic == 1 else { throw RecordBatchError(.invalid, "lz4 with message format v0 is not supported") }
            kind = .lz4
        default: throw RecordBatchError(.invalid, "unsupported codec \(codec) in a v\(magic) message")
        }
        let result = payload.withUnsafeReadableBytes { bytes in
            Result { () throws(CompressionError) in try BatchCompression.decompress(kind, bytes, limit: limit) }
        }
        switch result {
        case .success(let plain): return ByteBuffer(bytes: plain)
        case .failure(let error): throw RecordBatchError(.corrupt, "compressed message does not decompress: \(error.message)")
        }
    }

    /// Converts the record batches v2 in `log` (whole batches back to back, as a fetch reads them;
    /// a partial batch at the end is left out) to a message set of `magic` 0 or 1 for a Fetch v0-3
    /// client. Records below `fromOffset` and control batches are skipped; headers are dropped (the
    /// old formats have none); messages are written uncompressed.
    ///
    /// - Parameters:
    ///   - log: Bytes read from the log.
    ///   - magic: 0 for Fetch v0-1, 1 for Fetch v2-3.
    ///   - fromOffset: The fetch offset.
    ///   - allocator: Where the output comes from.
    /// - Returns: The message set (possibly empty).
    public static func downConvert(_ log: ByteBuffer, magic: Int8, fromOffset: Int64, allocator: ByteBufferAllocator) -> ByteBuffer {
        precondition(magic == 0 || magic == 1, "down-conversion targets magic 0 or 1")
        var output = allocator.buffer(capacity: log.readableBytes + log.readableBytes / 4)
        var remaining = log
        while remaining.readableBytes >= RecordBatchHeader.byteCount {
            guard let header = try? RecordBatch.validateFraming(remaining, requireExactLength: false) else { break }
            let batch = remaining.readSlice(length: header.totalByteCount)!
            if header.isControl || header.lastOffset < fromOffset { continue }
            guard let (_, records) = try? RecordBatch.decodeRecords(in: batch) else { break }
            for record in records {
                let offset = header.baseOffset + Int64(record.offsetDelta)
                guard offset >= fromOffset else { continue }
                let timestamp = header.isLogAppendTime ? header.maxTimestamp : header.baseTimestamp &+ record.timestampDelta
                write(offset: offset, magic: magic, logAppendTime: header.isLogAppendTime, timestamp: timestamp,
                      key: record.key, value: record.value, into: &output)
            }
        }
        return output
    }

    /// Appends one uncompressed message.
    static func write(
        offset: Int64, magic: Int8, logAppendTime: Bool, timestamp: Int64, key: ByteBuffer?, value: ByteBuffer?, into output: inout ByteBuffer
    ) {
        output.writeInteger(offset)
        let sizeAt = output.writerIndex
        output.writeInteger(Int32(0))
        let crcAt = output.writerIndex
        output.writeInteger(UInt32(0))
        output.writeInteger(magic)
        output.writeInteger(magic == 1 && logAppendTime ? timestampTypeBit : Int8(0))
        if magic == 1 { output.writeInteger(timestamp) }
        for field in [key, value] {
            if let field {
                output.writeInteger(Int32(field.readableBytes))
                output.writeImmutableBuffer(field)
            } else {
                output.writeInteger(Int32(-1))
            }
        }
        let end = output.writerIndex
        output.setInteger(Int32(end - crcAt), at: sizeAt)
        let start = crcAt + 4 - output.readerIndex
        let crc = output.withUnsafeReadableBytes { bytes in
            return UInt32(truncatingIfNeeded: crc32(0, bytes.baseAddress!.advanced(by: start).assumingMemoryBound(to: UInt8.self), UInt32(end - crcAt - 4)))
        }
        output.setInteger(crc, at: crcAt)
    }
}
