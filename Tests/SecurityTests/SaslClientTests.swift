import Foundation
import Security
import Testing

@Suite struct SaslClientTests {
    /// RFC 7677 section 3's SCRAM-SHA-256 exchange from the client's side, byte for byte.
    @Test func rfc7677ClientSide() {
        var client = SaslClientExchange(mechanism: .scramSha256, user: "user", password: "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO")
        #expect(client.start() == Array("n,,n=user,r=rOprNGfwEbeRWgbNEkqO".utf8))
        let final = client.evaluate(Array("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".utf8))
        #expect(final == .send(Array("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".utf8)))
        #expect(client.evaluate(Array("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8)) == .done)
    }

    @Test func forgedServerSignatureAndForeignNonceFail() {
        var client = SaslClientExchange(mechanism: .scramSha256, user: "user", password: "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO")
        _ = client.start()
        _ = client.evaluate(Array("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".utf8))
        guard case .failed = client.evaluate(Array("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8)) else {
            Issue.record("accepted a forged server signature"); return
        }
        var other = SaslClientExchange(mechanism: .scramSha512, user: "user", password: "pencil", clientNonce: "abc")
        _ = other.start()
        guard case .failed = other.evaluate(Array("r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".utf8)) else {
            Issue.record("accepted a server nonce that does not extend the client's"); return
        }
    }

    /// Both sides of this module agree, for each mechanism (and PLAIN's token is what the server parses).
    @Test(arguments: SaslMechanism.allCases) func clientAndServerAgree(mechanism: SaslMechanism) {
        let store = CredentialStore()
        if mechanism.isScram {
            store.upsertScram(user: "al,ice", mechanism: mechanism, credential: ScramCredential(mechanism: mechanism, password: "pw"))
        } else {
            store.setPlainUsers(["al,ice": "pw"])
        }
        var server = SaslServerExchange(mechanism: mechanism, credentials: store)
        var client = SaslClientExchange(mechanism: mechanism, user: "al,ice", password: "pw")
        var token = client.start()
        for _ in 0..<3 {
            switch server.evaluate(token) {
            case .challenge(let challenge):
                guard case .send(let next) = client.evaluate(challenge) else { Issue.record("client stopped early"); return }
                token = next
            case .authenticated(let user, let final):
                #expect(user == "al,ice")
                #expect(client.evaluate(final) == .done)
                return
            case let other:
                Issue.record("server: \(other)"); return
            }
        }
        Issue.record("exchange did not finish")
    }
}
