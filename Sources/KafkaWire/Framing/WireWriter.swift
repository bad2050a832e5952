import NIOCore

/// The encoder target. Fixed-size data goes into `buffer`; `records` payloads that live in files are
/// appended as separate chunks so they can be sent zero-copy. `finish()` returns the chunks in wire
/// order. When no file chunk (and no large in-memory chunk, see `zeroCopyThreshold`) was written the
/// result is a single `ByteBuffer`.
public struct WireWriter: Sendable {
    /// The buffer currently being written to.
    public var buffer: ByteBuffer
    private var finished: [Records.Chunk] = []
    private var finishedBytes = 0
    private let allocator: ByteBufferAllocator
    /// In-memory record chunks at least this large are appended as their own chunk instead of
    /// being copied into `buffer`. Default: always copy (single-buffer output).
    public var zeroCopyThreshold: Int

    public init(allocator: ByteBufferAllocator = ByteBufferAllocator(), initialCapacity: Int = 256, zeroCopyThreshold: Int = .max) {
        self.allocator = allocator
        self.buffer = allocator.buffer(capacity: initialCapacity)
        self.zeroCopyThreshold = zeroCopyThreshold
    }

    /// Continues writing into an existing buffer (e.g. one already holding a frame header).
    public init(buffer: ByteBuffer, zeroCopyThreshold: Int = .max) {
        self.allocator = ByteBufferAllocator()
        self.buffer = buffer
        self.zeroCopyThreshold = zeroCopyThreshold
    }

    /// Bytes written so far, over all chunks.
    public var byteCount: Int { finishedBytes + buffer.readableBytes }

    /// True when everything written so far is in `buffer` (no separate chunks).
    public var isSingleBuffer: Bool { finished.isEmpty }

    private mutating func flush() {
        if buffer.readableBytes > 0 {
            finishedBytes += buffer.readableBytes
            finished.append(.bytes(buffer))
            buffer = allocator.buffer(capacity: 256)
        }
    }

    /// Writes a records field: the length prefix (classic int32 or compact uvarint(len+1); null =
    /// -1 / 0) followed by the record chunks.
    public mutating func writeRecords(_ records: Records?, compact: Bool, nullable: Bool) throws(WireError) {
        guard let records else {
            guard nullable else { throw .malformed("null value for non-nullable records") }
            try buffer.writeWireBytesLength(nil, compact: compact)
            return
        }
        try buffer.writeWireBytesLength(records.byteCount, compact: compact)
        for chunk in records.chunks {
            switch chunk {
            case .bytes(let b):
                if b.readableBytes >= zeroCopyThreshold {
                    flush()
                    finishedBytes += b.readableBytes
                    finished.append(chunk)
                } else {
                    buffer.writeImmutableBuffer(b)
                }
            case .file(let region):
                guard region.readableBytes > 0 else { continue }
                flush()
                finishedBytes += region.readableBytes
                finished.append(chunk)
            }
        }
    }

    /// Appends everything written to `other` (used for tagged-field payloads and nested encodings).
    public mutating func append(_ other: WireWriter) {
        var other = other
        for chunk in other.finish() {
            switch chunk {
            case .bytes(let b) where b.readableBytes < zeroCopyThreshold:
                buffer.writeImmutableBuffer(b)
            default:
                flush()
                finishedBytes += chunk.byteCount
                finished.append(chunk)
            }
        }
    }

    /// Ends writing and returns the chunks in wire order (at least one chunk).
    public mutating func finish() -> [Records.Chunk] {
        if finished.isEmpty {
            let out: [Records.Chunk] = [.bytes(buffer)]
            buffer = allocator.buffer(capacity: 0)
            return out
        }
        flush()
        let out = finished
        finished = []
        finishedBytes = 0
        return out
    }

    /// Ends writing and returns one buffer, copying separate in-memory chunks together if needed;
    /// nil if a file region was written.
    public mutating func finishSingleBuffer() -> ByteBuffer? {
        Records(chunks: finish()).singleBuffer
    }
}

extension WireWriter {
    /// Encodes a full response frame: `int32 size | response header | body`. The size counts every
    /// chunk after it, so the chunks can be written to the socket in order.
    public static func encodeResponseFrame<Response: KafkaResponse>(
        _ body: Response,
        version: Int16,
        correlationId: Int32,
        allocator: ByteBufferAllocator = ByteBufferAllocator(),
        zeroCopyThreshold: Int = .max
    ) throws(WireError) -> [Records.Chunk] {
        var writer = WireWriter(allocator: allocator, initialCapacity: 512, zeroCopyThreshold: zeroCopyThreshold)
        writer.buffer.writeWireInt32(0) // size placeholder
        let header = ResponseHeader(correlationId: correlationId)
        header.write(to: &writer.buffer, version: Response.apiKey.responseHeaderVersion(apiVersion: version))
        try body.write(to: &writer, version: version)
        return writer.finishFrame()
    }

    /// Encodes a full request frame: `int32 size | request header | body` (for clients and tests).
    public static func encodeRequestFrame<Request: KafkaRequest>(
        _ body: Request,
        version: Int16,
        correlationId: Int32,
        clientId: String?,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(WireError) -> [Records.Chunk] {
        var writer = WireWriter(allocator: allocator, initialCapacity: 512)
        writer.buffer.writeWireInt32(0) // size placeholder
        let header = RequestHeader(apiKey: Request.apiKey, apiVersion: version, correlationId: correlationId, clientId: clientId)
        try header.write(to: &writer.buffer)
        try body.write(to: &writer, version: version)
        return writer.finishFrame()
    }

    /// Finishes a frame whose first 4 bytes are a size placeholder, patching in the size.
    public mutating func finishFrame() -> [Records.Chunk] {
        let total = byteCount
        var chunks = finish()
        if case .bytes(var first) = chunks[0] {
            first.setInteger(Int32(truncatingIfNeeded: total - 4), at: first.readerIndex, endianness: .big)
            chunks[0] = .bytes(first)
        }
        return chunks
    }
}

extension KafkaMessage {
    /// Encodes the body alone into one buffer (throws if a records field contained file regions).
    public func encoded(version: Int16, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(WireError) -> ByteBuffer {
        var writer = WireWriter(allocator: allocator)
        try write(to: &writer, version: version)
        guard let out = writer.finishSingleBuffer() else {
            throw .malformed("encoded message contains file regions; use WireWriter.finish()")
        }
        return out
    }
}
