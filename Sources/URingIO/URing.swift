import CURingShims
import DiskIO

#if canImport(Glibc)
import Glibc
#endif

/// One io_uring and the reusable bookkeeping of a `submit`. Not thread-safe: `URingFileIO` keeps it
/// in a `Mutex`. Noncopyable so exactly one owner tears the ring down.
struct URing: ~Copyable {
    /// Largest length one IORING_OP_WRITE is given; Linux caps a single write at this anyway
    /// (MAX_RW_COUNT), and the rest of a longer write is re-submitted like a short write.
    static let writeBytesMaxDefault = 0x7FFF_F000

    private let ring: OpaquePointer
    /// SQ entries the kernel granted: the most SQEs in flight at once.
    let entries: Int
    let writeBytesMax: Int
    /// Set after `io_uring_enter` failed in a way retrying cannot fix. The ring is then never
    /// entered again (SQEs stuck in it are never executed) and batches go through `pwrite`.
    private(set) var isBroken = false
    var statistics = URingFileIO.Statistics()

    // Reused across batches so a steady stream of submits does not allocate.
    private var queue: [Int] = []
    private var progress: [Int] = []
    private var preparedOrder: [Int] = []
    private var completionData: [UInt64]
    private var completionResults: [Int32]

    init(entries: UInt32, writeBytesMax: Int = URing.writeBytesMaxDefault) throws(DiskError) {
        precondition(writeBytesMax > 0 && writeBytesMax <= Self.writeBytesMaxDefault, "bad writeBytesMax")
        var error: Int32 = 0
        guard let ring = petrel_uring_create(entries, &error) else {
            throw DiskError(.submit, errno: -error, detail: "io_uring unavailable: io_uring_queue_init(\(entries)) failed: \(errnoText(-error))")
        }
        self.ring = ring
        self.entries = Int(petrel_uring_sq_entries(ring))
        self.writeBytesMax = writeBytesMax
        completionData = [UInt64](repeating: 0, count: self.entries * 2)
        completionResults = [Int32](repeating: 0, count: self.entries * 2)
    }

    deinit { petrel_uring_destroy(ring) }

    /// Runs `indices` of `operations` on the ring; each gets its `result`. Writes that come back
    /// short are re-submitted for the rest. Returns when every one of them has completed.
    ///
    /// - Parameter pathOf: Names an fd in errors.
    mutating func run(_ operations: inout [IOOperation], indices: [Int], pathOf: (Int32) -> String?) {
        guard !indices.isEmpty else { return }
        precondition(!isBroken, "run on a broken ring")
        queue.removeAll(keepingCapacity: true)
        queue.append(contentsOf: indices)
        if progress.count < operations.count {
            progress.append(contentsOf: repeatElement(0, count: operations.count - progress.count))
        }
        for index in indices { progress[index] = 0 }
        preparedOrder.removeAll(keepingCapacity: true)

        var head = 0
        var inFlight = 0
        // EINTR / EAGAIN from the kernel are retried, but not forever.
        var retriesLeft = 64 + 16 * indices.count

        while head < queue.count || inFlight > 0 {
            // 1. Prepare as many SQEs as the ring holds.
            while head < queue.count, inFlight < entries {
                let index = queue[head]
                if prepare(index, in: &operations) {
                    head += 1
                    inFlight += 1
                    preparedOrder.append(index)
                } else if operations[index].result != nil {
                    head += 1  // finished without an SQE (an empty write)
                } else {
                    break  // SQ full
                }
            }
            if inFlight == 0 { break }

            // 2. One syscall submits everything prepared and waits for all of it.
            let status = petrel_uring_submit_and_wait(ring, UInt32(inFlight))
            statistics.enterCalls += 1
            if status >= 0 {
                statistics.sqesSubmitted += Int(status)
            } else if status == -EINTR || status == -EAGAIN || status == -EBUSY, retriesLeft > 0 {
                retriesLeft -= 1
            } else {
                // Unrecoverable: wait out what the kernel has, fail what it never saw.
                failRing(errno: -status, operations: &operations, inFlight: &inFlight, pathOf: pathOf)
                for index in queue[head...] where operations[index].result == nil {
                    operations[index].result = .failure(
                        DiskError(.submit, path: pathOf(fd(of: operations[index])), errno: -status, detail: "io_uring_enter failed")
                    )
                }
                return
            }

            // 3. Reap every completion that is there.
            let reaped = reap(&operations, inFlight: &inFlight, retriesLeft: &retriesLeft, pathOf: pathOf)
            trimPrepared()
            if status == 0, reaped == 0 {
                // The kernel took nothing and finished nothing: don't spin forever.
                guard retriesLeft > 0 else {
                    failRing(errno: EIO, operations: &operations, inFlight: &inFlight, pathOf: pathOf)
                    return
                }
                retriesLeft -= 1
            }
        }
    }

    /// Prepares one SQE for `operations[index]`. False when the SQ is full or nothing is needed.
    private mutating func prepare(_ index: Int, in operations: inout [IOOperation]) -> Bool {
        let data = UInt64(index)
        let status: Int32
        switch operations[index].kind {
        case .write(let fd, let offset, let bytes):
            let done = progress[index]
            let remaining = bytes.count - done
            guard remaining > 0, let base = bytes.baseAddress else {
                operations[index].result = .success(bytes.count)
                return false
            }
            precondition(offset >= 0, "negative file offset")
            let length = UInt32(min(remaining, writeBytesMax))
            status = petrel_uring_prep_write(ring, fd, base + done, length, UInt64(offset) + UInt64(done), data)
        case .fdatasync(let fd):
            status = petrel_uring_prep_fdatasync(ring, fd, data)
        case .syncFileRange(let fd, let offset, let length):
            precondition(offset >= 0 && length >= 0, "negative sync range")
            // The SQE's length is 32 bits; 0 means "to the end of the file", a superset.
            let clamped = length > Int64(UInt32.max) ? 0 : UInt32(length)
            status = petrel_uring_prep_sync_file_range(ring, fd, UInt64(offset), clamped, data)
        }
        return status == 0
    }

    /// Handles available CQEs; returns how many.
    private mutating func reap(
        _ operations: inout [IOOperation], inFlight: inout Int, retriesLeft: inout Int, pathOf: (Int32) -> String?
    ) -> Int {
        var total = 0
        while true {
            let count = completionData.withUnsafeMutableBufferPointer { data in
                completionResults.withUnsafeMutableBufferPointer { results in
                    Int(petrel_uring_reap(ring, data.baseAddress, results.baseAddress, UInt32(data.count)))
                }
            }
            if count == 0 { return total }
            total += count
            inFlight -= count
            for slot in 0..<count {
                complete(Int(completionData[slot]), result: completionResults[slot], &operations, retriesLeft: &retriesLeft, pathOf: pathOf)
            }
        }
    }

    private mutating func complete(
        _ index: Int, result: Int32, _ operations: inout [IOOperation], retriesLeft: inout Int, pathOf: (Int32) -> String?
    ) {
        precondition(index < operations.count, "completion for an unknown operation")
        let operation = operations[index]
        if result < 0 {
            let code = -result
            if code == EINTR || code == EAGAIN, retriesLeft > 0 {
                retriesLeft -= 1
                queue.append(index)
                return
            }
            let kind: DiskError.Operation = if case .write = operation.kind { .write } else { .sync }
            operations[index].result = .failure(
                DiskError(kind, path: pathOf(fd(of: operation)), errno: code, detail: errnoText(code))
            )
            return
        }
        guard case .write(let fd, _, let bytes) = operation.kind else {
            operations[index].result = .success(0)
            return
        }
        if result == 0 {
            operations[index].result = .failure(DiskError(.write, path: pathOf(fd), errno: EIO, detail: "write completed 0 bytes"))
            return
        }
        progress[index] += Int(result)
        if progress[index] >= bytes.count {
            operations[index].result = .success(bytes.count)
        } else {
            statistics.shortWrites += 1
            queue.append(index)  // re-submit the rest
        }
    }

    /// Drops the already-consumed head of `preparedOrder`: what remains are SQEs the kernel has not seen.
    private mutating func trimPrepared() {
        let unconsumed = Int(petrel_uring_sq_ready(ring))
        if preparedOrder.count > unconsumed {
            preparedOrder.removeFirst(preparedOrder.count - unconsumed)
        }
    }

    /// After a fatal `io_uring_enter` error: marks the ring broken, fails the SQEs the kernel never
    /// consumed, and waits (by polling the mmapped CQ, no syscalls) for the ones it did.
    private mutating func failRing(errno code: Int32, operations: inout [IOOperation], inFlight: inout Int, pathOf: (Int32) -> String?) {
        isBroken = true
        trimPrepared()
        let stuck = preparedOrder
        for index in stuck {
            operations[index].result = .failure(
                DiskError(.submit, path: pathOf(fd(of: operations[index])), errno: code, detail: "io_uring_enter failed: \(errnoText(code))")
            )
        }
        inFlight -= stuck.count
        var retriesLeft = 0
        while inFlight > 0 {
            if reap(&operations, inFlight: &inFlight, retriesLeft: &retriesLeft, pathOf: pathOf) == 0 {
                usleep(100)
            }
        }
        // Short writes re-queued while draining cannot go back to this ring.
        for index in queue where operations[index].result == nil {
            operations[index].result = .failure(
                DiskError(.submit, path: pathOf(fd(of: operations[index])), errno: code, detail: "io_uring_enter failed: \(errnoText(code))")
            )
        }
    }

    private func fd(of operation: IOOperation) -> Int32 {
        switch operation.kind {
        case .write(let fd, _, _), .fdatasync(let fd), .syncFileRange(let fd, _, _): fd
        }
    }
}

func errnoText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}
