import BrokerCore
import CommitLog
import DiskIO
import GroupCoordination
import Foundation
import KafkaWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Security
import Prometheus
import Synchronization
import URingIO

/// The composition root: picks the IO engine, recovers the logs, starts the broker and the
/// SwiftNIO listener, runs periodic storage tasks, and shuts everything down in order.
public final class KafkaServer: @unchecked Sendable {
    public let configuration: BrokerConfiguration
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    /// Reads fetched log slices for TLS connections (no sendfile under TLS), off the event loops.
    private let tlsReadPool = NIOThreadPool(numberOfThreads: 2)
    /// Brings fetched log ranges that are not in the page cache into it before their sendfile
    /// (`petrel.fetch.cold.read.offload`).
    private static let coldReadThreads = 2
    private let coldReadPool = NIOThreadPool(numberOfThreads: coldReadThreads)
    private var channel: (any Channel)?
    private var channels: [(listener: Listener, channel: any Channel)] = []
    private var broker: Broker?
    private var maintenance: Thread?
    private let stopMaintenance = StopFlag()
    public private(set) var ioEngineName = "posix"
    private var metricsServer: MetricsServer?
    private var collector: MetricsCollector?
    private let serving = ServingFlag()

    public init(configuration: BrokerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, System.coreCount))
    }

    /// The bound address of the first listener (the real port when 0 was asked for).
    public var localAddress: SocketAddress? { channel?.localAddress }

    /// Every listener with the port it bound.
    public var boundListeners: [(listener: Listener, port: Int)] {
        channels.map { ($0.listener, $0.channel.localAddress?.port ?? $0.listener.port) }
    }

    /// Raises the soft `RLIMIT_NOFILE` to the hard limit (as Kafka's start scripts expect an operator
    /// to) and returns the resulting soft limit (`Int.max` when unlimited).
    static func raiseOpenFileLimit(logger: Logger) -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return .max }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 {
                limit = raised
            } else {
                logger.warning("could not raise the open-file limit", metadata: ["soft": "\(limit.rlim_cur)", "hard": "\(limit.rlim_max)"])
            }
        }
        return limit.rlim_cur >= UInt64(Int.max) ? .max : Int(limit.rlim_cur)  // RLIM_INFINITY is all ones
    }

    public func start() throws {
        let io: any FileIO
        if configuration.ioEngine == "uring" {
            do {
                io = try URingFileIO(entries: 256)
                ioEngineName = "io_uring"
            } catch {
                logger.warning("io_uring unavailable, using POSIX file IO", metadata: ["error": "\(error)"])
                io = PosixFileIO()
            }
        } else {
            io = PosixFileIO()
        }
        try io.createDirectory(configuration.dataDirectory)
        let clusterId = try Self.loadOrCreateClusterId(configuration: configuration, io: io)
        let fileLimit = Self.raiseOpenFileLimit(logger: logger)
        let filesBudget = configuration.segmentFilesBudget(fileLimit: fileLimit)
        logger.info("segment file budget", metadata: ["openFileLimit": "\(fileLimit)", "petrel.log.open.files.max": "\(filesBudget)"])
        let logManager = try LogManager(
            dataDirectory: configuration.dataDirectory, io: io, clock: SystemLogClock(), logger: logger, openFilesMax: filesBudget)
        let registry = PrometheusCollectorRegistry()
        let metricsFactory: PetrelMetricsFactory? = configuration.metricsListen == nil ? nil : PetrelMetricsFactory(registry: registry)
        if let metricsFactory { logManager.statistics.observer.withLock { $0 = StorageMetrics(factory: metricsFactory) } }
        let broker = Broker(
            configuration: configuration, logManager: logManager, io: io, clock: SystemLogClock(), clusterId: clusterId,
            groupScheduler: EventLoopCoordinatorScheduler(eventLoop: group.next()), logger: logger, metricsFactory: metricsFactory)
        try broker.start()
        self.broker = broker
        let effective = broker.topics.configuration  // static + dynamic broker configs
        let connections = ConnectionLimiter(
            maxConnections: effective.maxConnections, maxPerIp: effective.maxConnectionsPerIp,
            perIpOverrides: effective.maxConnectionsPerIpOverrides, logger: logger)
        BrokerLogLevel.apply(configured: effective.logLevel)
        broker.observeConfiguration { configuration in
            BrokerLogLevel.apply(configured: configuration.logLevel)
            connections.update(.init(
                maxConnections: configuration.maxConnections, maxPerIp: configuration.maxConnectionsPerIp,
                perIpOverrides: configuration.maxConnectionsPerIpOverrides))
        }
        let idleTimeout = TimeAmount.milliseconds(configuration.connectionsMaxIdleMs)
        let collector = MetricsCollector(registry: registry, broker: broker, connections: connections, io: io)
        self.collector = collector

        let maxFrame = configuration.socketRequestMaxBytes
        let logger = self.logger
        // A budget below one frame could never let a large frame complete.
        let budget = RequestMemoryBudget(limit: max(configuration.queuedMaxRequestBytes, maxFrame))
        let readTimeout = TimeAmount.milliseconds(configuration.requestReadTimeoutMs)
        let listeners = try configuration.resolvedListeners()
        if listeners.contains(where: { $0.securityProtocol.usesTLS }) { tlsReadPool.start() }
        let coldReads = configuration.fetchColdReadOffload && configuration.fetchZeroCopy
        if coldReads {
            coldReadPool.start()
            Self.lowerPriority(of: coldReadPool, threads: Self.coldReadThreads)
        }
        for listener in listeners {
            var context = ListenerContext(name: listener.name, securityProtocol: listener.securityProtocol)
            var tls: NIOSSLContext?
            if listener.securityProtocol.usesTLS {
                context.fileIO = NonBlockingFileIO(threadPool: tlsReadPool)
                tls = try NIOSSLContext(configuration: ListenerSecurity.tlsConfiguration(configuration, listener: listener.name))
                context.principalMapper = try ListenerSecurity.principalMapper(configuration, listener: listener.name)
            } else if coldReads {
                context.coldReadPool = coldReadPool
            }
            if listener.securityProtocol.usesSASL {
                context.sasl = try ListenerSecurity.sasl(configuration, listener: listener.name, credentials: broker.security.credentials)
            }
            let listenerContext = context
            let tlsContext = tls
            let bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 512)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AcceptBackoff(logger: logger))
                    }
                }
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 8 * 1024, maximum: 1 << 20))
                .childChannelOption(.writeBufferWaterMark, value: .init(low: 1 << 20, high: 8 << 20))
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try connections.admit(channel, idleTimeout: idleTimeout)
                        if let tlsContext {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext))
                        }
                        let reader = KafkaFrameReader(
                            maxFrameBytes: maxFrame, budget: budget, readTimeout: readTimeout, copiesFrames: tlsContext != nil, logger: logger)
                        try channel.pipeline.syncOperations.addHandler(reader)
                        try channel.pipeline.syncOperations.addHandler(
                            ConnectionHandler(broker: broker, logger: logger, listener: listenerContext, frameReader: reader))
                    }
                }
            let bound = try bootstrap.bind(host: listener.host, port: listener.port).wait()
            channels.append((listener, bound))
            if channel == nil { channel = bound }
            if let port = bound.localAddress?.port { broker.setBoundPort(port, listener: listener.name) }
        }
        if let (host, port) = configuration.metricsListen {
            let serving = self.serving
            metricsServer = try MetricsServer(
                host: host, port: port, scrape: { collector.scrape() },
                health: {
                    let offline = broker.topics.allTopics.reduce(0) { $0 + $1.partitions.filter { $0.storageStatus != .online }.count }
                    guard serving.value.load(ordering: .acquiring) else { return (false, "status=unavailable") }
                    return (true, "status=ok offline_partitions=\(offline)")
                }, logger: logger)
        }
        serving.value.store(true, ordering: .releasing)
        startMaintenance(logManager: logManager)
    }

    /// The bound address of the metrics endpoint, when `metrics.listen` is set.
    public var metricsAddress: SocketAddress? { metricsServer?.localAddress }

    /// Storage housekeeping off the event loops: flush.ms, segment.ms, recovery-point checkpoints.
    private func startMaintenance(logManager: LogManager) {
        let stop = stopMaintenance
        let health = HealthLine(collector: collector, intervalMs: configuration.healthLogIntervalMs, logger: logger)
        let thread = Thread {
            while !stop.isSet {
                Thread.sleep(forTimeInterval: 0.1)
                logManager.runPeriodicTasks()
                health?.logIfDue()
            }
        }
        thread.name = "petrel-maintenance"
        thread.start()
        maintenance = thread
    }

    /// Stops accepting, closes connections, flushes and checkpoints the logs, writes the clean
    /// shutdown marker.
    public func shutdown() throws {
        // 1. Stop accepting connections. 2. Stop storage housekeeping. 3. Shut the broker down
        // while the event loops still run (parked fetches and group timers are answered on their
        // loops; the appender drains, logs are flushed and checkpointed, the clean-shutdown marker
        // is written). 4. Close the remaining connections and the loops.
        serving.value.store(false, ordering: .releasing)
        for (_, channel) in channels { try? channel.close().wait() }
        metricsServer?.shutdown()
        stopMaintenance.set()
        while maintenance?.isFinished == false { Thread.sleep(forTimeInterval: 0.01) }
        var failure: (any Error)?
        do { try broker?.shutdown() } catch { failure = error }
        try? group.syncShutdownGracefully()
        try? tlsReadPool.syncShutdownGracefully()
        try? coldReadPool.syncShutdownGracefully()
        if let failure { throw failure }
    }

    /// Kafka keeps the cluster id in `meta.properties`; so do we (and create it on first start).
    static func loadOrCreateClusterId(configuration: BrokerConfiguration, io: any FileIO) throws -> String {
        let path = configuration.dataDirectory + "/meta.properties"
        if let bytes = try io.readWholeFile(path),
            let text = String(bytes: bytes, encoding: .utf8),
            let entries = try? Properties.parse(text),
            let id = entries.first(where: { $0.key == "cluster.id" })?.value, !id.isEmpty
        {
            return id
        }
        let id = KafkaUUID.random().description
        let text = "#\n#Written by Petrel\nversion=1\ncluster.id=\(id)\nnode.id=\(configuration.nodeId)\n"
        try io.writeFileAtomically(path, Array(text.utf8))
        return id
    }
}

final class StopFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

final class ServingFlag: Sendable {
    let value = Atomic<Bool>(false)
}

extension KafkaServer {
    /// Cold-read threads read catch-up consumers' ranges from the disk: on a busy machine they
    /// should wait for the event loops and the appender, which serve everyone else. Linux nice values are per
    /// thread; every pool thread takes one of these tasks, which hold until all have started.
    static func lowerPriority(of pool: NIOThreadPool, threads: Int) {
        let started = DispatchGroup()
        let release = DispatchSemaphore(value: 0)
        for _ in 0..<threads {
            started.enter()
            pool.submit { _ in
                // who 0: on Linux the calling thread only (nice values are per thread).
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
                started.leave()
                release.wait()
            }
        }
        started.wait()
        for _ in 0..<threads { release.signal() }
    }
}
