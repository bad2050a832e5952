import Logging
import NIOCore

/// Splits the byte stream into Kafka request frames (`int32 size` + size bytes), with bounded
/// memory whatever the clients do:
/// - A size above `socket.request.max.bytes` (or below 8) is a protocol violation: the connection
///   is closed without buffering the frame.
/// - Complete frames inside a socket read are passed on as zero-copy slices, except behind TLS
///   (`copiesFrames`): NIOSSL decrypts every read into one reused buffer, and a slice kept past
///   `channelRead` (a produce waiting for its append) makes its next `SSL_read` copy that whole
///   buffer, grown to everything one read cycle decrypted (copy-on-write), so there frames are
///   copied out once instead.
/// - A partly received frame is copied into a buffer that grows with the bytes that arrive (never
///   sized from the length prefix alone) and charged to the shared `RequestMemoryBudget`
///   (`queued.max.request.bytes`). While the budget is used up, a connection receiving a frame over
///   `smallFrameBytes` stops reading (backpressure); small frames may always complete, so ordinary
///   clients keep being served while large uploads wait.
/// - A partly received frame that makes no progress for `request.read.timeout.ms` while the broker
///   is reading closes the connection and frees its bytes. Time spent paused by the broker
///   (budget, pipelining limit, full socket) does not count against the client.
final class KafkaFrameReader: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    struct FrameTooLarge: Error, CustomStringConvertible {
        var size: Int32
        var limit: Int
        var description: String {
            size < 8 ? "invalid request frame size \(size)" : "request frame of \(size) bytes exceeds socket.request.max.bytes \(limit)"
        }
    }

    struct ReadTimeout: Error, CustomStringConvertible {
        var received: Int
        var size: Int
        var timeout: TimeAmount
        var description: String {
            "partial request (\(received) of \(size) bytes) made no progress for \(timeout.nanoseconds / 1_000_000) ms (request.read.timeout.ms)"
        }
    }

    /// Frames up to this size may always be read to completion, budget or not.
    static let smallFrameBytes = 64 * 1024

    /// The configured `socket.request.max.bytes`.
    private let configuredMaxFrameBytes: Int
    /// The limit in force: lower before SASL authentication (set by the connection).
    var maxFrameBytes: Int
    /// Smallest frame accepted: 8 (a request header), 0 while legacy SASL tokens are expected.
    var minFrameBytes: Int32 = 8
    private let budget: RequestMemoryBudget
    private let readTimeout: TimeAmount
    private let logger: Logger
    /// Copy complete frames out of the input instead of slicing it (see the type's comment).
    private let copiesFrames: Bool

    /// The incomplete frame, size prefix included.
    private var partial: ByteBuffer?
    /// Its declared size once the prefix is complete, else -1.
    private var frameSize = -1
    /// Bytes charged to the budget for `partial`.
    private var charged = 0
    private var lastProgress = NIODeadline.now()
    /// A read was passed down and its data has not arrived yet.
    private var readOutstanding = false
    /// A read was withheld because the budget is used up.
    private var waitingForBudget = false
    private var timer: Scheduled<Void>?
    private var failed = false

    init(maxFrameBytes: Int, budget: RequestMemoryBudget, readTimeout: TimeAmount, copiesFrames: Bool = false, logger: Logger) {
        self.configuredMaxFrameBytes = maxFrameBytes
        self.copiesFrames = copiesFrames
        self.maxFrameBytes = maxFrameBytes
        self.budget = budget
        self.readTimeout = readTimeout
        self.logger = logger
    }

    private var id: ObjectIdentifier { ObjectIdentifier(self) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var input = unwrapInboundIn(data)
        lastProgress = .now()
        do {
            if partial != nil {
                try absorb(&input, context: context)
                if partial != nil || failed { return }
            }
            while input.readableBytes >= 4 {
                let size = input.getInteger(at: input.readerIndex, as: Int32.self)!
                try validate(size)
                guard input.readableBytes >= 4 + Int(size) else { break }
                input.moveReaderIndex(forwardBy: 4)
                var frame = input.readSlice(length: Int(size))!
                if copiesFrames {
                    var copy = context.channel.allocator.buffer(capacity: Int(size))
                    copy.writeBuffer(&frame)
                    frame = copy
                }
                context.fireChannelRead(wrapInboundOut(frame))
                if failed { return }
            }
            if input.readableBytes > 0 {
                var buffer = context.channel.allocator.buffer(capacity: max(input.readableBytes, 4))
                if input.readableBytes >= 4 { frameSize = Int(input.getInteger(at: input.readerIndex, as: Int32.self)!) }
                charge(input.readableBytes)
                buffer.writeBuffer(&input)
                partial = buffer
                scheduleTimer(context: context, at: lastProgress + readTimeout)
            }
        } catch {
            failed = true
            discardPartial()
            context.fireErrorCaught(error)
        }
    }

    private func validate(_ size: Int32) throws {
        guard size >= minFrameBytes, Int(size) <= maxFrameBytes else { throw FrameTooLarge(size: size, limit: maxFrameBytes) }
    }

    /// Appends what belongs to the partial frame; passes the frame on once complete.
    private func absorb(_ input: inout ByteBuffer, context: ChannelHandlerContext) throws {
        guard var buffer = partial else { return }
        partial = nil  // unique reference while appending: growth reallocates in place
        if frameSize < 0 {
            let take = min(4 - buffer.readableBytes, input.readableBytes)
            var prefix = input.readSlice(length: take)!
            buffer.writeBuffer(&prefix)
            charge(take)
            if buffer.readableBytes == 4 {
                let size = buffer.getInteger(at: buffer.readerIndex, as: Int32.self)!
                try validate(size)
                frameSize = Int(size)
            }
        }
        if frameSize >= 0 {
            let take = min(4 + frameSize - buffer.readableBytes, input.readableBytes)
            if take > buffer.writableBytes {
                // Grow geometrically with what has arrived, capped at the frame: memory follows
                // the bytes received, not the length prefix.
                let capacity = min(4 + frameSize, max(buffer.capacity * 2, buffer.readableBytes + take))
                buffer.reserveCapacity(capacity)
            }
            var chunk = input.readSlice(length: take)!
            buffer.writeBuffer(&chunk)
            charge(take)
            if buffer.readableBytes == 4 + frameSize {
                buffer.moveReaderIndex(forwardBy: 4)
                frameSize = -1
                releaseCharge()
                timer?.cancel()
                timer = nil
                context.fireChannelRead(wrapInboundOut(buffer))
                return
            }
        }
        partial = buffer
    }

    /// Applies the connection's current limits (nil = `socket.request.max.bytes`).
    func setLimits(frameBytesMax: Int?, acceptsShortFrames: Bool) {
        maxFrameBytes = min(frameBytesMax ?? configuredMaxFrameBytes, configuredMaxFrameBytes)
        minFrameBytes = acceptsShortFrames ? 0 : 8
    }

    private func charge(_ bytes: Int) {
        charged += bytes
        budget.charge(bytes)
    }

    private func releaseCharge() {
        let bytes = charged
        charged = 0
        budget.release(bytes, owner: id)
    }

    private func discardPartial() {
        partial = nil
        frameSize = -1
        releaseCharge()
        timer?.cancel()
        timer = nil
        if waitingForBudget {
            waitingForBudget = false
            budget.cancelWait(id)
        }
    }

    // MARK: Backpressure

    func read(context: ChannelHandlerContext) {
        guard !waitingForBudget else { return }
        if partial != nil, frameSize > Self.smallFrameBytes {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            let (admission, logExhausted) = budget.admit(id) {
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.budgetHasRoom(context: context)
                }
            }
            if case .wait = admission {
                waitingForBudget = true
                if logExhausted {
                    logger.warning(
                        "queued.max.request.bytes used up: pausing reads from connections receiving large requests",
                        metadata: ["limit": "\(budget.limit)", "used": "\(budget.used)"])
                }
                return
            }
        }
        if !readOutstanding {
            readOutstanding = true
            lastProgress = .now()
        }
        context.read()
    }

    private func budgetHasRoom(context: ChannelHandlerContext) {
        guard waitingForBudget else { return }
        waitingForBudget = false
        read(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readOutstanding = false
        context.fireChannelReadComplete()
    }

    // MARK: Stalled partial requests

    private func scheduleTimer(context: ChannelHandlerContext, at deadline: NIODeadline) {
        timer?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.checkProgress(context: context)
        }
    }

    private func checkProgress(context: ChannelHandlerContext) {
        timer = nil
        guard let buffer = partial, !failed else { return }
        let now = NIODeadline.now()
        // Only a connection the broker is reading from can be blamed for not sending.
        let blamed = readOutstanding && !waitingForBudget
        if blamed && now - lastProgress >= readTimeout {
            let error = ReadTimeout(received: buffer.readableBytes, size: 4 + max(frameSize, 0), timeout: readTimeout)
            failed = true
            discardPartial()
            context.fireErrorCaught(error)
            return
        }
        scheduleTimer(context: context, at: blamed ? lastProgress + readTimeout : now + readTimeout)
    }

    func channelInactive(context: ChannelHandlerContext) {
        discardPartial()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        discardPartial()
    }
}
