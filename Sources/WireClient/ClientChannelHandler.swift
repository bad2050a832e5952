import KafkaWire
import NIOCore

/// One encoded request on its way to the socket.
struct OutboundRequest {
    /// The frame in wire order; the first buffer starts with the size prefix and the request header.
    var frame: [ByteBuffer]
    /// Completed with the response frame (header + body), or nil when no response will come (acks=0).
    var responsePromise: EventLoopPromise<ByteBuffer>?
}

/// Assigns correlation ids in write order and matches responses FIFO (Kafka answers the requests of
/// one connection in order). Any mismatch or transport failure fails every outstanding request.
final class ClientChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = OutboundRequest
    typealias OutboundOut = ByteBuffer

    /// Byte offset of the correlation id in a request frame: size(4) + apiKey(2) + apiVersion(2).
    static let correlationIdOffset = 8

    private var pending = CircularBuffer<(correlationId: Int32, promise: EventLoopPromise<ByteBuffer>)>(initialCapacity: 16)
    private var nextCorrelationId: Int32 = 1
    private var failure: ClientError?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var request = unwrapOutboundIn(data)
        if let failure {
            request.responsePromise?.fail(failure)
            promise?.fail(failure)
            return
        }
        let correlationId = nextCorrelationId
        nextCorrelationId = correlationId == .max ? 1 : correlationId + 1
        request.frame[0].setInteger(correlationId, at: request.frame[0].readerIndex + Self.correlationIdOffset)
        if let responsePromise = request.responsePromise {
            pending.append((correlationId, responsePromise))
        }
        let last = request.frame.count - 1
        for index in 0..<last {
            context.write(wrapOutboundOut(request.frame[index]), promise: nil)
        }
        context.write(wrapOutboundOut(request.frame[last]), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let correlationId = frame.getInteger(at: frame.readerIndex, as: Int32.self) else {
            fail(context: context, ClientError(.protocolViolation, "response frame shorter than its header"))
            return
        }
        guard let head = pending.first, head.correlationId == correlationId else {
            let expected = pending.first.map { "\($0.correlationId)" } ?? "none"
            fail(context: context, ClientError(.protocolViolation, "response correlation id \(correlationId), expected \(expected)"))
            return
        }
        pending.removeFirst()
        head.promise.succeed(frame)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(failure ?? ClientError(.connection, "connection closed by the broker"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let clientError = (error as? ClientError) ?? ClientError(.connection, "connection failed: \(error)")
        fail(context: context, clientError)
    }

    private func fail(context: ChannelHandlerContext, _ error: ClientError) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: ClientError) {
        if failure == nil { failure = error }
        while let entry = pending.popFirst() {
            entry.promise.fail(error)
        }
    }
}
