import Foundation
import Security
import Testing

@Suite struct ScramTests {
    /// RFC 7677 section 3's SCRAM-SHA-256 exchange, byte for byte.
    @Test func rfc7677Exchange() throws {
        let store = CredentialStore()
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        store.upsertScram(user: "user", mechanism: .scramSha256, credential: ScramCredential(mechanism: .scramSha256, password: "pencil", salt: salt))
        var exchange = SaslServerExchange(mechanism: .scramSha256, credentials: store, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
        let first = exchange.evaluate(Array("n,,n=user,r=rOprNGfwEbeRWgbNEkqO".utf8))
        #expect(first == .challenge(Array("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".utf8)))
        let final = exchange.evaluate(Array("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".utf8))
        #expect(final == .authenticated(user: "user", final: Array("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8)))
        // Nothing more is accepted once done.
        guard case .failed = exchange.evaluate([1]) else { Issue.record("accepted a token after completion"); return }
    }

    @Test func wrongProofFails() {
        let store = CredentialStore()
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        store.upsertScram(user: "user", mechanism: .scramSha256, credential: ScramCredential(mechanism: .scramSha256, password: "not-pencil", salt: salt))
        var exchange = SaslServerExchange(mechanism: .scramSha256, credentials: store, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
        _ = exchange.evaluate(Array("n,,n=user,r=rOprNGfwEbeRWgbNEkqO".utf8))
        let final = exchange.evaluate(Array("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".utf8))
        guard case .failed = final else { Issue.record("wrong password accepted: \(final)"); return }
    }

    @Test func unknownUserAndMechanismMismatchFail() {
        let store = CredentialStore()
        store.upsertScram(user: "alice", mechanism: .scramSha512, credential: ScramCredential(mechanism: .scramSha512, password: "pw"))
        var sha256 = SaslServerExchange(mechanism: .scramSha256, credentials: store)
        guard case .failed = sha256.evaluate(Array("n,,n=alice,r=abc".utf8)) else { Issue.record("SHA-256 used a SHA-512 credential"); return }
        var unknown = SaslServerExchange(mechanism: .scramSha512, credentials: store)
        guard case .failed = unknown.evaluate(Array("n,,n=bob,r=abc".utf8)) else { Issue.record("unknown user accepted"); return }
        var garbage = SaslServerExchange(mechanism: .scramSha512, credentials: store)
        guard case .failed = garbage.evaluate([0xFF, 0x00, 0x2C]) else { Issue.record("garbage accepted"); return }
    }

    @Test func plain() {
        let store = CredentialStore()
        store.setPlainUsers(CredentialStore.parsePlainUsers("# users\nalice=alice-secret\nuser_bob=\"bob pw\"\n"))
        var ok = SaslServerExchange(mechanism: .plain, credentials: store)
        #expect(ok.evaluate(Array("\0alice\0alice-secret".utf8)) == .authenticated(user: "alice", final: []))
        var wrong = SaslServerExchange(mechanism: .plain, credentials: store)
        guard case .failed = wrong.evaluate(Array("\0alice\0nope".utf8)) else { Issue.record("wrong password accepted"); return }
        var otherAuthz = SaslServerExchange(mechanism: .plain, credentials: store)
        guard case .failed = otherAuthz.evaluate(Array("bob\0alice\0alice-secret".utf8)) else { Issue.record("impersonation accepted"); return }
        var unknown = SaslServerExchange(mechanism: .plain, credentials: store)
        guard case .failed = unknown.evaluate(Array("\0carol\0".utf8)) else { Issue.record("unknown user accepted"); return }
    }

    @Test func credentialsRoundTripWithoutPassword() throws {
        let store = CredentialStore()
        store.upsertScram(user: "a,b=c", mechanism: .scramSha256, credential: ScramCredential(mechanism: .scramSha256, password: "secret-pw"))
        store.upsertScram(user: "a,b=c", mechanism: .scramSha512, credential: ScramCredential(mechanism: .scramSha512, password: "secret-pw", iterations: 8192))
        let text = store.scramText
        #expect(!text.contains("secret-pw"))
        let reloaded = CredentialStore()
        try reloaded.loadScram(text)
        #expect(reloaded.scramCredential(user: "a,b=c", mechanism: .scramSha512) == store.scramCredential(user: "a,b=c", mechanism: .scramSha512))
        #expect(reloaded.scramUsers().first?.credentials.map(\.1) == [4096, 8192])
        #expect(throws: CredentialStore.FormatError.self) { try reloaded.loadScram("x\tSCRAM-SHA-256\t1\n") }
    }
}
