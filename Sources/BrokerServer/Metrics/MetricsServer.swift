import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The Prometheus endpoint on its own listener and thread (`metrics.listen`): `GET /metrics`
/// renders a scrape, `GET /health` answers 200 while the broker serves and 503 otherwise. A scrape
/// walks every partition, so it runs on this thread, never on a Kafka event loop.
final class MetricsServer: Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: any Channel

    init(host: String, port: Int, scrape: @escaping @Sendable () -> [UInt8], health: @escaping @Sendable () -> (Bool, String), logger: Logger) throws {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(scrape: scrape, health: health))
                }
            }
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        logger.info("metrics endpoint listening", metadata: ["metrics.listen": "\(host):\(channel.localAddress?.port ?? port)"])
    }

    var localAddress: SocketAddress? { channel.localAddress }

    func shutdown() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let scrape: @Sendable () -> [UInt8]
    private let health: @Sendable () -> (Bool, String)
    private var head: HTTPRequestHead?

    init(scrape: @escaping @Sendable () -> [UInt8], health: @escaping @Sendable () -> (Bool, String)) {
        self.scrape = scrape
        self.health = health
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            break  // bodies are ignored (GET only)
        case .end:
            guard let request = head else { return }
            head = nil
            respond(context: context, request: request)
        }
    }

    private func respond(context: ChannelHandlerContext, request: HTTPRequestHead) {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        var status = HTTPResponseStatus.ok
        var contentType = "text/plain; charset=utf-8"
        var body: [UInt8]
        if request.method != .GET && request.method != .HEAD {
            status = .methodNotAllowed
            body = Array("only GET\n".utf8)
        } else if path == "/metrics" {
            contentType = "text/plain; version=0.0.4; charset=utf-8"
            body = scrape()
        } else if path == "/health" {
            let (healthy, text) = health()
            status = healthy ? .ok : .serviceUnavailable
            body = Array((text + "\n").utf8)
        } else {
            status = .notFound
            body = Array("not found: try /metrics or /health\n".utf8)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopBound.value.close(promise: nil) }
        }
    }
}
