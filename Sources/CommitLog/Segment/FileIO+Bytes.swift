import DiskIO

extension FileIO {
    /// Writes all of `bytes` at `offset` (typed throws through the array's buffer).
    func write(_ fd: Int32, bytes: [UInt8], at offset: Int64) throws(DiskError) {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(DiskError) in try write(fd, raw, at: offset) }
        }
        try result.get()
    }

    /// Reads up to `buffer.count` bytes at `offset` into `bytes`.
    func read(_ fd: Int32, into bytes: inout [UInt8], at offset: Int64) throws(DiskError) -> Int {
        let result = bytes.withUnsafeMutableBytes { raw in
            Result { () throws(DiskError) -> Int in try read(fd, into: raw, at: offset) }
        }
        return try result.get()
    }
}
