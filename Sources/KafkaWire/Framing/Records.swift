import NIOCore

/// The payload of a `records` field: a record-batch set, possibly split over in-memory buffers and
/// file regions (a Fetch response streams log segments zero-copy with sendfile).
public struct Records: Sendable, Equatable {
    public enum Chunk: Sendable, Equatable {
        case bytes(ByteBuffer)
        case file(FileRegion)

        public var byteCount: Int {
            switch self {
            case .bytes(let b): return b.readableBytes
            case .file(let f): return f.readableBytes
            }
        }
    }

    public var chunks: [Chunk]
    /// Total payload size over all chunks.
    public var byteCount: Int

    public init(_ buffer: ByteBuffer) {
        self.chunks = [.bytes(buffer)]
        self.byteCount = buffer.readableBytes
    }

    public init(chunks: [Chunk]) {
        self.chunks = chunks
        var total = 0
        for c in chunks { total += c.byteCount }
        self.byteCount = total
    }

    /// An empty (non-null) records payload.
    public static var empty: Records { Records(chunks: []) }

    /// The payload as one buffer when it is made of in-memory chunks only (a single chunk is returned
    /// as is, without copying); nil if any chunk is a file region.
    public var singleBuffer: ByteBuffer? {
        if chunks.count == 1, case .bytes(let b) = chunks[0] { return b }
        var out = ByteBuffer()
        out.reserveCapacity(byteCount)
        for c in chunks {
            guard case .bytes(let b) = c else { return nil }
            out.writeImmutableBuffer(b)
        }
        return out
    }

    /// Payload equality: in-memory content is compared byte-wise (regardless of how it is split);
    /// payloads containing file regions compare chunk by chunk.
    public static func == (lhs: Records, rhs: Records) -> Bool {
        guard lhs.byteCount == rhs.byteCount else { return false }
        if let l = lhs.singleBuffer, let r = rhs.singleBuffer { return l == r }
        return lhs.chunks == rhs.chunks
    }
}
