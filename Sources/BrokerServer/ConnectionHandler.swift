import Foundation
import BrokerCore
import KafkaWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Security

/// What a connection knows about the listener it was accepted on.
struct ListenerContext: Sendable {
    var name: String
    var securityProtocol: SecurityProtocol
    var sasl: ConnectionStateMachine.Configuration.SASL?
    /// Maps a client certificate's subject DN to a user name (`ssl.principal.mapping.rules`).
    var principalMapper: PrincipalMapper?
    /// TLS cannot sendfile: fetched log slices are read into buffers on this thread pool, never on
    /// the event loop.
    var fileIO: NonBlockingFileIO?
    /// Plaintext listeners (`petrel.fetch.cold.read.offload`): fetched ranges not in the page
    /// cache are brought into it on this thread pool before their sendfile, which would otherwise
    /// block the event loop on the disk.
    var coldReadPool: NIOThreadPool?

    static let plaintext = ListenerContext(name: "PLAINTEXT", securityProtocol: .plaintext)
}

/// One client connection: carries out `ConnectionStateMachine`'s decisions — hands requests to
/// the broker, writes the responses in request order however they complete, holds reads while
/// too many requests are outstanding or the socket is full (backpressure instead of unbounded
/// buffering), and runs the SASL exchange on SASL listeners.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = IOData

    private let broker: Broker
    private let logger: Logger
    private let listener: ListenerContext
    private weak var frameReader: KafkaFrameReader?
    private var state: ConnectionStateMachine
    private var clientAddress = ""

    init(broker: Broker, logger: Logger, maxInFlight: Int = 128, listener: ListenerContext = .plaintext, frameReader: KafkaFrameReader? = nil) {
        self.broker = broker
        self.logger = logger
        self.listener = listener
        self.frameReader = frameReader
        // After a throttle the connection is served one request at a time for the quota's window.
        let quotaWindowMs = broker.clientQuotas.windowMs * Int64(broker.clientQuotas.windowSamples)
        self.state = ConnectionStateMachine(
            configuration: .init(maxInFlight: maxInFlight, sasl: listener.sasl, throttledSerialPeriod: .milliseconds(quotaWindowMs)))
        frameReader?.setLimits(frameBytesMax: state.frameBytesMax, acceptsShortFrames: state.acceptsShortFrames)
    }

    /// The connections on this channel's event loop (counted while active).
    private var loopConnections: EventLoopConnections?

    func channelActive(context: ChannelHandlerContext) {
        clientAddress = context.remoteAddress.map { "\($0)" } ?? ""
        let counter = EventLoopConnections.of(context.eventLoop)
        counter.opened(on: context.eventLoop)
        loopConnections = counter
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        loopConnections?.closed(on: context.eventLoop)
        loopConnections = nil
        for action in state.closed() { Self.release(action) }
        context.fireChannelInactive()
    }

    /// Large, and other connections share the event loop: written in pieces (`writePaced`).
    private func paces(_ frame: ResponseFrame) -> Bool {
        frame.byteCount > Self.pacedFrameBytes && (loopConnections?.count ?? 0) > 1
    }

    /// mTLS: the principal is the client certificate's subject DN, mapped by
    /// `ssl.principal.mapping.rules` (Kafka's default: the full DN). Read at the first request,
    /// when the handshake is necessarily complete.
    private var tlsPrincipalPending = true

    private func resolveTLSPrincipal(context: ChannelHandlerContext) {
        tlsPrincipalPending = false
        guard let mapper = listener.principalMapper else { return }
        let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
        if let certificate = handler?.peerCertificate, let der = try? certificate.toDERBytes(), let dn = DistinguishedName.subject(ofCertificate: der) {
            state.tlsAuthenticated(principal: "User:" + mapper.map(dn))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if tlsPrincipalPending { resolveTLSPrincipal(context: context) }
        perform(state.frameReceived(frame, now: .now()), context: context)
    }

    private func perform(_ action: ConnectionStateMachine.FrameAction, context: ChannelHandlerContext) {
        frameReader?.setLimits(frameBytesMax: state.frameBytesMax, acceptsShortFrames: state.acceptsShortFrames)
        switch action {
        case .ignore, .hold:
            return
        case .close(let reason):
            logger.info("closing connection", metadata: ["client": "\(clientAddress)", "reason": "\(reason)"])
            for action in state.closed() { Self.release(action) }
            context.close(promise: nil)
        case .flush:
            flushReady(context: context)
        case .dispatch(let sequence, let header, let body):
            var requestContext = RequestContext(
                header: header, eventLoop: context.eventLoop, allocator: context.channel.allocator, clientAddress: clientAddress)
            requestContext.listenerName = listener.name
            requestContext.principal = state.principal
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            if broker.clientQuotas.hasRequestQuotas { requestContext.requestTiming = RequestTiming(started: .now()) }
            defer { if let timing = requestContext.requestTiming { chargeRequestTime(context: context, timing, requestContext) } }
            broker.handle(requestContext, body: body) { action in
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
    }

    /// KIP-124 `request_percentage`: the time this event loop spent on the request, as a share of
    /// one thread over the quota window. What its response's encoding has not charged yet (writing
    /// that response; or all of it when the response completes later) is charged when the handling
    /// returns; past the quota the connection is muted for the throttle time like a byte-rate
    /// throttle (`RequestTiming`).
    private func chargeRequestTime(context: ChannelHandlerContext, _ timing: RequestTiming, _ request: RequestContext) {
        let throttleMs = timing.chargeRest(broker.clientQuotas, user: request.quotaUser, clientId: request.header.clientId ?? "")
        guard throttleMs > 0, !state.isClosed else { return }
        state.throttled(milliseconds: throttleMs, now: .now())
        scheduleUnmute(context: context)
    }

    private func responseReady(context: ChannelHandlerContext, sequence: UInt64, action: ResponseAction) {
        guard state.responseReady(sequence: sequence, action: action, now: .now()) else {
            Self.release(action)
            return
        }
        scheduleUnmute(context: context)
        flushReady(context: context)
        processHeld(context: context)
    }

    /// Set while `processHeld` runs: a response completing synchronously inside it does not recurse.
    private var processingHeld = false

    /// Processes the frames held while throttled, as far as the state machine allows, then
    /// resumes reading once none are left.
    private func processHeld(context: ChannelHandlerContext) {
        guard !processingHeld else { return }
        processingHeld = true
        defer { processingHeld = false }
        while let action = state.nextHeld(now: .now()) {
            perform(action, context: context)
        }
        if state.shouldResumeRead(isWritable: context.channel.isWritable) { context.read() }
    }

    /// Client quotas: the deadline the unmute timer is set for.
    private var scheduledUnmute: NIODeadline?

    private func scheduleUnmute(context: ChannelHandlerContext) {
        guard let deadline = state.muteDeadline, scheduledUnmute.map({ $0 < deadline }) ?? true else { return }
        scheduledUnmute = deadline
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            guard handler.scheduledUnmute == deadline else { return }
            handler.scheduledUnmute = nil
            if handler.state.unmuteIfDue(now: .now()) {
                handler.processHeld(context: context)
            } else {
                handler.scheduleUnmute(context: context)
            }
        }
    }

    /// A response whose file regions are being read off the event loop (TLS, cold reads) or that is
    /// being written piece by piece; later responses wait.
    private var frameInProgress = false

    /// Writes every response that is next in order, then resumes a held read if allowed.
    private func flushReady(context: ChannelHandlerContext) {
        var wrote = false
        while !frameInProgress, let next = state.nextToSend() {
            switch next {
            case .send(let frame):
                if listener.securityProtocol.usesTLS, let fileIO = listener.fileIO, let regions = Self.fileRegions(frame) {
                    // TLS encrypts bytes, it cannot sendfile: every region is read.
                    if wrote { context.flush() }
                    wrote = false
                    readRegionsThenWrite(context: context, frame, regions, fileIO: fileIO)
                } else if let coldReadPool = listener.coldReadPool, let cold = Self.coldRegions(frame) {
                    if wrote { context.flush() }
                    wrote = false
                    warmRegionsThenWrite(context: context, frame, cold, pool: coldReadPool)
                } else if paces(frame) {
                    if wrote { context.flush() }
                    wrote = false
                    writePaced(context: context, frame)
                } else {
                    write(context: context, frame)
                    wrote = true
                }
            case .noResponse:
                break
            case .close(let reason):
                logger.info("closing connection", metadata: ["client": "\(clientAddress)", "reason": "\(reason)"])
                if wrote { context.flush() }
                for action in state.closed() { Self.release(action) }
                context.close(promise: nil)
                return
            }
        }
        if wrote { context.flush() }
        if state.shouldResumeRead(isWritable: context.channel.isWritable) { context.read() }
    }

    /// The indices of the frame's file regions; nil when it has none.
    private static func fileRegions(_ frame: ResponseFrame) -> [Int]? {
        let indices = frame.chunks.indices.filter { if case .file = frame.chunks[$0] { true } else { false } }
        return indices.isEmpty ? nil : indices
    }

    /// The indices of the frame's file regions not fully in the page cache; nil when all are
    /// resident (or there are none) and sendfile cannot block.
    private static func coldRegions(_ frame: ResponseFrame) -> [Int]? {
        var cold: [Int]?
        for (index, chunk) in frame.chunks.enumerated() {
            guard case .file(let region) = chunk else { continue }
            let resident = (try? region.fileHandle.withUnsafeFileDescriptor { fd in
                PageCacheResidency.isResident(fd: fd, offset: region.readerIndex, length: region.readableBytes)
            }) ?? false
            if !resident { cold = (cold ?? []) + [index] }
        }
        return cold
    }

    /// TLS encrypts bytes and cannot sendfile: reads the frame's file regions at `indices` on a
    /// thread pool and replaces them with their bytes, then writes the frame in its turn and
    /// carries on with the ones after it.
    private func readRegionsThenWrite(
        context: ChannelHandlerContext, _ frame: ResponseFrame, _ indices: [Int], fileIO: NonBlockingFileIO
    ) {
        frameInProgress = true
        let eventLoop = context.eventLoop
        let allocator = context.channel.allocator
        let reads: [EventLoopFuture<ByteBuffer>] = indices.map { index in
            guard case .file(let region) = frame.chunks[index] else { return eventLoop.makeSucceededFuture(ByteBuffer()) }
            return fileIO.read(fileRegion: region, allocator: allocator, eventLoop: eventLoop)
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: eventLoop)
        EventLoopFuture.whenAllComplete(reads, on: eventLoop).whenComplete { outcome in
            let (handler, context) = loopBound.value
            handler.frameInProgress = false
            guard case .success(let results) = outcome, !handler.state.isClosed else {
                frame.releaseFileRegions()
                return
            }
            var written = frame
            for (index, result) in zip(indices, results) {
                guard case .success(let buffer) = result, case .file(let region) = frame.chunks[index] else {
                    return handler.closeAfterFailedRead(context: context, frame)
                }
                // The region is replaced by its bytes: let go of its borrowed descriptor now.
                frame.lease?.release(region)
                written.chunks[index] = .bytes(buffer)
            }
            handler.send(context: context, written)
        }
    }

    /// Cold reads (KAFKA-7504): brings the frame's file regions at `indices`, which are not in the
    /// page cache, into it on a thread pool, then writes the frame in its turn, still by sendfile,
    /// and carries on with the ones after it.
    ///
    /// The regions stay sendfile regions: reading them into buffers instead (as TLS must) costs
    /// fresh memory for every region and two more copies of every byte; on two cores a tail
    /// consumer's p99 during a cold catch-up was 3–5 ms that way, 1.5–2.5 ms this way.
    /// If the kernel evicts the pages between the warming and the sendfile, the sendfile reads
    /// them again on the event loop: slower, never wrong.
    private func warmRegionsThenWrite(context: ChannelHandlerContext, _ frame: ResponseFrame, _ indices: [Int], pool: NIOThreadPool) {
        frameInProgress = true
        let eventLoop = context.eventLoop
        let regions: [FileRegion] = indices.compactMap { index in
            if case .file(let region) = frame.chunks[index] { region } else { nil }
        }
        let warmed = pool.runIfActive(eventLoop: eventLoop) {
            try regions.map { region in
                try region.fileHandle.withUnsafeFileDescriptor { fd in
                    try PageCacheResidency.warm(fd: fd, offset: region.readerIndex, length: region.readableBytes)
                }
            }
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: eventLoop)
        warmed.whenComplete { outcome in
            let (handler, context) = loopBound.value
            handler.frameInProgress = false
            guard !handler.state.isClosed else {
                frame.releaseFileRegions()
                return
            }
            guard case .success(let bytes) = outcome else { return handler.closeAfterFailedRead(context: context, frame) }
            for count in bytes { PageCacheResidency.countOffloaded(bytes: count) }
            handler.send(context: context, frame)
        }
    }

    /// A fetched file region could not be read: the log changed under the read (a deleted
    /// segment). The connection is closed; the client reconnects and fetches again.
    private func closeAfterFailedRead(context: ChannelHandlerContext, _ frame: ResponseFrame) {
        logger.info("closing connection: fetch read failed", metadata: ["client": "\(clientAddress)"])
        frame.releaseFileRegions()
        for action in state.closed() { Self.release(action) }
        context.close(promise: nil)
    }

    /// Writes a frame whose regions were read, then carries on with the responses after it.
    private func send(context: ChannelHandlerContext, _ frame: ResponseFrame) {
        if paces(frame) {
            writePaced(context: context, frame)
        } else {
            write(context: context, frame)
            context.flush()
            flushReady(context: context)
        }
    }

    /// The most one write (sendfile or writev) of a large response moves before the event loop
    /// serves its other connections.
    static let writePieceBytes = 256 * 1024
    /// Responses over this size are written in pieces.
    static let pacedFrameBytes = 2 * writePieceBytes
    /// The pause between pieces that lets the event loop poll its other sockets.
    static let pieceYield = TimeAmount.microseconds(20)

    /// Writes a large response piece by piece, going round the event loop between pieces (only
    /// when other connections share the loop: `paces`).
    ///
    /// A socket whose reader keeps up (a catch-up consumer) never fills, and NIO's flush goes on
    /// to the next buffer or file region whenever one is written completely, so a 16 MiB fetch
    /// response was one flush: every other connection on the event loop waited for all of it (a
    /// tail consumer's p99 went from 0.5 to 5.8 ms while a consumer read hot data at 1.6 GB/s).
    private func writePaced(context: ChannelHandlerContext, _ frame: ResponseFrame) {
        var pieces: [IOData] = []
        for chunk in frame.chunks {
            switch chunk {
            case .bytes(var buffer):
                while buffer.readableBytes > Self.writePieceBytes {
                    pieces.append(.byteBuffer(buffer.readSlice(length: Self.writePieceBytes)!))
                }
                pieces.append(.byteBuffer(buffer))
            case .file(var region):
                while region.readableBytes > Self.writePieceBytes {
                    let end = region.readerIndex + Self.writePieceBytes
                    pieces.append(.fileRegion(FileRegion(fileHandle: region.fileHandle, readerIndex: region.readerIndex, endIndex: end)))
                    region.moveReaderIndex(forwardBy: Self.writePieceBytes)
                }
                pieces.append(.fileRegion(region))
            }
        }
        frameInProgress = true
        EventLoopConnections.countPaced()
        writePiece(context: context, frame: frame, pieces: pieces, index: 0)
    }

    private func writePiece(context: ChannelHandlerContext, frame: ResponseFrame, pieces: [IOData], index: Int) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { result in
            let (handler, context) = loopBound.value
            switch result {
            case .success where index + 1 < pieces.count:
                // A task queued with `execute` (or due now) runs in the same loop tick, before any
                // socket event: NIO drains its task queue first. One due a little later ends the
                // tick, so the event loop polls its sockets and serves what is ready in between.
                context.eventLoop.scheduleTask(in: Self.pieceYield) {
                    let (handler, context) = loopBound.value
                    handler.writePiece(context: context, frame: frame, pieces: pieces, index: index + 1)
                }
            case .success:
                frame.releaseFileRegions()
                handler.frameInProgress = false
                handler.flushReady(context: context)
            case .failure:
                // The connection is closing: its pending responses are released there.
                frame.releaseFileRegions()
                handler.frameInProgress = false
            }
        }
        context.writeAndFlush(wrapOutboundOut(pieces[index]), promise: promise)
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
                    frame.releaseFileRegions()
                }
                context.write(wrapOutboundOut(data), promise: promise)
            } else {
                context.write(wrapOutboundOut(data), promise: nil)
            }
        }
    }

    private static func release(_ action: ResponseAction) {
        if case .send(let frame) = action { frame.releaseFileRegions() }
    }

    // Backpressure: hold reads while too many requests are outstanding or the socket is full.
    func read(context: ChannelHandlerContext) {
        if state.readRequested(isWritable: context.channel.isWritable) { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if state.shouldResumeRead(isWritable: context.channel.isWritable) { context.read() }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is KafkaFrameReader.FrameTooLarge || error is KafkaFrameReader.ReadTimeout {
            logger.warning("closing connection", metadata: ["client": "\(clientAddress)", "reason": "\(error)"])
        } else if let ioError = error as? IOError, [104, 32].contains(ioError.errnoCode) {
            // ECONNRESET / EPIPE: the client went away.
        } else if error is NIOSSLError || error is BoringSSLError {
            // A client speaking plaintext to a TLS port, a bad certificate, a reset mid-handshake.
            logger.info("TLS error, closing connection", metadata: ["client": "\(clientAddress)", "error": "\(error)"])
        } else {
            logger.info("connection error", metadata: ["client": "\(clientAddress)", "error": "\(error)"])
        }
        context.close(promise: nil)
    }
}
