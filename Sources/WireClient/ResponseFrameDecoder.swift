public import NIOCore

/// Splits the inbound byte stream into Kafka response frames: `int32 size | payload`.
///
/// Emits each payload (response header + body, without the size prefix) as one `ByteBuffer`
/// slice. Sizes are bounded so a corrupt or hostile peer cannot make the client buffer gigabytes.
public struct ResponseFrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = ByteBuffer

    /// The largest payload accepted. Kafka's `fetch.max.bytes` default is 50 MiB; leave headroom.
    public static let frameBytesMax = 256 << 20

    public let frameBytesMax: Int

    /// - Parameter frameBytesMax: Payloads larger than this fail the channel with `ClientError`.
    public init(frameBytesMax: Int = ResponseFrameDecoder.frameBytesMax) {
        self.frameBytesMax = frameBytesMax
    }

    /// Pure framing step, shared by the channel handler and tests: `nil` when more bytes are needed.
    ///
    /// - Throws: `ClientError` (`.protocolViolation`) for a negative or oversized length.
    public static func nextFrame(from buffer: inout ByteBuffer, frameBytesMax: Int = ResponseFrameDecoder.frameBytesMax) throws(ClientError) -> ByteBuffer? {
        guard let size = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return nil }
        guard size >= 0, Int(size) <= frameBytesMax else {
            throw ClientError(.protocolViolation, "response frame size \(size) outside 0...\(frameBytesMax)")
        }
        guard buffer.readableBytes >= 4 + Int(size) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(size))
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.nextFrame(from: &buffer, frameBytesMax: frameBytesMax) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
