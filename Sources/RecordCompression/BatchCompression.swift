import CCompressionLibs
import RecordFormat

/// A compression or decompression failure, with the codec and the library's reason.
public struct CompressionError: Error, Sendable, CustomStringConvertible {
    public var codec: CompressionCodec
    public var message: String
    public init(_ codec: CompressionCodec, _ message: String) {
        self.codec = codec
        self.message = message
    }
    public var description: String { "\(codec.name): \(message)" }
}

/// Kafka's codecs with Kafka's framings: gzip (RFC 1952 stream), snappy (xerial framing as the Java
/// client writes it; plain raw snappy is accepted when reading), lz4 (LZ4 frame, 64 KiB independent
/// blocks, as KafkaLZ4BlockOutputStream writes), zstd (standard frame).
public enum BatchCompression {
    /// Largest decompressed payload we accept (guards against decompression bombs).
    public static let decompressedBytesMax = 256 << 20

    /// Decompresses `input` written with `codec`.
    ///
    /// - Parameters:
    ///   - codec: The batch's codec.
    ///   - input: The compressed payload.
    ///   - limit: The most decompressed bytes accepted (a decompression bomb fails here, having
    ///     allocated about `limit` bytes at most).
    /// - Returns: The decompressed bytes.
    /// - Throws: `CompressionError` for malformed input or output over `limit`.
    public static func decompress(_ codec: CompressionCodec, _ input: UnsafeRawBufferPointer, limit: Int = decompressedBytesMax) throws(CompressionError) -> [UInt8] {
        switch codec {
        case .none: return Array(input)
        case .gzip: return try gunzip(input, limit: limit)
        case .snappy: return try unsnappy(input, limit: limit)
        case .lz4: return try unlz4(input, limit: limit)
        case .zstd: return try unzstd(input, limit: limit)
        }
    }

    public static func compress(_ codec: CompressionCodec, _ input: UnsafeRawBufferPointer) throws(CompressionError) -> [UInt8] {
        switch codec {
        case .none: return Array(input)
        case .gzip: return try gzip(input)
        case .snappy: return try snappy(input)
        case .lz4: return try lz4(input)
        case .zstd: return try zstd(input)
        }
    }

    // MARK: gzip

    static func gunzip(_ input: UnsafeRawBufferPointer, limit: Int = decompressedBytesMax) throws(CompressionError) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw CompressionError(.gzip, "inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        stream.avail_in = UInt32(input.count)
        while true {
            let status: Int32 = chunk.withUnsafeMutableBufferPointer { buffer in
                stream.next_out = buffer.baseAddress
                stream.avail_out = UInt32(buffer.count)
                return inflate(&stream, Z_NO_FLUSH)
            }
            output.append(contentsOf: chunk[0..<(chunk.count - Int(stream.avail_out))])
            if output.count > limit { throw CompressionError(.gzip, "decompressed size exceeds \(limit) bytes") }
            if status == Z_STREAM_END {
                // Concatenated gzip members are legal; continue if input remains.
                if stream.avail_in > 0, inflateReset(&stream) == Z_OK { continue }
                return output
            }
            guard status == Z_OK else { throw CompressionError(.gzip, "inflate failed (\(status))") }
            if stream.avail_in == 0 && stream.avail_out != 0 { throw CompressionError(.gzip, "truncated gzip stream") }
        }
    }

    static func gzip(_ input: UnsafeRawBufferPointer) throws(CompressionError) -> [UInt8] {
        var stream = z_stream()
        guard deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw CompressionError(.gzip, "deflateInit2 failed")
        }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, UInt(input.count)))
        var output = [UInt8](repeating: 0, count: bound)
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        stream.avail_in = UInt32(input.count)
        let status: Int32 = output.withUnsafeMutableBufferPointer { buffer in
            stream.next_out = buffer.baseAddress
            stream.avail_out = UInt32(buffer.count)
            return deflate(&stream, Z_FINISH)
        }
        guard status == Z_STREAM_END else { throw CompressionError(.gzip, "deflate failed (\(status))") }
        output.removeLast(Int(stream.avail_out))
        return output
    }

    // MARK: snappy (xerial framing)

    static let xerialMagic: [UInt8] = [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00]
    static let xerialBlockBytes = 32 * 1024

    static func unsnappy(_ input: UnsafeRawBufferPointer, limit: Int = decompressedBytesMax) throws(CompressionError) -> [UInt8] {
        if input.count >= 16, Array(input[0..<8]) == xerialMagic {
            var output = [UInt8]()
            var position = 16
            while position < input.count {
                guard position + 4 <= input.count else { throw CompressionError(.snappy, "truncated xerial block length") }
                let length = Int(UInt32(bigEndian: input.loadUnaligned(fromByteOffset: position, as: UInt32.self)))
                position += 4
                guard length <= input.count - position else { throw CompressionError(.snappy, "truncated xerial block") }
                try rawUnsnappy(UnsafeRawBufferPointer(rebasing: input[position..<(position + length)]), into: &output, limit: limit)
                position += length
            }
            return output
        }
        var output = [UInt8]()
        try rawUnsnappy(input, into: &output, limit: limit)
        return output
    }

    static func rawUnsnappy(_ input: UnsafeRawBufferPointer, into output: inout [UInt8], limit: Int) throws(CompressionError) {
        guard let base = input.baseAddress?.assumingMemoryBound(to: CChar.self) else { return }
        var length = 0
        guard snappy_uncompressed_length(base, input.count, &length) == SNAPPY_OK else {
            throw CompressionError(.snappy, "invalid snappy block")
        }
        guard output.count + length <= limit else { throw CompressionError(.snappy, "decompressed size exceeds \(limit) bytes") }
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: length))
        let status = output.withUnsafeMutableBufferPointer { buffer in
            var produced = length
            return snappy_uncompress(base, input.count, UnsafeMutableRawPointer(buffer.baseAddress! + start).assumingMemoryBound(to: CChar.self), &produced)
        }
        guard status == SNAPPY_OK else { throw CompressionError(.snappy, "snappy_uncompress failed") }
    }

    static func snappy(_ input: UnsafeRawBufferPointer) throws(CompressionError) -> [UInt8] {
        var output = xerialMagic
        output += [0, 0, 0, 1, 0, 0, 0, 1]  // version 1, compatible version 1
        var position = 0
        repeat {
            let end = min(input.count, position + xerialBlockBytes)
            let block = UnsafeRawBufferPointer(rebasing: input[position..<end])
            var compressedLength = snappy_max_compressed_length(block.count)
            var compressed = [UInt8](repeating: 0, count: compressedLength)
            var empty: CChar = 0
            let source = block.baseAddress?.assumingMemoryBound(to: CChar.self)
            let status = withUnsafePointer(to: &empty) { emptyPointer in
                compressed.withUnsafeMutableBytes { out in
                    snappy_compress(source ?? emptyPointer, block.count, out.baseAddress!.assumingMemoryBound(to: CChar.self), &compressedLength)
                }
            }
            guard status == SNAPPY_OK else { throw CompressionError(.snappy, "snappy_compress failed") }
            let length = UInt32(compressedLength)
            output += [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
            output += compressed[0..<compressedLength]
            position = end
        } while position < input.count
        return output
    }

    // MARK: lz4 (frame)

    static func unlz4(_ input: UnsafeRawBufferPointer, limit: Int = decompressedBytesMax) throws(CompressionError) -> [UInt8] {
        var context: OpaquePointer?
        guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
            throw CompressionError(.lz4, "cannot create a decompression context")
        }
        defer { LZ4F_freeDecompressionContext(context) }
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var position = 0
        while true {
            var sourceSize = input.count - position
            var destinationSize = chunk.count
            let hint = chunk.withUnsafeMutableBytes { out in
                LZ4F_decompress(context, out.baseAddress, &destinationSize, input.baseAddress.map { $0 + position }, &sourceSize, nil)
            }
            if LZ4F_isError(hint) != 0 { throw CompressionError(.lz4, String(cString: LZ4F_getErrorName(hint))) }
            position += sourceSize
            output.append(contentsOf: chunk[0..<destinationSize])
            if output.count > limit { throw CompressionError(.lz4, "decompressed size exceeds \(limit) bytes") }
            if hint == 0 { return output }
            if position >= input.count && destinationSize == 0 { throw CompressionError(.lz4, "truncated lz4 frame") }
        }
    }

    static func lz4(_ input: UnsafeRawBufferPointer) throws(CompressionError) -> [UInt8] {
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.blockSizeID = LZ4F_max64KB
        preferences.frameInfo.blockMode = LZ4F_blockIndependent
        let bound = LZ4F_compressFrameBound(input.count, &preferences)
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { out in
            LZ4F_compressFrame(out.baseAddress, bound, input.baseAddress, input.count, &preferences)
        }
        if LZ4F_isError(written) != 0 { throw CompressionError(.lz4, String(cString: LZ4F_getErrorName(written))) }
        output.removeLast(bound - written)
        return output
    }

    // MARK: zstd

    static func unzstd(_ input: UnsafeRawBufferPointer, limit: Int = decompressedBytesMax) throws(CompressionError) -> [UInt8] {
        guard let stream = ZSTD_createDStream() else { throw CompressionError(.zstd, "cannot create a stream") }
        defer { ZSTD_freeDStream(stream) }
        ZSTD_initDStream(stream)
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 128 * 1024)
        var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            var produced = 0
            let result = chunk.withUnsafeMutableBytes { out in
                var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let result = ZSTD_decompressStream(stream, &outBuffer, &inBuffer)
                produced = outBuffer.pos
                return result
            }
            if ZSTD_isError(result) != 0 { throw CompressionError(.zstd, String(cString: ZSTD_getErrorName(result))) }
            output.append(contentsOf: chunk[0..<produced])
            if output.count > limit { throw CompressionError(.zstd, "decompressed size exceeds \(limit) bytes") }
            if result == 0 && inBuffer.pos == inBuffer.size { return output }
            if inBuffer.pos == inBuffer.size && produced == 0 { throw CompressionError(.zstd, "truncated zstd frame") }
        }
    }

    static func zstd(_ input: UnsafeRawBufferPointer) throws(CompressionError) -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { out in
            ZSTD_compress(out.baseAddress, bound, input.baseAddress, input.count, 3)
        }
        if ZSTD_isError(written) != 0 { throw CompressionError(.zstd, String(cString: ZSTD_getErrorName(written))) }
        output.removeLast(bound - written)
        return output
    }
}
