import CommitLog
public import CoreMetrics
import Dispatch
import DiskIO
import GroupCoordination
import KafkaWire
import Logging
import NIOCore
import Security
import Synchronization
import TransactionCoordination

/// What the connection should do with a request's outcome.
public enum ResponseAction: Sendable {
    /// Send this frame (size prefix included) in request order.
    case send(ResponseFrame)
    /// Produce with acks=0: no response at all.
    case noResponse
    /// Protocol violation: close this connection (Kafka closes on unparseable or unsupported requests).
    case close(String)
}

/// An encoded response frame, possibly with file regions served zero-copy (sendfile).
public struct ResponseFrame: @unchecked Sendable {
    public var chunks: [Records.Chunk]
    /// Owns the segment descriptors behind `.file` chunks until the frame is written.
    public var lease: SendfileLease?
    /// Client quotas: after sending, the connection stops reading for this long (Kafka mutes a
    /// throttled client's channel, KIP-219).
    public var throttleMs: Int = 0

    public init(chunks: [Records.Chunk], lease: SendfileLease? = nil) {
        self.chunks = chunks
        self.lease = lease
    }

    public var byteCount: Int { chunks.reduce(0) { $0 + $1.byteCount } }

    /// Releases the file regions without closing the segment descriptors they borrow.
    public func releaseFileRegions() { lease?.release() }
}

/// Per-request context from the connection.
public struct RequestContext: Sendable {
    public var header: RequestHeader
    public var eventLoop: any EventLoop
    public var allocator: ByteBufferAllocator
    public var clientAddress: String
    /// The listener the request arrived on (Metadata advertises that listener's address).
    public var listenerName: String = ""
    /// The authenticated principal (`User:alice`; `User:ANONYMOUS` when unauthenticated).
    public var principal: String = "User:ANONYMOUS"
    /// Set while some entity has a `request_percentage` quota: the request's handling time.
    public var requestTiming: RequestTiming?

    /// The user a client quota is charged to: the principal's name (`ANONYMOUS` when unauthenticated).
    public var quotaUser: String {
        principal.hasPrefix("User:") ? String(principal.dropFirst(5)) : principal
    }

    /// The client's IP (Kafka's `clientHost`, e.g. "/127.0.0.1").
    public var clientHost: String {
        // NIO prints "[IPv4]127.0.0.1/127.0.0.1:53250".
        guard let slash = clientAddress.firstIndex(of: "/") else { return clientAddress }
        let rest = clientAddress[slash...]
        if let colon = rest.lastIndex(of: ":") { return String(rest[..<colon]) }
        return String(rest)
    }

    public init(header: RequestHeader, eventLoop: any EventLoop, allocator: ByteBufferAllocator, clientAddress: String = "") {
        self.header = header
        self.eventLoop = eventLoop
        self.allocator = allocator
        self.clientAddress = clientAddress
    }
}

public typealias Responder = @Sendable (ResponseAction) -> Void

/// The broker's request logic: decodes a request, runs its handler against the topic registry
/// and the commit log, encodes the response. No sockets here; `BrokerServer` owns those.
public final class Broker: Sendable {
    public let configuration: BrokerConfiguration
    public let topics: TopicRegistry
    public let logManager: LogManager
    public let clusterId: String
    let logger: Logger
    let clock: any LogClock
    let fetchWaiters = FetchWaiters()
    /// Set at shutdown: parked fetches then answer with what they have.
    let isShuttingDown = Atomic<Bool>(false)
    /// The port actually bound (differs from the configured one when that was 0).
    private let boundPort = Atomic<Int>(0)

    /// The port each listener actually bound, by listener name.
    private let boundPorts = Mutex<[String: Int]>([:])

    /// Called by the server once the listener is bound.
    public func setBoundPort(_ port: Int) { boundPort.store(port, ordering: .releasing) }

    /// Called by the server once the listener `name` is bound.
    public func setBoundPort(_ port: Int, listener name: String) {
        boundPorts.withLock { $0[name] = port }
        if boundPort.load(ordering: .acquiring) == 0 { boundPort.store(port, ordering: .releasing) }
    }

    /// Host and port announced in Metadata / DescribeCluster / FindCoordinator.
    public var advertisedAddress: (host: String, port: Int) {
        var address = configuration.advertisedAddress
        if configuration.advertisedPort == nil {
            let bound = boundPort.load(ordering: .acquiring)
            if bound != 0 { address.port = bound }
        }
        return address
    }

    /// The address advertised to a client connected to `listener`: its `advertised.listeners`
    /// entry, else the listener's own host (127.0.0.1 for a wildcard) and bound port.
    public func advertisedAddress(listener name: String) -> (host: String, port: Int) {
        guard !name.isEmpty, let listener = (try? configuration.resolvedListeners())?.first(where: { $0.name == name }) else {
            return advertisedAddress
        }
        let bound = boundPorts.withLock { $0[name] } ?? listener.port
        if let advertised = (try? configuration.resolvedAdvertisedListeners())?[name] {
            return (advertised.host == "0.0.0.0" ? "127.0.0.1" : advertised.host, advertised.port == 0 ? bound : advertised.port)
        }
        let host = listener.host == "0.0.0.0" || listener.host == "::" ? "127.0.0.1" : listener.host
        return (host, bound)
    }

    /// Handlers by API key, with the versions we serve.
    struct Route: Sendable {
        var versions: ClosedRange<Int16>
        /// Versions advertised in ApiVersions (Produce advertises 0 like Kafka 4, KAFKA-18659).
        var advertised: ClosedRange<Int16>
        var handle: @Sendable (Broker, RequestContext, ByteBuffer, @escaping Responder) -> Void
    }

    let routes: [APIKey: Route]
    /// Runs topic administration (create/delete/alter, auto-creation): off the event loops and off
    /// the appender, one request at a time, answering when the work is done.
    let adminQueue = DispatchQueue(label: "petrel-admin")
    /// The classic consumer-group coordinator; its records live in `__consumer_offsets`.
    public let groupCoordinator: GroupCoordinator
    /// KIP-932 share groups; their share-partition state lives in `__share_group_state` (ShareServices.swift).
    public let shares: ShareServices
    /// The transaction coordinator; its records live in `__transaction_state` (TransactionServices.swift).
    public let transactionCoordinator: TransactionCoordinator
    /// Runs coordinator timers (an event loop).
    let groupScheduler: any CoordinatorScheduler
    /// SASL users and SCRAM credentials.
    public let security: SecurityServices
    /// Request timers and error counters; nil when metrics are off (nothing is timed then).
    public let metrics: BrokerMetrics?
    /// KIP-227 incremental fetch sessions (`max.incremental.fetch.session.cache.slots`).
    public let fetchSessions: FetchSessionCache
    /// Dynamic broker configs (AlterConfigs on BROKER resources), persisted in the data dir.
    public let dynamicConfig: DynamicBrokerConfig
    /// Client quotas (produce/fetch byte rates, request percentage), persisted in the data dir.
    public let clientQuotas: ClientQuotas
    private let configurationObservers = Mutex<[@Sendable (BrokerConfiguration) -> Void]>([])

    /// - Parameter groupScheduler: runs the coordinator's session/rebalance timers (an event loop).
    public init(
        configuration: BrokerConfiguration, logManager: LogManager, io: any FileIO, clock: any LogClock, clusterId: String,
        groupScheduler: any CoordinatorScheduler, logger: Logger, metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.configuration = configuration
        self.logManager = logManager
        self.clock = clock
        self.clusterId = clusterId
        self.logger = logger
        self.topics = TopicRegistry(configuration: configuration, logManager: logManager, io: io, logger: logger)
        let routes = Broker.makeRoutes()
        self.fetchSessions = FetchSessionCache(maxSlots: configuration.maxIncrementalFetchSessionCacheSlots)
        self.dynamicConfig = DynamicBrokerConfig(base: configuration, io: io, logger: logger)
        self.clientQuotas = ClientQuotas(
            dataDirectory: configuration.dataDirectory, windowSamples: configuration.quotaWindowNum,
            windowMs: Int64(configuration.quotaWindowSizeSeconds) * 1000, io: io, logger: logger)
        self.routes = routes
        if let metricsFactory {
            self.metrics = BrokerMetrics(factory: metricsFactory, apis: Array(routes.keys) + [.apiVersions])
        } else {
            self.metrics = nil
        }
        self.security = SecurityServices(configuration: configuration, io: io, logger: logger)
        var groupConfiguration = GroupCoordinatorConfiguration()
        groupConfiguration.initialRebalanceDelayMs = configuration.groupInitialRebalanceDelayMs
        groupConfiguration.minSessionTimeoutMs = configuration.groupMinSessionTimeoutMs
        groupConfiguration.maxSessionTimeoutMs = configuration.groupMaxSessionTimeoutMs
        groupConfiguration.offsetsRetentionMs = configuration.offsetsRetentionMs
        groupConfiguration.consumerHeartbeatIntervalMs = configuration.groupConsumerHeartbeatIntervalMs
        groupConfiguration.consumerSessionTimeoutMs = configuration.groupConsumerSessionTimeoutMs
        groupConfiguration.consumerAssignors = configuration.groupConsumerAssignors
        let store = OffsetsTopicStore(
            topics: topics, logManager: logManager, clock: clock, logger: logger, partitionCount: configuration.offsetsTopicPartitions)
        self.groupCoordinator = GroupCoordinator(
            configuration: groupConfiguration, clock: GroupWallClock(clock: clock), scheduler: groupScheduler, store: store, logger: logger)
        self.groupScheduler = groupScheduler
        self.shares = ShareServices(settings: configuration.shareGroups, logger: logger)
        let transactionIO = BrokerTransactionIO()
        var transactionConfiguration = TransactionCoordinatorConfiguration()
        transactionConfiguration.transactionMaxTimeoutMs = Int32(configuration.transactions.maxTimeoutMs)
        transactionConfiguration.transactionalIdExpirationMs = configuration.transactions.transactionalIdExpirationMs
        transactionConfiguration.abortTimedOutTransactionCleanupIntervalMs = configuration.transactions.abortTimedOutCleanupIntervalMs
        transactionConfiguration.removeExpiredTransactionalIdCleanupIntervalMs = configuration.transactions.removeExpiredCleanupIntervalMs
        let producerIds = logManager.producerIds
        self.transactionCoordinator = TransactionCoordinator(
            configuration: transactionConfiguration, clock: TransactionWallClock(clock: clock), store: transactionIO, markers: transactionIO,
            allocateProducerId: { try producerIds.allocate() }, logger: logger)
        groupCoordinator.setTopicMetadata(RegistryTopicMetadata(registry: topics))
        shares.coordinator.setTopicMetadata(RegistryTopicMetadata(registry: topics))
        groupCoordinator.beginLoading()
        transactionIO.broker = self
        let waiters = fetchWaiters
        logManager.appender.onAppended = { tp, _ in waiters.partitionAppended(tp) }
    }

    /// Loads topics (recovering their logs), starts the appender, replays consumer groups.
    public func start() throws {
        try dynamicConfig.load()
        try clientQuotas.load()
        applyDynamicConfiguration(dynamicConfig.effective())
        logManager.diskFullProbeIntervalMs = configuration.diskFullProbeIntervalMs
        try security.load()
        try topics.load()
        logManager.appender.start()
        logManager.startCleaner(configuration.cleaner)
        try configuration.shareGroups.validate()
        try loadGroups()
        try loadTransactions()
        try loadShareState()
        startShareGroupTimer()
    }

    /// Puts a changed effective configuration to work: topic defaults on every partition, the
    /// retention check interval.
    func applyDynamicConfiguration(_ effective: BrokerConfiguration) {
        topics.reconfigure(effective)
        logManager.retentionCheckIntervalMs = effective.retentionCheckIntervalMs
        for observer in configurationObservers.withLock({ $0 }) { observer(effective) }
    }

    /// Called with the new effective configuration after dynamic broker configs change (the server
    /// applies its connection limits this way).
    public func observeConfiguration(_ observer: @escaping @Sendable (BrokerConfiguration) -> Void) {
        configurationObservers.withLock { $0.append(observer) }
    }

    public func shutdown() throws {
        groupCoordinator.shutdown()
        isShuttingDown.store(true, ordering: .releasing)
        fetchWaiters.cancelAll()
        try logManager.shutdown()
    }

    /// The served API table as advertised in ApiVersions.
    /// With `petrel.legacy.message.formats.enable=false`, Fetch and ListOffsets start where Kafka 4
    /// starts them (v4 and v1); Produce stays advertised from v0 as Kafka 4 does (KAFKA-18659).
    public var advertisedAPIs: [(key: APIKey, versions: ClosedRange<Int16>)] {
        routes.map { key, route in
            var versions = route.advertised
            if !configuration.legacyMessageFormats {
                let floor: Int16 = key == .fetch ? 4 : key == .listOffsets ? 1 : versions.lowerBound
                versions = max(floor, versions.lowerBound)...versions.upperBound
            }
            return (key, versions)
        }.sorted { $0.key.rawValue < $1.key.rawValue }
    }

    /// Handles one request frame body (after the header). `respond` is called exactly once, on any thread.
    public func handle(_ context: RequestContext, body: ByteBuffer, respond: @escaping Responder) {
        let header = context.header
        var respond = respond
        if let metrics {
            // Time from the request being read to its response being ready (Kafka's TotalTimeMs
            // less the response send time).
            let start = NIODeadline.now().uptimeNanoseconds
            let inner = respond
            respond = { action in
                metrics.requestCompleted(header.apiKey, nanoseconds: NIODeadline.now().uptimeNanoseconds &- start)
                inner(action)
            }
        }
        if header.apiKey == .apiVersions {
            handleApiVersions(context, body: body, respond: respond)
            return
        }
        guard let route = routes[header.apiKey] else {
            respond(.close("unsupported API key \(header.apiKey.rawValue)"))
            return
        }
        guard route.versions.contains(header.apiVersion) else {
            respond(.close("unsupported version \(header.apiVersion) of \(header.apiKey.name)"))
            return
        }
        route.handle(self, context, body, respond)
    }

    static func makeRoutes() -> [APIKey: Route] {
        var routes: [APIKey: Route] = [:]
        func add<Request: KafkaRequest>(
            _ type: Request.Type, advertisedMin: Int16? = nil,
            _ handler: @escaping @Sendable (Broker, RequestContext, Request, Reply<Request.Response>) -> Void
        ) {
            let versions = Request.lowestSupportedVersion...Request.highestSupportedVersion
            routes[Request.apiKey] = Route(
                versions: versions,
                advertised: (advertisedMin ?? versions.lowerBound)...versions.upperBound
            ) { broker, context, body, respond in
                var body = body
                let request: Request
                do {
                    request = try Request(from: &body, version: context.header.apiVersion)
                } catch {
                    respond(.close("malformed \(Request.apiKey.name) v\(context.header.apiVersion): \(error)"))
                    return
                }
                handler(broker, context, request, Reply(broker: broker, context: context, respond: respond))
            }
        }
        add(ProduceRequest.self, advertisedMin: 0) { $0.handleProduce($1, $2, reply: $3) }
        add(FetchRequest.self) { $0.handleFetch($1, $2, reply: $3) }
        add(ListOffsetsRequest.self) { $3.send($0.handleListOffsets($1, $2)) }
        add(MetadataRequest.self) { broker, context, request, reply in
            // Auto-creation is admin work: it waits for the admin lock and creates directories.
            if broker.metadataMayAutoCreate(request, version: context.header.apiVersion) {
                broker.adminQueue.async { reply.send(broker.handleMetadata(context, request)) }
            } else {
                reply.send(broker.handleMetadata(context, request))
            }
        }
        // Admin work runs on the admin queue, never on an event loop (AdminHandlers.swift).
        add(CreateTopicsRequest.self) { b, c, r, reply in b.adminQueue.async { reply.send(b.handleCreateTopics(c, r)) } }
        add(DeleteTopicsRequest.self) { b, c, r, reply in b.adminQueue.async { reply.send(b.handleDeleteTopics(c, r)) } }
        add(CreatePartitionsRequest.self) { b, c, r, reply in b.adminQueue.async { reply.send(b.handleCreatePartitions(c, r)) } }
        add(DescribeConfigsRequest.self) { $3.send($0.handleDescribeConfigs($1, $2)) }
        add(AlterConfigsRequest.self) { b, c, r, reply in b.adminQueue.async { reply.send(b.handleAlterConfigs(c, r)) } }
        add(IncrementalAlterConfigsRequest.self) { b, c, r, reply in
            b.adminQueue.async { reply.send(b.handleIncrementalAlterConfigs(c, r)) }
        }
        add(DeleteRecordsRequest.self) { $3.send($0.handleDeleteRecords($1, $2)) }
        add(DescribeClusterRequest.self) { $3.send($0.handleDescribeCluster($1, $2)) }
        add(OffsetForLeaderEpochRequest.self) { $3.send($0.handleOffsetForLeaderEpoch($1, $2)) }
        add(InitProducerIdRequest.self) { b, c, r, reply in
            // KIP-679: an idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on a topic.
            guard r.transactionalId != nil || b.mayProduceIdempotently(c) else {
                return reply.send(InitProducerIdResponse(errorCode: KafkaErrorCode.clusterAuthorizationFailed.rawValue, producerId: -1, producerEpoch: -1))
            }
            b.handleInitProducerIdRouted(c, r, reply: reply)
        }
        // Transactions (TransactionHandlers.swift).
        add(AddPartitionsToTxnRequest.self) { $0.handleAddPartitionsToTxn($1, $2, reply: $3) }
        add(AddOffsetsToTxnRequest.self) { $0.handleAddOffsetsToTxn($1, $2, reply: $3) }
        add(EndTxnRequest.self) { $0.handleEndTxn($1, $2, reply: $3) }
        add(TxnOffsetCommitRequest.self) { $0.handleTxnOffsetCommit($1, $2, reply: $3) }
        add(DescribeTransactionsRequest.self) { $3.send($0.handleDescribeTransactions($1, $2)) }
        add(ListTransactionsRequest.self) { $3.send($0.handleListTransactions($1, $2)) }
        add(DescribeProducersRequest.self) { b, c, r, reply in b.adminQueue.async { reply.send(b.handleDescribeProducers(c, r)) } }
        // Consumer groups (classic protocol).
        add(FindCoordinatorRequest.self) { broker, context, request, reply in
            if request.keyType == 0 { _ = try? broker.ensureOffsetsTopic() }
            if request.keyType == 1 { _ = try? broker.ensureTransactionStateTopic() }
            broker.groupCoordinator.handleFindCoordinator(request, version: context.header.apiVersion, node: broker.coordinatorNode(listener: context.listenerName)) { reply.send($0) }
        }
        add(JoinGroupRequest.self) { broker, context, request, reply in
            guard broker.authorized(context, .read, .group, request.groupId) else {
                var refused = JoinGroupResponse()
                refused.errorCode = KafkaErrorCode.groupAuthorizationFailed.rawValue
                reply.send(refused)
                return
            }
            let client = GroupClientInfo(clientId: context.header.clientId ?? "", clientHost: context.clientHost)
            broker.groupCoordinator.handleJoinGroup(request, version: context.header.apiVersion, client: client) { reply.send($0) }
        }
        add(SyncGroupRequest.self) { b, c, r, reply in
            guard b.authorized(c, .read, .group, r.groupId) else { return reply.send(SyncGroupResponse(errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue)) }
            b.groupCoordinator.handleSyncGroup(r, version: c.header.apiVersion, completion: reply.send)
        }
        add(HeartbeatRequest.self) { b, c, r, reply in
            guard b.authorized(c, .read, .group, r.groupId) else { return reply.send(HeartbeatResponse(errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue)) }
            b.groupCoordinator.handleHeartbeat(r, version: c.header.apiVersion, completion: reply.send)
        }
        add(LeaveGroupRequest.self) { b, c, r, reply in
            guard b.authorized(c, .read, .group, r.groupId) else { return reply.send(LeaveGroupResponse(errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue)) }
            b.groupCoordinator.handleLeaveGroup(r, version: c.header.apiVersion, completion: reply.send)
        }
        add(OffsetCommitRequest.self) { $0.handleOffsetCommit($1, $2, reply: $3) }
        add(OffsetFetchRequest.self) { b, c, r, reply in
            // v0-7 name one group, v8+ several: refuse the groups the principal may not DESCRIBE.
            let version = c.header.apiVersion
            if version < 8, !b.authorized(c, .describe, .group, r.groupId) {
                var refused = OffsetFetchResponse()
                refused.errorCode = KafkaErrorCode.groupAuthorizationFailed.rawValue
                refused.topics = (r.topics ?? []).map { topic in
                    .init(name: topic.name, partitions: topic.partitionIndexes.map {
                        .init(partitionIndex: $0, committedOffset: -1, metadata: nil, errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue)
                    })
                }
                return reply.send(refused)
            }
            var allowed = r
            allowed.groups = r.groups.filter { b.authorized(c, .describe, .group, $0.groupId) }
            let denied = r.groups.filter { !b.authorized(c, .describe, .group, $0.groupId) }.map(\.groupId)
            b.groupCoordinator.handleOffsetFetch(allowed, version: version) { response in
                var merged = response
                merged.groups += denied.map { .init(groupId: $0, topics: [], errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue) }
                reply.send(merged)
            }
        }
        add(ListGroupsRequest.self) { b, c, r, reply in
            // Kafka lists only the groups the principal may describe.
            b.groupCoordinator.handleListGroups(r, version: c.header.apiVersion) { response in
                var visible = response
                if response.errorCode == 0 { visible.groups = b.withShareGroups(response.groups, r, version: c.header.apiVersion) }
                visible.groups = visible.groups.filter { b.authorized(c, .describe, .group, $0.groupId) }
                reply.send(visible)
            }
        }
        add(DescribeGroupsRequest.self) { b, c, r, reply in
            b.groupCoordinator.handleDescribeGroups(r, version: c.header.apiVersion) { response in
                var checked = response
                for index in checked.groups.indices {
                    let group = checked.groups[index].groupId
                    if !b.authorized(c, .describe, .group, group) {
                        checked.groups[index] = .init(errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue, groupId: group)
                    } else if r.includeAuthorizedOperations {
                        checked.groups[index].authorizedOperations = b.authorizedOperations(c, .group, group)  // KIP-430
                    }
                }
                reply.send(checked)
            }
        }
        add(DeleteGroupsRequest.self) { b, c, r, reply in
            var allowed = r
            allowed.groupsNames = r.groupsNames.filter { b.authorized(c, .delete, .group, $0) }
            let denied = r.groupsNames.filter { !b.authorized(c, .delete, .group, $0) }
            b.groupCoordinator.handleDeleteGroups(allowed, version: c.header.apiVersion) { response in
                var merged = response
                merged.results += denied.map { .init(groupId: $0, errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue) }
                reply.send(merged)
            }
        }
        // KIP-932 share groups (ShareServices.swift).
        add(ShareGroupHeartbeatRequest.self) { $0.handleShareGroupHeartbeat($1, $2, reply: $3) }
        add(ShareGroupDescribeRequest.self) { $0.handleShareGroupDescribe($1, $2, reply: $3) }
        add(ShareFetchRequest.self) { $0.handleShareFetch($1, $2, reply: $3) }
        add(ShareAcknowledgeRequest.self) { $0.handleShareAcknowledge($1, $2, reply: $3) }
        add(DescribeShareGroupOffsetsRequest.self) { $3.send($0.handleDescribeShareGroupOffsets($1, $2)) }
        add(AlterShareGroupOffsetsRequest.self) { $0.handleAlterShareGroupOffsets($1, $2, reply: $3) }
        add(DeleteShareGroupOffsetsRequest.self) { $0.handleDeleteShareGroupOffsets($1, $2, reply: $3) }
        // SASL: served by the connection on SASL listeners; elsewhere Kafka answers ILLEGAL_SASL_STATE.
        add(SaslHandshakeRequest.self) { $3.send(SaslHandshakeResponse(errorCode: KafkaErrorCode.illegalSaslState.rawValue, mechanisms: [])) }
        add(SaslAuthenticateRequest.self) { _, _, _, reply in
            reply.send(SaslAuthenticateResponse(errorCode: KafkaErrorCode.illegalSaslState.rawValue, errorMessage: "SASL is not enabled on this listener"))
        }
        add(DescribeUserScramCredentialsRequest.self) { b, c, r, reply in
            guard b.authorized(c, .describe, .cluster, Broker.clusterName) else {
                reply.send(DescribeUserScramCredentialsResponse(errorCode: KafkaErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil, results: []))
                return
            }
            reply.send(b.security.describe(r))
        }
        add(AlterUserScramCredentialsRequest.self) { b, c, r, reply in
            guard b.authorized(c, .alter, .cluster, Broker.clusterName) else {
                let users = Set(r.deletions.map(\.name) + r.upsertions.map(\.name)).sorted()
                reply.send(AlterUserScramCredentialsResponse(results: users.map { .init(user: $0, errorCode: KafkaErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil) }))
                return
            }
            b.adminQueue.async { reply.send(b.security.alter(r)) }
        }
        // ACLs (KIP-140 APIs); admin work on the admin queue (they write acls.properties).
        add(CreateAclsRequest.self) { b, c, r, reply in b.adminQueue.async { reply.send(b.handleCreateAcls(c, r)) } }
        add(DescribeAclsRequest.self) { $3.send($0.handleDescribeAcls($1, $2)) }
        add(DeleteAclsRequest.self) { b, c, r, reply in b.adminQueue.async { reply.send(b.handleDeleteAcls(c, r)) } }
        add(OffsetDeleteRequest.self) { b, c, r, reply in
            guard b.authorized(c, .delete, .group, r.groupId) else {
                return reply.send(OffsetDeleteResponse(errorCode: KafkaErrorCode.groupAuthorizationFailed.rawValue, throttleTimeMs: 0, topics: []))
            }
            b.groupCoordinator.handleOffsetDelete(r, version: c.header.apiVersion, completion: reply.send)
        }
        // Consumer groups (KIP-848 consumer protocol).
        add(ConsumerGroupHeartbeatRequest.self) { broker, context, request, reply in
            let client = GroupClientInfo(clientId: context.header.clientId ?? "", clientHost: context.clientHost)
            broker.groupCoordinator.handleConsumerGroupHeartbeat(request, client: client) { reply.send($0) }
        }
        add(ConsumerGroupDescribeRequest.self) { $0.groupCoordinator.handleConsumerGroupDescribe($2, completion: $3.send) }
        // Client quotas (KIP-546); DESCRIBE_CONFIGS / ALTER_CONFIGS on the cluster, as Kafka checks them.
        add(DescribeClientQuotasRequest.self) { b, c, r, reply in
            guard b.authorized(c, .describeConfigs, .cluster, Broker.clusterName) else {
                return reply.send(DescribeClientQuotasResponse(errorCode: KafkaErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil, entries: nil))
            }
            reply.send(b.clientQuotas.describe(r))
        }
        add(AlterClientQuotasRequest.self) { b, c, r, reply in
            guard b.authorized(c, .alterConfigs, .cluster, Broker.clusterName) else {
                return reply.send(AlterClientQuotasResponse(entries: r.entries.map {
                    .init(errorCode: KafkaErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil, entity: $0.entity.map { .init(entityType: $0.entityType, entityName: $0.entityName) })
                }))
            }
            b.adminQueue.async { reply.send(b.clientQuotas.alter(r)) }
        }
        return routes
    }

    /// A handler's way to answer: exactly one of `send`, `noResponse` or `close`.
    struct Reply<Response: KafkaResponse>: Sendable {
        let broker: Broker
        let context: RequestContext
        let respond: Responder

        @Sendable func send(_ response: Response) { send(response, lease: nil) }

        func send(_ response: Response, lease: SendfileLease?) {
            respond(broker.encode(response, context: context, lease: lease))
        }

        /// Sends, then mutes the connection for `throttleMs` (client quotas).
        func send(_ response: Response, lease: SendfileLease? = nil, throttleMs: Int) {
            var action = broker.encode(response, context: context, lease: lease)
            if throttleMs > 0, case .send(var frame) = action {
                frame.throttleMs = max(frame.throttleMs, throttleMs)
                action = .send(frame)
            }
            respond(action)
        }

        func noResponse() { respond(.noResponse) }
        func close(_ reason: String) { respond(.close(reason)) }
    }

    func encode<Response: KafkaResponse>(_ response: Response, context: RequestContext, lease: SendfileLease? = nil) -> ResponseAction {
        var response = response
        var requestThrottleMs = 0
        if let timing = context.requestTiming {
            // KIP-124/KIP-219: the request quota's throttle goes into the response (the larger of
            // it and a byte-rate throttle already there), and mutes the connection if charged here.
            let (throttle, chargedNow) = timing.chargeForResponse(clientQuotas, user: context.quotaUser, clientId: context.header.clientId ?? "")
            if throttle > 0, var throttled = response as? any ThrottledResponse {
                throttled.throttleTimeMs = max(throttled.throttleTimeMs, Int32(clamping: throttle))
                response = throttled as! Response
            }
            if chargedNow { requestThrottleMs = throttle }
        }
        do {
            let chunks = try WireWriter.encodeResponseFrame(
                response, version: context.header.apiVersion, correlationId: context.header.correlationId,
                allocator: context.allocator, zeroCopyThreshold: 64 * 1024)
            var frame = ResponseFrame(chunks: chunks, lease: lease)
            frame.throttleMs = max(frame.throttleMs, requestThrottleMs)
            return .send(frame)
        } catch {
            logger.error("encoding response failed", metadata: ["api": "\(Response.apiKey.name)", "error": "\(error)"])
            return .close("cannot encode \(Response.apiKey.name) response: \(error)")
        }
    }

    // MARK: ApiVersions

    func handleApiVersions(_ context: RequestContext, body: ByteBuffer, respond: Responder) {
        let version = context.header.apiVersion
        let range = ApiVersionsRequest.lowestSupportedVersion...ApiVersionsRequest.highestSupportedVersion
        guard range.contains(version) else {
            // KIP-511: answer in the v0 layout with UNSUPPORTED_VERSION and our ApiVersions range.
            var v0 = context
            v0.header.apiVersion = 0
            let response = ApiVersionsResponse(
                errorCode: KafkaErrorCode.unsupportedVersion.rawValue,
                apiKeys: [.init(apiKey: APIKey.apiVersions.rawValue, minVersion: range.lowerBound, maxVersion: range.upperBound)])
            respond(encode(response, context: v0))
            return
        }
        var body = body
        var errorCode = KafkaErrorCode.none
        do {
            let request = try ApiVersionsRequest(from: &body, version: version)
            if version >= 3, !Self.isValidClientSoftware(request.clientSoftwareName) || !Self.isValidClientSoftware(request.clientSoftwareVersion) {
                errorCode = .invalidRequest
            }
        } catch {
            errorCode = .invalidRequest
        }
        var keys = advertisedAPIs.map {
            ApiVersionsResponse.ApiVersion(apiKey: $0.key.rawValue, minVersion: $0.versions.lowerBound, maxVersion: $0.versions.upperBound)
        }
        keys.append(.init(apiKey: APIKey.apiVersions.rawValue, minVersion: range.lowerBound, maxVersion: range.upperBound))
        keys.sort { $0.apiKey < $1.apiKey }
        var response = ApiVersionsResponse(errorCode: errorCode.rawValue, apiKeys: errorCode == .none ? keys : [], throttleTimeMs: 0)
        if errorCode == .none { Self.advertiseFeatures(&response) }
        respond(encode(response, context: context))
    }

    /// Kafka's rule for ClientSoftwareName/Version: `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
    static func isValidClientSoftware(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, let last = bytes.last else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
        return alnum(first) && alnum(last) && bytes.allSatisfy { alnum($0) || $0 == 0x2D || $0 == 0x2E }
    }
}
