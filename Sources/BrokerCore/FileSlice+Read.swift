import CommitLog
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

extension FileSlice {
    /// Appends this slice's bytes to `buffer` with pread (a copy; the fetch path normally sends
    /// slices with sendfile instead). Returns the bytes read, fewer only if the file is shorter.
    @discardableResult
    func read(appendingTo buffer: inout ByteBuffer) -> Int {
        let fd = file.fd
        let count = length
        let position = self.position
        return buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
            var done = 0
            while done < count {
                let n = pread(fd, pointer.baseAddress! + done, count - done, off_t(position) + off_t(done))
                if n > 0 {
                    done += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            return done
        }
    }
}
