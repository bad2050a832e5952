import Foundation
import BrokerCore
import KafkaWire
import NIOCore
import Security
import Testing

@testable import BrokerServer

/// The connection's decisions without a socket: ordering, backpressure, the SASL gate.
@Suite struct ConnectionStateMachineTests {
    let now = NIODeadline.uptimeNanoseconds(1_000_000_000)

    /// A request frame body (size prefix stripped), as KafkaFrameReader passes it on.
    func frame<Request: KafkaRequest>(_ request: Request, version: Int16, correlationId: Int32) -> ByteBuffer {
        let chunks = try! WireWriter.encodeRequestFrame(request, version: version, correlationId: correlationId, clientId: "test")
        var buffer = ByteBuffer()
        for case .bytes(var chunk) in chunks { buffer.writeBuffer(&chunk) }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer
    }

    func response<Response: KafkaResponse>(_ type: Response.Type, from action: ResponseAction?, version: Int16) -> (Int32, Response)? {
        guard case .send(let frame) = action else { return nil }
        var buffer = ByteBuffer()
        for case .bytes(var chunk) in frame.chunks { buffer.writeBuffer(&chunk) }
        buffer.moveReaderIndex(forwardBy: 4)
        guard let header = try? ResponseHeader.read(from: &buffer, version: Response.apiKey.responseHeaderVersion(apiVersion: version)),
            let body = try? Response(from: &buffer, version: version)
        else { return nil }
        return (header.correlationId, body)
    }

    func sent(_ bytes: [UInt8]) -> ResponseAction { .send(ResponseFrame(chunks: [.bytes(ByteBuffer(bytes: bytes))])) }

    func saslMachine(mechanisms: [SaslMechanism] = [.plain, .scramSha256], reauthMs: Int64 = 0) -> ConnectionStateMachine {
        let store = CredentialStore()
        store.setPlainUsers(["alice": "alice-secret"])
        store.upsertScram(user: "bob", mechanism: .scramSha256, credential: ScramCredential(mechanism: .scramSha256, password: "bob-secret"))
        return ConnectionStateMachine(
            configuration: .init(maxInFlight: 128, sasl: .init(enabledMechanisms: mechanisms, credentials: store, reauthenticationMs: reauthMs)))
    }

    // MARK: Ordering and backpressure

    @Test func responsesLeaveInRequestOrder() {
        var machine = ConnectionStateMachine(configuration: .init())
        var sequences: [UInt64] = []
        for id in 0..<3 {
            guard case .dispatch(let sequence, let header, _) = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: Int32(id)), now: now)
            else { Issue.record("not dispatched"); return }
            #expect(header.correlationId == Int32(id))
            sequences.append(sequence)
        }
        let value1 = machine.responseReady(sequence: sequences[2], action: sent([2]), now: now)
        #expect(value1)
        let value2 = machine.nextToSend()
        #expect(value2 == nil)  // 0 is not done yet
        let value3 = machine.responseReady(sequence: sequences[1], action: .noResponse, now: now)
        #expect(value3)
        let value4 = machine.responseReady(sequence: sequences[0], action: sent([0]), now: now)
        #expect(value4)
        guard case .send = machine.nextToSend(), case .noResponse = machine.nextToSend(), case .send = machine.nextToSend() else {
            Issue.record("responses out of order"); return
        }
        let value5 = machine.nextToSend()
        #expect(value5 == nil)
        #expect(machine.inFlight == 0)
    }

    @Test func readsPauseAtMaxInFlightAndResume() {
        var machine = ConnectionStateMachine(configuration: .init(maxInFlight: 2))
        let value6 = machine.readRequested(isWritable: true)
        #expect(value6)
        _ = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: 1), now: now)
        _ = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: 2), now: now)
        let value7 = machine.readRequested(isWritable: true)
        #expect(!value7)
        let value8 = machine.shouldResumeRead(isWritable: true)
        #expect(!value8)
        _ = machine.responseReady(sequence: 0, action: sent([1]), now: now)
        _ = machine.nextToSend()
        let value9 = machine.shouldResumeRead(isWritable: false)
        #expect(!value9)  // socket full: still held
        let value10 = machine.shouldResumeRead(isWritable: true)
        #expect(value10)
        let value11 = machine.shouldResumeRead(isWritable: true)
        #expect(!value11)  // resumed once
    }

    func throttledResponse(_ ms: Int) -> ResponseAction {
        var frame = ResponseFrame(chunks: [.bytes(ByteBuffer(bytes: [1]))])
        frame.throttleMs = ms
        return .send(frame)
    }

    func isDispatch(_ action: ConnectionStateMachine.FrameAction?) -> Bool {
        if case .dispatch = action { return true }
        return false
    }

    /// KIP-219: a throttled response mutes the connection; frames already read are held, not
    /// processed, until the mute ends, and then go one at a time for the serial period.
    @Test func throttleHoldsFramesAlreadyReadUntilTheMuteEnds() {
        var machine = ConnectionStateMachine(configuration: .init(throttledSerialPeriod: .seconds(3)))
        let produce = { (id: Int32) in self.frame(MetadataRequest(), version: 12, correlationId: id) }
        let step1 = machine.frameReceived(produce(0), now: now)
        #expect(isDispatch(step1))
        let step2 = machine.frameReceived(produce(1), now: now)
        #expect(isDispatch(step2))  // pipelined before any throttle
        let step3 = machine.responseReady(sequence: 0, action: throttledResponse(500), now: now)
        #expect(step3)
        #expect(machine.isMuted)
        // The rest of the socket read arrives after the throttle: held, reads stop.
        guard case .hold = machine.frameReceived(produce(2), now: now), case .hold = machine.frameReceived(produce(3), now: now) else {
            Issue.record("frames read while muted were not held"); return
        }
        #expect(machine.heldCount == 2)
        let step4 = machine.readRequested(isWritable: true)
        #expect(!step4)
        // The in-flight request's own throttle extends the mute to the later deadline.
        _ = machine.responseReady(sequence: 1, action: throttledResponse(800), now: now + .milliseconds(10))
        let step5 = machine.nextHeld(now: now + .milliseconds(600))
        #expect(step5 == nil)
        let step6 = machine.unmuteIfDue(now: now + .milliseconds(600))
        #expect(!step6)
        let step7 = machine.unmuteIfDue(now: now + .milliseconds(810))
        #expect(step7)
        // Serial after the mute: one request at a time.
        let later = now + .milliseconds(820)
        guard case .dispatch(let third, let header, _) = machine.nextHeld(now: later) else { Issue.record("held frame not released"); return }
        #expect(header.correlationId == 2)
        let step8 = machine.nextHeld(now: later)
        #expect(step8 == nil)
        let step9 = machine.shouldResumeRead(isWritable: true)
        #expect(!step9)  // a frame still waits
        _ = machine.responseReady(sequence: third, action: sent([3]), now: later)
        guard case .dispatch(_, let fourth, _) = machine.nextHeld(now: later) else { Issue.record("second held frame not released"); return }
        #expect(fourth.correlationId == 3)
        #expect(machine.heldCount == 0)
        _ = machine.responseReady(sequence: 3, action: sent([4]), now: later)
        let step10 = machine.shouldResumeRead(isWritable: true)
        #expect(step10)
        // Responses still leave in request order.
        var sent = 0
        while case .send = machine.nextToSend() { sent += 1 }
        #expect(sent == 4)
        // Past the serial period requests pipeline again.
        let afterwards = now + .seconds(5)
        let step11 = machine.frameReceived(produce(4), now: afterwards)
        #expect(isDispatch(step11))
        let step12 = machine.frameReceived(produce(5), now: afterwards)
        #expect(isDispatch(step12))
    }

    @Test func closingDropsHeldFrames() {
        var machine = ConnectionStateMachine(configuration: .init())
        _ = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: 0), now: now)
        _ = machine.responseReady(sequence: 0, action: throttledResponse(100), now: now)
        _ = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: 1), now: now)
        #expect(machine.heldCount == 1)
        let step13 = machine.closed()
        #expect(step13.count == 1)
        #expect(machine.heldCount == 0)
        let step14 = machine.nextHeld(now: now + .seconds(1))
        #expect(step14 == nil)
    }

    @Test func closeStopsEverythingAfterIt() {
        var machine = ConnectionStateMachine(configuration: .init())
        _ = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: 1), now: now)
        _ = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: 2), now: now)
        _ = machine.responseReady(sequence: 1, action: sent([2]), now: now)
        _ = machine.responseReady(sequence: 0, action: .close("bad request"), now: now)
        guard case .close = machine.nextToSend() else { Issue.record("expected close"); return }
        let value12 = machine.nextToSend()
        #expect(value12 == nil)
        let value13 = machine.closed().count
        #expect(value13 == 1)  // the response after the close is released, not sent
        let value14 = machine.responseReady(sequence: 5, action: .noResponse, now: now)
        #expect(!value14)
    }

    @Test func unreadableHeaderClosesAtOnce() {
        var machine = ConnectionStateMachine(configuration: .init())
        guard case .close = machine.frameReceived(ByteBuffer(bytes: [0, 3, 0]), now: now) else { Issue.record("expected close"); return }
    }

    // MARK: SASL gate

    @Test func onlyApiVersionsAndSaslBeforeAuthentication() {
        var machine = saslMachine()
        #expect(machine.frameBytesMax == 524_288)
        guard case .dispatch = machine.frameReceived(frame(ApiVersionsRequest(), version: 3, correlationId: 1), now: now) else {
            Issue.record("ApiVersions refused before authentication"); return
        }
        guard case .flush = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: 2), now: now) else {
            Issue.record("Metadata not refused"); return
        }
        _ = machine.responseReady(sequence: 0, action: sent([1]), now: now)
        guard case .send = machine.nextToSend(), case .close = machine.nextToSend() else { Issue.record("expected close after ApiVersions"); return }
    }

    @Test func plainAuthenticationThenRequestsFlow() {
        var machine = saslMachine()
        guard case .flush = machine.frameReceived(frame(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1, correlationId: 1), now: now),
            let (_, handshake) = response(SaslHandshakeResponse.self, from: machine.nextToSend(), version: 1)
        else { Issue.record("no handshake response"); return }
        #expect(handshake.errorCode == 0)
        #expect(handshake.mechanisms == ["PLAIN", "SCRAM-SHA-256"])
        let token = ByteBuffer(bytes: Array("\0alice\0alice-secret".utf8))
        _ = machine.frameReceived(frame(SaslAuthenticateRequest(authBytes: token), version: 2, correlationId: 2), now: now)
        guard let (correlationId, authenticate) = response(SaslAuthenticateResponse.self, from: machine.nextToSend(), version: 2) else {
            Issue.record("no authenticate response"); return
        }
        #expect(correlationId == 2)
        #expect(authenticate.errorCode == 0)
        #expect(machine.isAuthenticated)
        #expect(machine.principal == "User:alice")
        #expect(machine.frameBytesMax == nil)
        guard case .dispatch = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: 3), now: now) else {
            Issue.record("Metadata refused after authentication"); return
        }
    }

    @Test func wrongPasswordAnswersAuthenticationFailedThenCloses() {
        var machine = saslMachine()
        _ = machine.frameReceived(frame(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1, correlationId: 1), now: now)
        _ = machine.nextToSend()
        let token = ByteBuffer(bytes: Array("\0alice\0wrong".utf8))
        _ = machine.frameReceived(frame(SaslAuthenticateRequest(authBytes: token), version: 1, correlationId: 2), now: now)
        let authenticate = response(SaslAuthenticateResponse.self, from: machine.nextToSend(), version: 1)?.1
        #expect(authenticate?.errorCode == KafkaErrorCode.saslAuthenticationFailed.rawValue)
        guard case .close = machine.nextToSend() else { Issue.record("not closed after failed authentication"); return }
        guard case .ignore = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: 3), now: now) else {
            Issue.record("served after failed authentication"); return
        }
        #expect(!machine.isAuthenticated)
    }

    @Test func disabledMechanismIsRefused() {
        var machine = saslMachine(mechanisms: [.scramSha256])
        _ = machine.frameReceived(frame(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1, correlationId: 1), now: now)
        let handshake = response(SaslHandshakeResponse.self, from: machine.nextToSend(), version: 1)?.1
        #expect(handshake?.errorCode == KafkaErrorCode.unsupportedSaslMechanism.rawValue)
        #expect(handshake?.mechanisms == ["SCRAM-SHA-256"])
        guard case .close = machine.nextToSend() else { Issue.record("not closed"); return }
    }

    @Test func legacyUnframedPlainAfterHandshakeV0() {
        var machine = saslMachine()
        _ = machine.frameReceived(frame(SaslHandshakeRequest(mechanism: "PLAIN"), version: 0, correlationId: 1), now: now)
        let value15 = machine.nextToSend()
        #expect(response(SaslHandshakeResponse.self, from: value15, version: 0)?.1.errorCode == 0)
        #expect(machine.acceptsShortFrames)
        // The raw token, no Kafka header; the answer is a size-prefixed (empty) token.
        guard case .flush = machine.frameReceived(ByteBuffer(bytes: Array("\0alice\0alice-secret".utf8)), now: now),
            case .send(let frame) = machine.nextToSend(), case .bytes(let bytes) = frame.chunks.first
        else { Issue.record("no legacy token response"); return }
        #expect(Array(bytes.readableBytesView) == [0, 0, 0, 0])
        #expect(machine.principal == "User:alice")
        #expect(!machine.acceptsShortFrames)
    }

    @Test func legacyWrongPasswordClosesWithoutAnswer() {
        var machine = saslMachine()
        _ = machine.frameReceived(frame(SaslHandshakeRequest(mechanism: "PLAIN"), version: 0, correlationId: 1), now: now)
        _ = machine.nextToSend()
        _ = machine.frameReceived(ByteBuffer(bytes: Array("\0alice\0wrong".utf8)), now: now)
        guard case .close = machine.nextToSend() else { Issue.record("legacy failure did not close"); return }
    }

    @Test func malformedSaslAuthenticateCloses() {
        var machine = saslMachine()
        _ = machine.frameReceived(frame(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1, correlationId: 1), now: now)
        _ = machine.nextToSend()
        var bad = ByteBuffer()
        try! RequestHeader(apiKey: .saslAuthenticate, apiVersion: 1, correlationId: 2, clientId: "x").write(to: &bad)
        bad.writeBytes([0xFF, 0xFF, 0xFF])  // a truncated bytes field
        _ = machine.frameReceived(bad, now: now)
        guard case .close = machine.nextToSend() else { Issue.record("malformed SaslAuthenticate did not close"); return }
    }

    @Test func scramOverSaslAuthenticate() {
        var machine = saslMachine()
        _ = machine.frameReceived(frame(SaslHandshakeRequest(mechanism: "SCRAM-SHA-256"), version: 1, correlationId: 1), now: now)
        _ = machine.nextToSend()
        let clientFirstBare = "n=bob,r=clientnonce"
        _ = machine.frameReceived(
            frame(SaslAuthenticateRequest(authBytes: ByteBuffer(bytes: Array("n,,\(clientFirstBare)".utf8))), version: 2, correlationId: 2), now: now)
        guard let first = response(SaslAuthenticateResponse.self, from: machine.nextToSend(), version: 2)?.1, first.errorCode == 0 else {
            Issue.record("no server-first"); return
        }
        let serverFirst = String(decoding: first.authBytes.readableBytesView, as: UTF8.self)
        let fields = Dictionary(uniqueKeysWithValues: serverFirst.split(separator: ",").map { ($0.first!, String($0.dropFirst(2))) })
        let salt = Array(Data(base64Encoded: fields["s"]!)!)
        // The client's side of RFC 5802.
        let salted = Scram.saltedPassword(.scramSha256, password: Array("bob-secret".utf8), salt: salt, iterations: Int(fields["i"]!)!)
        let clientKey = Scram.hmac(.scramSha256, key: salted, Array("Client Key".utf8))
        let withoutProof = "c=biws,r=\(fields["r"]!)"
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
        let signature = Scram.hmac(.scramSha256, key: Scram.hash(.scramSha256, clientKey), authMessage)
        let proof = Data(zip(clientKey, signature).map { $0 ^ $1 }).base64EncodedString()
        _ = machine.frameReceived(
            frame(SaslAuthenticateRequest(authBytes: ByteBuffer(bytes: Array("\(withoutProof),p=\(proof)".utf8))), version: 2, correlationId: 3), now: now)
        let final = response(SaslAuthenticateResponse.self, from: machine.nextToSend(), version: 2)?.1
        #expect(final?.errorCode == 0)
        let serverKey = Scram.hmac(.scramSha256, key: salted, Array("Server Key".utf8))
        let expected = "v=" + Data(Scram.hmac(.scramSha256, key: serverKey, authMessage)).base64EncodedString()
        #expect(final.map { String(decoding: $0.authBytes.readableBytesView, as: UTF8.self) } == expected)
        #expect(machine.principal == "User:bob")
    }

    @Test func expiredSessionMustReauthenticate() {
        var machine = saslMachine(reauthMs: 1000)
        _ = machine.frameReceived(frame(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1, correlationId: 1), now: now)
        _ = machine.nextToSend()
        _ = machine.frameReceived(
            frame(SaslAuthenticateRequest(authBytes: ByteBuffer(bytes: Array("\0alice\0alice-secret".utf8))), version: 1, correlationId: 2), now: now)
        let value16 = machine.nextToSend()
        #expect(response(SaslAuthenticateResponse.self, from: value16, version: 1)?.1.sessionLifetimeMs == 1000)
        // Re-authentication before expiry (KIP-368) extends the session.
        _ = machine.frameReceived(frame(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1, correlationId: 3), now: now + .milliseconds(900))
        let value17 = machine.nextToSend()
        #expect(response(SaslHandshakeResponse.self, from: value17, version: 1)?.1.errorCode == 0)
        _ = machine.frameReceived(
            frame(SaslAuthenticateRequest(authBytes: ByteBuffer(bytes: Array("\0alice\0alice-secret".utf8))), version: 1, correlationId: 4),
            now: now + .milliseconds(900))
        let value18 = machine.nextToSend()
        #expect(response(SaslAuthenticateResponse.self, from: value18, version: 1)?.1.errorCode == 0)
        guard case .dispatch = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: 5), now: now + .milliseconds(1500)) else {
            Issue.record("refused within the renewed session"); return
        }
        _ = machine.responseReady(sequence: 4, action: sent([5]), now: now)
        _ = machine.nextToSend()
        guard case .flush = machine.frameReceived(frame(MetadataRequest(), version: 12, correlationId: 6), now: now + .milliseconds(2000)),
            case .close = machine.nextToSend()
        else { Issue.record("served after the session expired"); return }
    }
}
