import BrokerCore
import KafkaWire
import Logging
import NIOCore

/// One client connection: decodes request headers, hands requests to the broker, and writes the
/// responses strictly in request order (the Java client checks correlation ids FIFO), however they
/// complete. Pipelining is bounded: past `maxInFlight` outstanding requests, or while the socket
/// is not writable, it stops reading (backpressure instead of unbounded buffering).
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = IOData

    private let broker: Broker
    private let logger: Logger
    private let maxInFlight: Int
    private var nextSequence: UInt64 = 0
    private var nextToSend: UInt64 = 0
    private var ready: [UInt64: ResponseAction] = [:]
    private var readPending = false
    private var isActive = true
    private var clientAddress = ""
    /// Client quotas: reading is paused until then (Kafka mutes a throttled channel).
    private var mutedUntil: NIODeadline?
    /// Client quotas: once throttled, a connection has its requests handled one at a time, as Kafka's
    /// processor does for every connection, so frames read in one burst cannot outrun the throttle;
    /// they wait here.
    private var serialize = false
    private var heldFrames: [ByteBuffer] = []

    init(broker: Broker, logger: Logger, maxInFlight: Int = 128) {
        self.broker = broker
        self.logger = logger
        self.maxInFlight = maxInFlight
    }

    private var inFlight: Int { Int(nextSequence - nextToSend) }
    private var canRead: Bool { inFlight < maxInFlight && mutedUntil == nil && heldFrames.isEmpty }
    private var mustHold: Bool { mutedUntil != nil || (serialize && inFlight > 0) || !heldFrames.isEmpty }

    func channelActive(context: ChannelHandlerContext) {
        clientAddress = context.remoteAddress.map { "\($0)" } ?? ""
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        heldFrames.removeAll()
        for action in ready.values { Self.release(action) }
        ready.removeAll()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if mustHold {
            heldFrames.append(frame)
            return
        }
        dispatch(context: context, frame)
    }

    /// Handles held frames while the connection may (not muted, not waiting on a throttled request).
    private func drainHeld(context: ChannelHandlerContext) {
        while !heldFrames.isEmpty && isActive && mutedUntil == nil && !(serialize && inFlight > 0) {
            dispatch(context: context, heldFrames.removeFirst())
        }
    }

    private func dispatch(context: ChannelHandlerContext, _ frame: ByteBuffer) {
        var frame = frame
        let header: RequestHeader
        do {
            header = try RequestHeader.read(from: &frame)
        } catch {
            logger.info("closing connection: unreadable request header", metadata: ["client": "\(clientAddress)", "error": "\(error)"])
            context.close(promise: nil)
            return
        }
        let sequence = nextSequence
        nextSequence += 1
        let requestContext = RequestContext(
            header: header, eventLoop: context.eventLoop, allocator: context.channel.allocator, clientAddress: clientAddress)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        broker.handle(requestContext, body: frame) { action in
            if eventLoop.inEventLoop {
                let (handler, context) = loopBound.value
                handler.responseReady(context: context, sequence: sequence, action: action)
            } else {
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.responseReady(context: context, sequence: sequence, action: action)
                }
            }
        }
    }

    private func responseReady(context: ChannelHandlerContext, sequence: UInt64, action: ResponseAction) {
        guard isActive else {
            Self.release(action)
            return
        }
        ready[sequence] = action
        var wrote = false
        while let next = ready.removeValue(forKey: nextToSend) {
            nextToSend += 1
            switch next {
            case .send(let frame):
                write(context: context, frame)
                wrote = true
                if frame.throttleMs > 0 { serialize = true }  // for the rest of the connection
                if frame.throttleMs > 0 { mute(context: context, milliseconds: frame.throttleMs) }
            case .noResponse:
                break
            case .close(let reason):
                logger.info("closing connection", metadata: ["client": "\(clientAddress)", "reason": "\(reason)"])
                if wrote { context.flush() }
                isActive = false
                for action in ready.values { Self.release(action) }
                ready.removeAll()
                context.close(promise: nil)
                return
            }
        }
        if wrote { context.flush() }
        drainHeld(context: context)
        if readPending && canRead && context.channel.isWritable {
            readPending = false
            context.read()
        }
    }

    /// Stops reading requests for `milliseconds` (a throttled client), then resumes.
    private func mute(context: ChannelHandlerContext, milliseconds: Int) {
        let until = NIODeadline.now() + .milliseconds(Int64(milliseconds))
        if let current = mutedUntil, current >= until { return }
        mutedUntil = until
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(deadline: until) {
            let (handler, context) = loopBound.value
            guard let muted = handler.mutedUntil, muted <= .now() else { return }
            handler.mutedUntil = nil
            handler.drainHeld(context: context)
            if handler.isActive && handler.readPending && handler.canRead && context.channel.isWritable {
                handler.readPending = false
                context.read()
            }
        }
    }

    private func write(context: ChannelHandlerContext, _ frame: ResponseFrame) {
        let count = frame.chunks.count
        for (index, chunk) in frame.chunks.enumerated() {
            let data: IOData
            switch chunk {
            case .bytes(let buffer): data = .byteBuffer(buffer)
            case .file(let region): data = .fileRegion(region)
            }
            if index == count - 1 {
                let promise = context.eventLoop.makePromise(of: Void.self)
                promise.futureResult.whenComplete { _ in
                    // Keeps the segment files open until sendfile is done, then lets go of the
                    // borrowed descriptors.
                    withExtendedLifetime(frame.retained) { frame.releaseFileRegions() }
                }
                context.write(wrapOutboundOut(data), promise: promise)
            } else {
                context.write(wrapOutboundOut(data), promise: nil)
            }
        }
    }

    private static func release(_ action: ResponseAction) {
        if case .send(let frame) = action { withExtendedLifetime(frame.retained) { frame.releaseFileRegions() } }
    }

    // Backpressure: hold reads while too many requests are outstanding or the socket is full.
    func read(context: ChannelHandlerContext) {
        if canRead && context.channel.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && readPending && canRead {
            readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is KafkaFrameReader.FrameTooLarge || error is KafkaFrameReader.ReadTimeout {
            logger.warning("closing connection", metadata: ["client": "\(clientAddress)", "reason": "\(error)"])
        } else if let ioError = error as? IOError, [104, 32].contains(ioError.errnoCode) {
            // ECONNRESET / EPIPE: the client went away.
        } else {
            logger.info("connection error", metadata: ["client": "\(clientAddress)", "error": "\(error)"])
        }
        context.close(promise: nil)
    }
}
