public import KafkaWire
public import NIOCore
import NIOPosix
import NIOSSL
import Security

/// One TCP connection to a Kafka-protocol broker.
///
/// Requests are pipelined: any number may be outstanding, and responses are matched to them in
/// order. Versions are negotiated once with ApiVersions at connect: each request goes out at the
/// highest version both the broker and `KafkaWire` support, unless the caller picks one.
public final class KafkaConnection: Sendable {
    /// The channel; its event loop is where responses complete.
    public let channel: any Channel
    /// The broker's advertised version range per API key.
    public let brokerVersions: [APIKey: ClosedRange<Int16>]
    /// Sent in every request header.
    public let clientId: String?
    /// Where this connection goes.
    public let address: BrokerAddress

    /// The event loop that owns the channel.
    public var eventLoop: any EventLoop { channel.eventLoop }

    private init(channel: any Channel, brokerVersions: [APIKey: ClosedRange<Int16>], clientId: String?, address: BrokerAddress) {
        self.channel = channel
        self.brokerVersions = brokerVersions
        self.clientId = clientId
        self.address = address
    }

    /// Connects and negotiates API versions.
    ///
    /// - Parameters:
    ///   - address: The broker.
    ///   - group: Where the channel runs; a connection stays on one event loop.
    ///   - clientId: The request-header client id.
    ///   - connectTimeout: TCP connect timeout.
    /// - Throws: `ClientError` (`.connection` when the broker is unreachable).
    public static func connect(
        to address: BrokerAddress, on group: any EventLoopGroup, clientId: String? = "petrel",
        connectTimeout: TimeAmount = .seconds(10), security: ClientSecurity = .plaintext
    ) async throws(ClientError) -> KafkaConnection {
        let tlsContext = security.tlsContext
        // SNI and hostname checks take a name; for an IP literal NIOSSL matches the certificate's
        // IP SANs against the connected address instead.
        let isIPLiteral = address.host.contains(":") || address.host.allSatisfy { $0.isNumber || $0 == "." }
        let serverHostname = isIPLiteral ? nil : address.host

        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: serverHostname))
                    }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ResponseFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(ClientChannelHandler())
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: address.host, port: address.port).get()
        } catch {
            throw ClientError(.connection, "cannot connect to \(address): \(error)")
        }
        do {
            let versions = try await negotiate(channel: channel, clientId: clientId)
            if let sasl = security.sasl {
                try await authenticate(channel: channel, clientId: clientId, sasl: sasl, versions: versions)
            }
            return KafkaConnection(channel: channel, brokerVersions: versions, clientId: clientId, address: address)
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }

    /// ApiVersions at our highest version; a broker that does not know it answers with error
    /// UNSUPPORTED_VERSION in the v0 format, naming its own range, and we retry once within it.
    private static func negotiate(channel: any Channel, clientId: String?) async throws(ClientError) -> [APIKey: ClosedRange<Int16>] {
        var version = ApiVersionsRequest.highestSupportedVersion
        for _ in 0..<2 {
            let request = ApiVersionsRequest(clientSoftwareName: "petrel", clientSoftwareVersion: "0.1.0")
            let frame = try await roundTrip(channel: channel, frame: encodeFrame(request, version: version, clientId: clientId, allocator: channel.allocator))
            var body = frame
            _ = try decodeOrThrow { () throws(WireError) in try ResponseHeader.read(from: &body, version: 0) }
            guard let errorCode = body.getInteger(at: body.readerIndex, as: Int16.self) else {
                throw ClientError(.protocolViolation, "empty ApiVersions response")
            }
            if errorCode == KafkaErrorCode.unsupportedVersion.rawValue && version > 0 {
                let v0 = try decodeOrThrow { () throws(WireError) in try ApiVersionsResponse(from: &body, version: 0) }
                let brokerMax = v0.apiKeys.first { $0.apiKey == APIKey.apiVersions.rawValue }?.maxVersion ?? 0
                version = max(0, min(version - 1, brokerMax))
                continue
            }
            let response = try decodeOrThrow { () throws(WireError) in try ApiVersionsResponse(from: &body, version: version) }
            try ClientError.check(response.errorCode, "ApiVersions")
            var versions: [APIKey: ClosedRange<Int16>] = [:]
            for key in response.apiKeys where key.minVersion <= key.maxVersion {
                versions[APIKey(rawValue: key.apiKey)] = key.minVersion...key.maxVersion
            }
            return versions
        }
        throw ClientError(.unsupportedAPI(.apiVersions), "broker rejected every ApiVersions version")
    }

    /// SaslHandshake v1 then SaslAuthenticate (KIP-152) until the mechanism is done.
    private static func authenticate(
        channel: any Channel, clientId: String?, sasl: ClientSecurity.SASL, versions: [APIKey: ClosedRange<Int16>]
    ) async throws(ClientError) {
        guard let handshakeRange = versions[.saslHandshake], handshakeRange.upperBound >= 1,
            let authenticateRange = versions[.saslAuthenticate]
        else { throw ClientError(.unsupportedAPI(.saslAuthenticate), "broker does not offer SaslHandshake v1 / SaslAuthenticate (is this a SASL listener?)") }
        let handshakeFrame = try await roundTrip(
            channel: channel, frame: encodeFrame(SaslHandshakeRequest(mechanism: sasl.mechanism.rawValue), version: 1, clientId: clientId, allocator: channel.allocator))
        let handshake = try decodeResponse(handshakeFrame, as: SaslHandshakeResponse.self, version: 1)
        if handshake.errorCode != 0 {
            throw ClientError(
                .broker(KafkaErrorCode(rawValue: handshake.errorCode)), "SASL mechanism \(sasl.mechanism.rawValue) not enabled on the broker (it offers \(handshake.mechanisms.joined(separator: ", ")))")
        }
        let version = min(authenticateRange.upperBound, SaslAuthenticateRequest.highestSupportedVersion)
        var exchange = SaslClientExchange(mechanism: sasl.mechanism, user: sasl.username, password: sasl.password)
        var token = exchange.start()
        while true {
            let request = SaslAuthenticateRequest(authBytes: ByteBuffer(bytes: token))
            let frame = try await roundTrip(channel: channel, frame: encodeFrame(request, version: version, clientId: clientId, allocator: channel.allocator))
            let response = try decodeResponse(frame, as: SaslAuthenticateResponse.self, version: version)
            if response.errorCode != 0 {
                throw ClientError(.broker(KafkaErrorCode(rawValue: response.errorCode)), "SASL \(sasl.mechanism.rawValue) authentication failed: \(response.errorMessage ?? "error \(response.errorCode)")")
            }
            switch exchange.evaluate(Array(response.authBytes.readableBytesView)) {
            case .send(let next): token = next
            case .done: return
            case .failed(let reason): throw ClientError(.broker(.saslAuthenticationFailed), reason)
            }
        }
    }

    private static func roundTrip(channel: any Channel, frame: [ByteBuffer]) async throws(ClientError) -> ByteBuffer {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        channel.writeAndFlush(OutboundRequest(frame: frame, responsePromise: promise)).whenFailure { promise.fail($0) }
        do {
            return try await promise.futureResult.get()
        } catch {
            throw (error as? ClientError) ?? ClientError(.connection, "\(error)")
        }
    }

    private static func decodeOrThrow<T>(_ body: () throws(WireError) -> T) throws(ClientError) -> T {
        do {
            return try body()
        } catch {
            throw ClientError(.protocolViolation, "cannot decode response: \(error)")
        }
    }

    // MARK: - Versions

    /// The version to use for `R`: the highest both sides support, optionally capped.
    ///
    /// - Parameters:
    ///   - type: The request type.
    ///   - cap: Never pick a version above this.
    /// - Throws: `ClientError(.unsupportedAPI)` when the ranges do not overlap.
    public func version<R: KafkaRequest>(for type: R.Type, cap: Int16 = .max) throws(ClientError) -> Int16 {
        guard let broker = brokerVersions[R.apiKey] else {
            throw ClientError(.unsupportedAPI(R.apiKey), "broker at \(address) does not support \(R.apiKey.name)")
        }
        let high = min(broker.upperBound, R.highestSupportedVersion, cap)
        let low = max(broker.lowerBound, R.lowestSupportedVersion)
        guard high >= low else {
            throw ClientError(
                .unsupportedAPI(R.apiKey),
                "\(R.apiKey.name): broker supports v\(broker.lowerBound)-\(broker.upperBound), client v\(R.lowestSupportedVersion)-\(R.highestSupportedVersion)"
            )
        }
        return high
    }

    // MARK: - Encoding

    /// Records chunks at least this large are written to the socket as their own buffers, not copied.
    static let zeroCopyThreshold = 8 << 10

    /// Encodes `int32 size | header (correlation id 0, patched at write) | body`.
    static func encodeFrame<R: KafkaRequest>(
        _ request: R, version: Int16, clientId: String?, allocator: ByteBufferAllocator
    ) throws(ClientError) -> [ByteBuffer] {
        var writer = WireWriter(allocator: allocator, initialCapacity: 256, zeroCopyThreshold: zeroCopyThreshold)
        writer.buffer.writeInteger(Int32(0))
        let header = RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationId: 0, clientId: clientId)
        do {
            try header.write(to: &writer.buffer)
            try request.write(to: &writer, version: version)
        } catch {
            throw ClientError(.invalidArgument, "cannot encode \(R.apiKey.name) v\(version): \(error)")
        }
        var frame: [ByteBuffer] = []
        for chunk in writer.finishFrame() {
            guard case .bytes(let bytes) = chunk else { preconditionFailure("client requests never hold file regions") }
            frame.append(bytes)
        }
        return frame
    }

    /// Decodes a response frame (header + body) at `version`.
    ///
    /// - Throws: `ClientError(.protocolViolation)` when the bytes do not decode.
    public static func decodeResponse<Response: KafkaResponse>(
        _ frame: ByteBuffer, as type: Response.Type, version: Int16
    ) throws(ClientError) -> Response {
        var body = frame
        return try decodeOrThrow { () throws(WireError) in
            _ = try ResponseHeader.read(from: &body, version: Response.apiKey.responseHeaderVersion(apiVersion: version))
            return try Response(from: &body, version: version)
        }
    }

    // MARK: - Sending

    /// Sends `request` and completes with its decoded response, on this connection's event loop.
    ///
    /// Requests that get no response (Produce with acks=0) must go through `sendWithoutResponse`.
    ///
    /// - Parameters:
    ///   - request: The request body.
    ///   - version: The version to encode; default: the negotiated one.
    public func send<R: KafkaRequest>(_ request: R, version requested: Int16? = nil) -> EventLoopFuture<R.Response> {
        let version: Int16
        let frame: [ByteBuffer]
        do {
            version = try requested ?? self.version(for: R.self)
            frame = try Self.encodeFrame(request, version: version, clientId: clientId, allocator: channel.allocator)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        return sendFrame(frame).flatMapThrowing { frame in
            try Self.decodeResponse(frame, as: R.Response.self, version: version)
        }
    }

    /// Sends an already encoded frame and completes with the raw response frame (header + body).
    func sendFrame(_ frame: [ByteBuffer]) -> EventLoopFuture<ByteBuffer> {
        let promise = eventLoop.makePromise(of: ByteBuffer.self)
        channel.writeAndFlush(OutboundRequest(frame: frame, responsePromise: promise)).whenFailure { promise.fail($0) }
        return promise.futureResult
    }

    /// Sends a request the broker will not answer (Produce acks=0); completes once written.
    public func sendWithoutResponse<R: KafkaRequest>(_ request: R, version: Int16? = nil) -> EventLoopFuture<Void> {
        do {
            let version = try version ?? self.version(for: R.self)
            let frame = try Self.encodeFrame(request, version: version, clientId: clientId, allocator: channel.allocator)
            return channel.writeAndFlush(OutboundRequest(frame: frame, responsePromise: nil))
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
    }

    /// `send` for async callers.
    ///
    /// - Throws: `ClientError`.
    public func send<R: KafkaRequest>(_ request: R, version: Int16? = nil) async throws(ClientError) -> R.Response {
        do {
            return try await send(request, version: version).get()
        } catch {
            throw (error as? ClientError) ?? ClientError(.connection, "\(error)")
        }
    }

    /// Closes the connection; outstanding requests fail with `.connection`.
    public func close() async {
        try? await channel.close()
    }
}
