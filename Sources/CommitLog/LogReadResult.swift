public import DiskIO
public import NIOCore

/// An open segment file. Closes its descriptor (through the `FileIO` that opened it) when the last
/// reference goes, so a fetch response still sending from a segment keeps the file alive even after
/// the segment was rolled away, deleted, or its partition removed.
public final class SegmentFileHandle: @unchecked Sendable {
    public let fd: Int32
    public let path: String
    let io: any FileIO

    init(fd: Int32, path: String, io: any FileIO) {
        self.fd = fd
        self.path = path
        self.io = io
    }

    deinit { io.close(fd) }
}

/// A byte range of a segment file holding whole record batches, for sendfile or an io_uring read.
public struct FileSlice: @unchecked Sendable {
    public let file: SegmentFileHandle
    public var position: FilePosition
    public var length: Int

    public init(file: SegmentFileHandle, position: FilePosition, length: Int) {
        self.file = file
        self.position = position
        self.length = length
    }
}

/// What `PartitionLog.read` returns: file ranges of whole batches and the partition's offsets then.
public struct LogReadResult: Sendable {
    public var slices: [FileSlice]
    /// Sum of the slices' lengths.
    public var byteCount: Int
    public var highWatermark: Offset
    public var logStartOffset: Offset

    public init(slices: [FileSlice], byteCount: Int, highWatermark: Offset, logStartOffset: Offset) {
        self.slices = slices
        self.byteCount = byteCount
        self.highWatermark = highWatermark
        self.logStartOffset = logStartOffset
    }
}

/// The outcome of one append.
public struct AppendResult: Sendable, Equatable {
    public var baseOffset: Offset
    public var lastOffset: Offset
    /// The broker time stamped into the batch; nil unless the topic uses LogAppendTime.
    public var logAppendTime: Int64?
    public var logStartOffset: Offset

    public init(baseOffset: Offset, lastOffset: Offset, logAppendTime: Int64?, logStartOffset: Offset) {
        self.baseOffset = baseOffset
        self.lastOffset = lastOffset
        self.logAppendTime = logAppendTime
        self.logStartOffset = logStartOffset
    }
}

extension FileSlice {
    /// Appends this slice's bytes to `buffer` through the `FileIO` that opened the file (a copy; the
    /// fetch path normally sends slices with sendfile instead).
    /// - Returns: bytes read, fewer only if the file is shorter than the slice.
    /// - Throws: the read's `DiskError`.
    @discardableResult
    public func read(appendingTo buffer: inout ByteBuffer) throws(DiskError) -> Int {
        buffer.reserveCapacity(minimumWritableBytes: length)
        let io = file.io
        let fd = file.fd
        let position = self.position.value
        let count = length
        var failure: DiskError?
        let done = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
            do throws(DiskError) {
                return try io.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: pointer[..<count]), at: position)
            } catch {
                failure = error
                return 0
            }
        }
        if let failure { throw failure }
        return done
    }
}
