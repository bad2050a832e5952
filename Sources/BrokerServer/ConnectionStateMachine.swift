import BrokerCore
import KafkaWire
import NIOCore
import Security

/// The decisions of one client connection, sans IO (the handler carries them out):
/// - request ordering: every frame gets a sequence number; responses complete in any order and
///   leave strictly in request order (the Java client checks correlation ids FIFO);
/// - backpressure: past `maxInFlight` outstanding requests reads stop;
/// - client quotas (KIP-219): a response carrying a throttle time mutes the connection until
///   then; frames already read are held, not processed, until the mute ends, and for
///   `throttledSerialPeriod` after it the connection is served one request at a time (as Kafka
///   serves every connection), so a pipelining client cannot overrun its quota with what it had
///   already sent;
/// - the SASL gate on SASL listeners: before authentication only ApiVersions, SaslHandshake and
///   SaslAuthenticate are served (and, after a SaslHandshake v0, the legacy unframed tokens);
///   a failed authentication answers SASL_AUTHENTICATION_FAILED and closes, nothing else is served;
///   `connections.max.reauth.ms` (KIP-368) bounds a session, after which the client must
///   re-authenticate on the connection or is disconnected.
struct ConnectionStateMachine {
    struct Configuration {
        var maxInFlight = 128
        /// Nil on PLAINTEXT and SSL listeners.
        var sasl: SASL?
        /// Largest frame accepted before authentication (Kafka: 512 KiB for SASL tokens).
        var unauthenticatedFrameBytesMax = 524_288
        /// After a throttle's mute ends, requests are still processed one at a time for this long
        /// (the quota's whole measuring window, `quota.window.num` x `quota.window.size.seconds`).
        var throttledSerialPeriod: TimeAmount = .seconds(11)

        struct SASL {
            var enabledMechanisms: [SaslMechanism]
            var credentials: any SaslCredentialLookup
            /// `connections.max.reauth.ms`; 0 = sessions do not expire.
            var reauthenticationMs: Int64 = 0
        }
    }

    enum FrameAction {
        /// Hand the request to the broker; its response comes back with `sequence`.
        case dispatch(sequence: UInt64, header: RequestHeader, body: ByteBuffer)
        /// A response was queued by the state machine itself (SASL): write what `nextToSend` gives.
        case flush
        /// Close now, without writing anything more.
        case close(String)
        /// Nothing to do (e.g. bytes after a failed authentication).
        case ignore
        /// The connection is throttled: the frame waits in the state machine; `nextHeld` gives it
        /// back when it may be processed.
        case hold
    }

    private enum AuthState {
        /// PLAINTEXT / SSL listener: the principal is `ANONYMOUS` or the certificate's.
        case notRequired
        /// Waiting for SaslHandshake.
        case awaitingHandshake
        /// After SaslHandshake: SaslAuthenticate requests (or, `legacy`, raw tokens) feed `exchange`.
        case authenticating(SaslServerExchange, legacy: Bool, handshakeVersion: Int16)
        case authenticated
        /// Authentication failed or was abandoned: nothing more is served.
        case failed
    }

    let configuration: Configuration
    private var auth: AuthState
    /// Set while an authenticated client re-authenticates (KIP-368).
    private var reauthenticating: SaslServerExchange?
    private var sessionExpiry: NIODeadline?
    private(set) var principal = "User:ANONYMOUS"

    private var nextSequence: UInt64 = 0
    private var nextSent: UInt64 = 0
    private var ready: [UInt64: ResponseAction] = [:]
    private var readPending = false
    private(set) var isClosed = false

    /// Frames read while throttled, in arrival order (bounded: no reads while any wait).
    private var held = CircularBuffer<ByteBuffer>()
    /// Dispatched requests whose outcome has not come back.
    private(set) var outstanding = 0
    /// Client quotas: the connection processes nothing before this (KIP-219).
    private(set) var muteDeadline: NIODeadline?
    /// Until then requests are processed one at a time.
    private var serialUntil: NIODeadline?

    init(configuration: Configuration) {
        self.configuration = configuration
        self.auth = configuration.sasl == nil ? .notRequired : .awaitingHandshake
    }

    var inFlight: Int { Int(nextSequence - nextSent) }
    var isAuthenticated: Bool {
        switch auth {
        case .notRequired, .authenticated: true
        default: false
        }
    }
    /// The frame limit the reader should apply now; nil = `socket.request.max.bytes`.
    var frameBytesMax: Int? { isAuthenticated ? nil : configuration.unauthenticatedFrameBytesMax }
    /// Legacy SASL tokens are shorter than a request header; the reader must accept them.
    var acceptsShortFrames: Bool {
        if case .authenticating(_, legacy: true, _) = auth { return true }
        return false
    }

    /// The principal taken from the TLS client certificate (mTLS), for SSL listeners.
    mutating func tlsAuthenticated(principal: String) {
        if case .notRequired = auth { self.principal = principal }
    }

    // MARK: Requests

    mutating func frameReceived(_ frame: ByteBuffer, now: NIODeadline) -> FrameAction {
        guard !isClosed else { return .ignore }
        if !held.isEmpty || isGated(now: now) {
            held.append(frame)
            return .hold
        }
        return process(frame, now: now)
    }

    var heldCount: Int { held.count }

    /// The next held frame's action once the connection may process it; nil while muted, while
    /// serial and a request is outstanding, or when nothing is held.
    mutating func nextHeld(now: NIODeadline) -> FrameAction? {
        guard !isClosed, !held.isEmpty, !isGated(now: now) else { return nil }
        return process(held.removeFirst(), now: now)
    }

    private func isGated(now: NIODeadline) -> Bool {
        if muteDeadline != nil { return true }
        if let serialUntil, now < serialUntil, outstanding > 0 { return true }
        return false
    }

    private mutating func process(_ frame: ByteBuffer, now: NIODeadline) -> FrameAction {
        var frame = frame
        switch auth {
        case .failed:
            return .ignore
        case .authenticating(var exchange, legacy: true, let handshakeVersion):
            // KIP-43 v0: the token is the whole frame, the answer a size-prefixed token.
            let token = Array(frame.readableBytesView)
            let sequence = takeSequence()
            switch exchange.evaluate(token) {
            case .challenge(let bytes):
                auth = .authenticating(exchange, legacy: true, handshakeVersion: handshakeVersion)
                ready[sequence] = .send(Self.rawToken(bytes))
                return .flush
            case .authenticated(let user, let final):
                authenticated(user: user, now: now)
                ready[sequence] = .send(Self.rawToken(final))
                return .flush
            case .failed(let reason):
                // Kafka closes without an answer on the legacy path.
                return fail(reason, at: sequence)
            }
        default:
            break
        }
        let header: RequestHeader
        do {
            header = try RequestHeader.read(from: &frame)
        } catch {
            // As before the state machine: an unreadable header closes at once.
            auth = .failed
            isClosed = true
            return .close("unreadable request header: \(error)")
        }
        let isSaslAPI = header.apiKey == .saslHandshake || header.apiKey == .saslAuthenticate
        if configuration.sasl != nil, isSaslAPI {
            return sasl(header: header, body: frame, now: now)
        }
        if !isAuthenticated && header.apiKey != .apiVersions {
            return fail("\(header.apiKey.name) request before SASL authentication")
        }
        if let expiry = sessionExpiry, now > expiry, reauthenticating == nil {
            return fail("SASL session expired (connections.max.reauth.ms) without re-authentication")
        }
        outstanding += 1
        return .dispatch(sequence: takeSequence(), header: header, body: frame)
    }

    private mutating func takeSequence() -> UInt64 {
        defer { nextSequence += 1 }
        return nextSequence
    }

    /// Refuses the connection: what is already queued (say the SASL_AUTHENTICATION_FAILED
    /// response) is still written in order, then the connection closes; nothing else is served.
    private mutating func fail(_ reason: String) -> FrameAction {
        fail(reason, at: takeSequence())
    }

    /// Closes in the place of the request that took `sequence` (which gets no answer).
    private mutating func fail(_ reason: String, at sequence: UInt64) -> FrameAction {
        auth = .failed
        ready[sequence] = .close(reason)
        return .flush
    }

    private mutating func authenticated(user: String, now: NIODeadline) {
        principal = "User:\(user)"
        auth = .authenticated
        reauthenticating = nil
        let lifetime = configuration.sasl?.reauthenticationMs ?? 0
        sessionExpiry = lifetime > 0 ? now + .milliseconds(lifetime) : nil
    }

    private mutating func sasl(header: RequestHeader, body: ByteBuffer, now: NIODeadline) -> FrameAction {
        guard let sasl = configuration.sasl else { return .ignore }
        var body = body
        let sequence = takeSequence()
        let version = header.apiVersion
        if header.apiKey == .saslHandshake {
            guard (0...1).contains(version), let request = try? SaslHandshakeRequest(from: &body, version: version) else {
                return fail("malformed or unsupported SaslHandshake v\(version)", at: sequence)
            }
            let names = sasl.enabledMechanisms.map(\.rawValue)
            var response = SaslHandshakeResponse(errorCode: 0, mechanisms: names)
            let mechanism = SaslMechanism(rawValue: request.mechanism).flatMap { sasl.enabledMechanisms.contains($0) ? $0 : nil }
            let exchange = mechanism.map { SaslServerExchange(mechanism: $0, credentials: sasl.credentials) }
            switch auth {
            case .awaitingHandshake:
                guard let exchange else {
                    response.errorCode = KafkaErrorCode.unsupportedSaslMechanism.rawValue
                    ready[sequence] = Self.encode(response, header)
                    return fail("client asked for SASL mechanism \(request.mechanism), enabled: \(names)")
                }
                auth = .authenticating(exchange, legacy: version == 0, handshakeVersion: version)
                ready[sequence] = Self.encode(response, header)
                return .flush
            case .authenticated where reauthenticating == nil && version >= 1:
                guard let exchange else {
                    response.errorCode = KafkaErrorCode.unsupportedSaslMechanism.rawValue
                    ready[sequence] = Self.encode(response, header)
                    return fail("re-authentication with disabled SASL mechanism \(request.mechanism)")
                }
                reauthenticating = exchange
                ready[sequence] = Self.encode(response, header)
                return .flush
            default:
                response.errorCode = KafkaErrorCode.illegalSaslState.rawValue
                ready[sequence] = Self.encode(response, header)
                return fail("unexpected SaslHandshake")
            }
        }
        // SaslAuthenticate
        guard (0...2).contains(version), let request = try? SaslAuthenticateRequest(from: &body, version: version) else {
            return fail("malformed or unsupported SaslAuthenticate v\(version)", at: sequence)
        }
        var exchange: SaslServerExchange
        let isReauthentication: Bool
        if case .authenticating(let current, legacy: false, _) = auth {
            exchange = current
            isReauthentication = false
        } else if let current = reauthenticating {
            exchange = current
            isReauthentication = true
        } else {
            ready[sequence] = Self.encode(
                SaslAuthenticateResponse(errorCode: KafkaErrorCode.illegalSaslState.rawValue, errorMessage: "Unexpected SaslAuthenticate"), header)
            return fail("unexpected SaslAuthenticate")
        }
        switch exchange.evaluate(Array(request.authBytes.readableBytesView)) {
        case .challenge(let bytes):
            if isReauthentication { reauthenticating = exchange } else { auth = .authenticating(exchange, legacy: false, handshakeVersion: 1) }
            ready[sequence] = Self.encode(SaslAuthenticateResponse(errorCode: 0, errorMessage: nil, authBytes: ByteBuffer(bytes: bytes)), header)
            return .flush
        case .authenticated(let user, let final):
            if isReauthentication && "User:\(user)" != principal {
                ready[sequence] = Self.encode(
                    SaslAuthenticateResponse(
                        errorCode: KafkaErrorCode.saslAuthenticationFailed.rawValue, errorMessage: "Cannot change principals during re-authentication"),
                    header)
                return fail("re-authentication as a different principal")
            }
            authenticated(user: user, now: now)
            let lifetime = version >= 1 ? max(0, sasl.reauthenticationMs) : 0
            ready[sequence] = Self.encode(
                SaslAuthenticateResponse(errorCode: 0, errorMessage: nil, authBytes: ByteBuffer(bytes: final), sessionLifetimeMs: lifetime), header)
            return .flush
        case .failed(let reason):
            ready[sequence] = Self.encode(
                SaslAuthenticateResponse(
                    errorCode: KafkaErrorCode.saslAuthenticationFailed.rawValue,
                    errorMessage: "Authentication failed during authentication due to invalid credentials with SASL mechanism \(exchange.mechanism.rawValue)"),
                header)
            return fail("SASL authentication failed: \(reason)")
        }
    }

    private static func encode<Response: KafkaResponse>(_ response: Response, _ header: RequestHeader) -> ResponseAction {
        do {
            let chunks = try WireWriter.encodeResponseFrame(response, version: header.apiVersion, correlationId: header.correlationId)
            return .send(ResponseFrame(chunks: chunks))
        } catch {
            return .close("cannot encode \(Response.apiKey.name) response: \(error)")
        }
    }

    private static func rawToken(_ bytes: [UInt8]) -> ResponseFrame {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(4 + bytes.count)
        buffer.writeInteger(Int32(bytes.count))
        buffer.writeBytes(bytes)
        return ResponseFrame(chunks: [.bytes(buffer)])
    }

    // MARK: Responses

    /// A dispatched request's outcome arrived (any order).
    /// - Returns: false when the connection is already closed (the caller releases `action`).
    /// A response carrying a throttle time mutes the connection from `now` (Kafka mutes after the
    /// send; here the response may wait behind earlier ones, so the mute starts when it is ready).
    mutating func responseReady(sequence: UInt64, action: ResponseAction, now: NIODeadline) -> Bool {
        outstanding = max(0, outstanding - 1)
        guard !isClosed else { return false }
        if case .send(let frame) = action, frame.throttleMs > 0 { throttled(milliseconds: frame.throttleMs, now: now) }
        ready[sequence] = action
        return true
    }

    /// The next response to write, in request order; nil when the next one is not ready.
    /// After a `.close` nothing else is given.
    mutating func nextToSend() -> ResponseAction? {
        guard !isClosed, let next = ready.removeValue(forKey: nextSent) else { return nil }
        nextSent += 1
        if case .close = next { isClosed = true }
        return next
    }

    /// The connection went away (or was closed): what is still queued, for the caller to release.
    mutating func closed() -> [ResponseAction] {
        isClosed = true
        held.removeAll()
        defer { ready.removeAll() }
        return Array(ready.values)
    }

    // MARK: Backpressure

    /// The pipeline asks to read. Returns whether to read now; otherwise the read is held until
    /// `shouldResumeRead` says so.
    mutating func readRequested(isWritable: Bool) -> Bool {
        if mayRead(isWritable: isWritable) { return true }
        readPending = true
        return false
    }

    /// After a response was written, the socket became writable or a mute ended: whether a held
    /// read may go now.
    mutating func shouldResumeRead(isWritable: Bool) -> Bool {
        guard readPending, mayRead(isWritable: isWritable) else { return false }
        readPending = false
        return true
    }

    private func mayRead(isWritable: Bool) -> Bool {
        inFlight < configuration.maxInFlight && isWritable && !isClosed && muteDeadline == nil && held.isEmpty
    }

    // MARK: Client quotas

    var isMuted: Bool { muteDeadline != nil }

    /// Mutes until `now + milliseconds` (overlapping throttles extend to the latest deadline).
    mutating func throttled(milliseconds: Int, now: NIODeadline) {
        let until = now + .milliseconds(Int64(milliseconds))
        if muteDeadline.map({ until > $0 }) ?? true { muteDeadline = until }
        let serial = until + configuration.throttledSerialPeriod
        if serialUntil.map({ serial > $0 }) ?? true { serialUntil = serial }
    }

    /// The mute timer fired: whether the mute is over (then drain `nextHeld` and resume reads);
    /// false when a later throttle extended it (wait for `muteDeadline`).
    mutating func unmuteIfDue(now: NIODeadline) -> Bool {
        guard let deadline = muteDeadline else { return true }
        guard now >= deadline else { return false }
        muteDeadline = nil
        return true
    }
}
