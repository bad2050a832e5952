import Logging
import NIOCore

/// The listener's answer to accept errors (EMFILE/ENFILE when the open-files limit is reached,
/// ENOBUFS/ENOMEM): stop accepting for a growing interval (10 ms doubling to 1 s, reset by the next
/// successful accept), and say so in the log at most once per 10 s with the number of errors since.
///
/// NIO's own `AcceptBackoffHandler` does not help on the plain `bind` path: after a failed
/// accept the server channel keeps its read pending and stays registered for readability, so the
/// level-triggered listen socket wakes the loop again at once and it spins a core calling accept.
/// Turning `autoRead` off unregisters it until the pause is over.
final class AcceptBackoff: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    static let initialDelay = TimeAmount.milliseconds(10)
    static let maximumDelay = TimeAmount.seconds(1)
    static let logInterval = TimeAmount.seconds(10)

    private let logger: Logger
    private var nextDelay = AcceptBackoff.initialDelay
    private var paused = false
    private var errorsSinceLog = 0
    private var lastLog: NIODeadline?

    init(logger: Logger) {
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        nextDelay = Self.initialDelay
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // EMFILE, ENFILE, ENOBUFS, ENOMEM: NIO keeps the listener open on these.
        guard let ioError = error as? IOError, [24, 23, 105, 12].contains(ioError.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        errorsSinceLog += 1
        let delay = nextDelay
        if !paused {
            paused = true
            nextDelay = min(nextDelay * 2, Self.maximumDelay)
            try? context.channel.syncOptions?.setOption(.autoRead, value: false)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
                let (handler, context) = loopBound.value
                handler.paused = false
                try? context.channel.syncOptions?.setOption(.autoRead, value: true)
            }
        }
        let now = NIODeadline.now()
        if let lastLog, now - lastLog < Self.logInterval { return }
        let tooManyFiles = ioError.errnoCode == 24 || ioError.errnoCode == 23
        logger.error(
            tooManyFiles
                ? "cannot accept connections: open-files limit reached (raise `ulimit -n`); pausing accepts and retrying"
                : "cannot accept connections; pausing accepts and retrying",
            metadata: ["error": "\(ioError)", "errors": "\(errorsSinceLog)", "retry_in_ms": "\(delay.nanoseconds / 1_000_000)"])
        errorsSinceLog = 0
        lastLog = now
    }
}
