import DiskIO
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Behaviour every `FileIO` backend must share. Each backend's suite calls these with its own root.
enum FileIOConformance {
    static func writeReadSizeTruncate(_ io: any FileIO, root: String) throws {
        let path = root + "/a.log"
        #expect(!io.fileExists(path))
        let fd = try io.open(path, mode: .createReadWrite)
        defer { io.close(fd) }
        #expect(io.fileExists(path))
        #expect(!io.isDirectory(path))
        #expect(try io.fileSize(fd) == 0)

        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try bytes.withUnsafeBytes { buffer in try io.write(fd, buffer, at: 0) }
        try [UInt8]([1, 2, 3]).withUnsafeBytes { buffer in try io.write(fd, UnsafeRawBufferPointer(buffer), at: 20_000) }
        #expect(try io.fileSize(fd) == 20_003)

        var back = [UInt8](repeating: 0xEE, count: 30_000)
        let n = try back.withUnsafeMutableBytes { buffer in try io.read(fd, into: buffer, at: 0) }
        #expect(n == 20_003)
        #expect(Array(back[0..<10_000]) == bytes)
        #expect(back[10_000..<20_000].allSatisfy { $0 == 0 }, "a hole reads as zeros")
        #expect(Array(back[20_000..<20_003]) == [1, 2, 3])

        var past = [UInt8](repeating: 0, count: 10)
        #expect(try past.withUnsafeMutableBytes { buffer in try io.read(fd, into: buffer, at: 50_000) } == 0)

        try io.truncate(fd, to: 5)
        #expect(try io.fileSize(fd) == 5)
        try io.truncate(fd, to: 8)
        var small = [UInt8](repeating: 0xEE, count: 8)
        #expect(try small.withUnsafeMutableBytes { buffer in try io.read(fd, into: buffer, at: 0) } == 8)
        #expect(small == Array(bytes[0..<5]) + [0, 0, 0])
        try io.fdatasync(fd)
    }

    static func submitBatch(_ io: any FileIO, root: String) throws {
        let paths = (0..<3).map { root + "/batch-\($0).log" }
        let fds = try paths.map { try io.open($0, mode: .createReadWrite) }
        defer { fds.forEach(io.close) }
        // 64 writes of 100..163 bytes spread over 3 files, each file appended in order.
        var expected = [[UInt8]](repeating: [], count: 3)
        var payloads: [[UInt8]] = []
        var targets: [(file: Int, offset: Int64)] = []
        for index in 0..<64 {
            let file = index % 3
            let payload = (0..<(100 + index)).map { UInt8(truncatingIfNeeded: $0 ^ index) }
            targets.append((file, Int64(expected[file].count)))
            expected[file] += payload
            payloads.append(payload)
        }
        // Keep the payload memory alive for the whole submit.
        let storage = payloads.map { payload -> UnsafeMutableRawBufferPointer in
            let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: payload.count, alignment: 8)
            memory.copyBytes(from: payload)
            return memory
        }
        defer { storage.forEach { $0.deallocate() } }
        var operations = zip(storage, targets).map { memory, target in
            IOOperation(.write(fd: fds[target.file], offset: target.offset, bytes: UnsafeRawBufferPointer(memory)))
        }
        operations += fds.map { IOOperation(.fdatasync(fd: $0)) }
        operations.append(IOOperation(.syncFileRange(fd: fds[0], offset: 0, length: 0)))
        io.submit(&operations)
        for (index, operation) in operations.enumerated() {
            switch operation.result {
            case .success(let n):
                #expect(n == (index < 64 ? payloads[index].count : 0), "operation \(index)")
            case .failure(let error):
                Issue.record("operation \(index) failed: \(error)")
            case nil:
                Issue.record("operation \(index) has no result")
            }
        }
        for file in 0..<3 {
            #expect(try io.readWholeFile(paths[file]) == expected[file], "file \(file)")
        }
    }

    static func namesAndDirectories(_ io: any FileIO, root: String) throws {
        let nested = root + "/x/y/z"
        try io.createDirectory(nested)
        try io.createDirectory(nested)  // idempotent
        #expect(io.isDirectory(root + "/x/y"))
        #expect(io.isDirectory(nested))

        for name in ["b.log", "a.log", "c.index"] {
            let fd = try io.open(root + "/x/" + name, mode: .createReadWrite)
            io.close(fd)
        }
        #expect(try io.listDirectory(root + "/x") == ["a.log", "b.log", "c.index", "y"])

        try io.rename(root + "/x/a.log", to: root + "/x/a.log.deleted")
        #expect(!io.fileExists(root + "/x/a.log"))
        #expect(io.fileExists(root + "/x/a.log.deleted"))
        try io.unlink(root + "/x/a.log.deleted")
        #expect(!io.fileExists(root + "/x/a.log.deleted"))
        try io.syncDirectory(root + "/x")

        try io.writeFileAtomically(root + "/x/y/checkpoint", Array("0\n0\n".utf8))
        #expect(try io.readWholeFile(root + "/x/y/checkpoint") == Array("0\n0\n".utf8))
        #expect(!io.fileExists(root + "/x/y/checkpoint.tmp"))
        #expect(try io.readWholeFile(root + "/x/missing") == nil)

        try io.removeDirectory(root + "/x")
        #expect(!io.fileExists(root + "/x"))
        #expect(!io.isDirectory(root + "/x"))
    }

    static func errorsCarryErrno(_ io: any FileIO, root: String) throws {
        #expect(throws: DiskError.self) { try io.open(root + "/missing", mode: .readWrite) }
        do {
            _ = try io.open(root + "/missing", mode: .readOnly)
            Issue.record("opened a missing file")
        } catch {
            #expect(error.operation == .open)
            #expect(error.errno == ENOENT)
            #expect(error.path == root + "/missing")
        }
        do {
            try io.unlink(root + "/missing")
            Issue.record("unlinked a missing file")
        } catch {
            #expect(error.operation == .unlink)
            #expect(error.errno == ENOENT)
        }
        do {
            try io.rename(root + "/missing", to: root + "/other")
            Issue.record("renamed a missing file")
        } catch {
            #expect(error.operation == .rename)
            #expect(error.errno == ENOENT)
        }
        do {
            _ = try io.listDirectory(root + "/missing")
            Issue.record("listed a missing directory")
        } catch {
            #expect(error.errno == ENOENT)
        }
        // Writing through a read-only fd fails with EBADF, in `write` and in `submit`.
        let path = root + "/ro"
        io.close(try io.open(path, mode: .createReadWrite))
        let fd = try io.open(path, mode: .readOnly)
        defer { io.close(fd) }
        do {
            try [UInt8]([1, 2, 3]).withUnsafeBytes { buffer in try io.write(fd, UnsafeRawBufferPointer(buffer), at: 0) }
            Issue.record("wrote through a read-only fd")
        } catch let error as DiskError {
            #expect(error.operation == .write)
            #expect(error.errno == EBADF)
        }
        let bytes: [UInt8] = [1, 2, 3]
        bytes.withUnsafeBytes { buffer in
            var operations = [IOOperation(.write(fd: fd, offset: 0, bytes: buffer))]
            io.submit(&operations)
            guard case .failure(let error)? = operations[0].result else {
                Issue.record("expected a failed write, got \(String(describing: operations[0].result))")
                return
            }
            #expect(error.errno == EBADF)
            #expect(error.operation == .write)
        }
    }
}
