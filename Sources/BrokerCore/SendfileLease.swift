import CommitLog
public import NIOCore

/// The one owner of the segment descriptors a response frame sends with sendfile.
///
/// A `FileRegion` needs an `NIOFileHandle`, which would close its descriptor; the segment's
/// descriptor belongs to its `SegmentFileHandle` (closed when the last reference goes). The lease
/// makes the region borrow it: `region(for:)` wraps the descriptor and keeps the segment file open,
/// `release()` takes the descriptor back from every region (never closing it) and lets the segment
/// files go. It is what the file-descriptor budget counts as "in flight": one lease per frame.
///
/// Ownership: built by the fetch path, then handed with its `ResponseFrame` to the connection's
/// event loop, which alone uses and releases it (hence `@unchecked Sendable`).
public final class SendfileLease: @unchecked Sendable {
    private var files: [SegmentFileHandle] = []
    private var handles: [NIOFileHandle] = []

    public init() {}

    /// A sendfile region over `slice`, borrowing its segment's descriptor until `release()`.
    public func region(for slice: FileSlice) -> FileRegion {
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: slice.file.fd)
        handles.append(handle)
        files.append(slice.file)
        let start = Int(slice.position.value)
        return FileRegion(fileHandle: handle, readerIndex: start, endIndex: start + slice.length)
    }

    /// Lets go of every borrowed descriptor without closing it, then of the segment files (which may
    /// close them if they were rolled or deleted meanwhile). Idempotent.
    public func release() {
        for handle in handles where handle.isOpen { _ = try? handle.takeDescriptorOwnership() }
        handles.removeAll()
        files.removeAll()
    }

    /// Lets go of one region's borrowed descriptor early (its bytes were read instead); the segment
    /// file stays held until `release()`.
    public func release(_ region: FileRegion) {
        if region.fileHandle.isOpen { _ = try? region.fileHandle.takeDescriptorOwnership() }
    }

    deinit {
        // A frame dropped without being written must not close a descriptor it only borrowed.
        for handle in handles where handle.isOpen { _ = try? handle.takeDescriptorOwnership() }
    }
}
