import Logging
import NIOCore
import Synchronization

/// Kafka's connection quotas: `max.connections` (broker-wide) and `max.connections.per.ip`
/// (with `max.connections.per.ip.overrides`). A connection over a limit is closed right after
/// accept, before a byte is read (Kafka's acceptor does the same for the per-IP limit).
final class ConnectionLimiter: Sendable {
    struct Statistics: Sendable {
        var active = 0
        var accepted = 0
        var refusedTotal = 0
        var refusedPerIp = 0
        var idleClosed = 0
    }

    private struct State {
        var limits: Limits
        var stats = Statistics()
        var perIp: [String: Int] = [:]
        var refusedSinceLog = 0
        var lastLog: NIODeadline?
    }

    struct Limits: Sendable {
        var maxConnections: Int
        var maxPerIp: Int
        var perIpOverrides: [String: Int]
    }

    private let logger: Logger
    private let state: Mutex<State>

    init(maxConnections: Int, maxPerIp: Int, perIpOverrides: [String: Int], logger: Logger) {
        self.state = Mutex(State(limits: Limits(maxConnections: maxConnections, maxPerIp: maxPerIp, perIpOverrides: perIpOverrides)))
        self.logger = logger
    }

    /// New limits (dynamic broker configs); connections already open are kept, as in Kafka.
    func update(_ limits: Limits) { state.withLock { $0.limits = limits } }

    var statistics: Statistics { state.withLock { $0.stats } }

    enum Refusal: Error, CustomStringConvertible {
        case tooManyConnections(Int)
        case tooManyFromAddress(String, Int)

        var description: String {
            switch self {
            case .tooManyConnections(let limit): "max.connections (\(limit)) reached"
            case .tooManyFromAddress(let ip, let limit): "max.connections.per.ip (\(limit)) reached for \(ip)"
            }
        }
    }

    /// Takes a slot for a connection from `ip`, or says which limit refuses it.
    func acquire(ip: String) -> Refusal? {
        let refusal: Refusal? = state.withLock { s in
            let limitForIp = s.limits.perIpOverrides[ip] ?? s.limits.maxPerIp
            if s.stats.active >= s.limits.maxConnections {
                s.stats.refusedTotal += 1
                return .tooManyConnections(s.limits.maxConnections)
            }
            let current = s.perIp[ip] ?? 0
            if current >= limitForIp {
                s.stats.refusedPerIp += 1
                return .tooManyFromAddress(ip, limitForIp)
            }
            s.perIp[ip] = current + 1
            s.stats.active += 1
            s.stats.accepted += 1
            return nil
        }
        if let refusal { logRefusal(refusal) }
        return refusal
    }

    func release(ip: String) {
        state.withLock { s in
            s.stats.active -= 1
            if let current = s.perIp[ip] {
                if current <= 1 { s.perIp[ip] = nil } else { s.perIp[ip] = current - 1 }
            }
        }
    }

    func idleClosed() { state.withLock { $0.stats.idleClosed += 1 } }

    /// At most one log line per 10 s, with the count since the last one.
    private func logRefusal(_ refusal: Refusal) {
        let now = NIODeadline.now()
        let count: Int? = state.withLock { s in
            s.refusedSinceLog += 1
            if let last = s.lastLog, now - last < .seconds(10) { return nil }
            s.lastLog = now
            defer { s.refusedSinceLog = 0 }
            return s.refusedSinceLog
        }
        if let count {
            logger.warning("refusing connections", metadata: ["reason": "\(refusal)", "refused": "\(count)"])
        }
    }

    /// Installs the slot holder and the idle timer on an accepted connection, or throws the
    /// refusal (the bootstrap then closes the channel without reading from it).
    func admit(_ channel: any Channel, idleTimeout: TimeAmount) throws {
        let ip = channel.remoteAddress?.ipAddress ?? ""
        if let refusal = acquire(ip: ip) { throw refusal }
        do {
            try channel.pipeline.syncOperations.addHandler(ConnectionSlot(limiter: self, ip: ip, idleTimeout: idleTimeout))
        } catch {
            release(ip: ip)
            throw error
        }
    }
}

/// Holds a connection's slot until its pipeline is torn down, and closes the connection after
/// `connections.max.idle.ms` with no read and no write (Kafka's idle-connection reaper).
final class ConnectionSlot: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let limiter: ConnectionLimiter
    private let ip: String
    private let idleTimeout: TimeAmount
    private var released = false
    private var lastActivity = NIODeadline.now()
    private var timer: Scheduled<Void>?

    init(limiter: ConnectionLimiter, ip: String, idleTimeout: TimeAmount) {
        self.limiter = limiter
        self.ip = ip
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { scheduleCheck(context: context, in: idleTimeout) }
    }

    func channelActive(context: ChannelHandlerContext) {
        lastActivity = .now()
        if timer == nil { scheduleCheck(context: context, in: idleTimeout) }
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if !released {
            released = true
            limiter.release(ip: ip)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = .now()
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastActivity = .now()
        context.write(data, promise: promise)
    }

    private func scheduleCheck(context: ChannelHandlerContext, in delay: TimeAmount) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = loopBound.value
            handler.checkIdle(context: context)
        }
    }

    private func checkIdle(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let idleFor = NIODeadline.now() - lastActivity
        if idleFor >= idleTimeout {
            limiter.idleClosed()
            context.close(promise: nil)
        } else {
            scheduleCheck(context: context, in: idleTimeout - idleFor)
        }
    }
}
