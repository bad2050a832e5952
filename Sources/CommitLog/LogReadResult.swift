import DiskIO

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
    public var position: Int64
    public var length: Int

    public init(file: SegmentFileHandle, position: Int64, length: Int) {
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
    public var highWatermark: Int64
    public var logStartOffset: Int64

    public init(slices: [FileSlice], byteCount: Int, highWatermark: Int64, logStartOffset: Int64) {
        self.slices = slices
        self.byteCount = byteCount
        self.highWatermark = highWatermark
        self.logStartOffset = logStartOffset
    }
}

/// The outcome of one append.
public struct AppendResult: Sendable, Equatable {
    public var baseOffset: Int64
    public var lastOffset: Int64
    /// The broker time stamped into the batch, or -1 unless the topic uses LogAppendTime.
    public var logAppendTime: Int64
    public var logStartOffset: Int64

    public init(baseOffset: Int64, lastOffset: Int64, logAppendTime: Int64, logStartOffset: Int64) {
        self.baseOffset = baseOffset
        self.lastOffset = lastOffset
        self.logAppendTime = logAppendTime
        self.logStartOffset = logStartOffset
    }
}
