import Foundation
import Security
import Testing

@Suite struct PrincipalTests {
    /// Self-signed, subject /C=US/O=Petrel, Inc./OU=test/CN=client+UID=42 (no key in the repo).
    static let certificate = Array(Data(base64Encoded: "MIICAjCCAaegAwIBAgIUciZM70LwFC8Rhgpjb3UMYh05GYowCgYIKoZIzj0EAwIwVjELMAkGA1UEBhMCVVMxFTATBgNVBAoMDFBldHJlbCwgSW5jLjENMAsGA1UECwwEdGVzdDEhMA0GA1UEAwwGY2xpZW50MBAGCgmSJomT8ixkAQEMAjQyMB4XDTI2MTIwNTAyMTUwOVoXDTM2MTIwMjAyMTUwOVowVjELMAkGA1UEBhMCVVMxFTATBgNVBAoMDFBldHJlbCwgSW5jLjENMAsGA1UECwwEdGVzdDEhMA0GA1UEAwwGY2xpZW50MBAGCgmSJomT8ixkAQEMAjQyMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeBhShaMgTTTWyXt8odOViwLe4XoTRXtXrXMt8coUfwwnHYS6ncf2dVU5fUN53zvNS8XwebExwbf4Q3YdPRCRJaNTMFEwHQYDVR0OBBYEFAb0z8Dt2BbMJYqGOJDdBh+fk8ddMB8GA1UdIwQYMBaAFAb0z8Dt2BbMJYqGOJDdBh+fk8ddMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAJQi6GG1gvX+xsonHXkQmgBMaUtbTu1Uexl0WIAjWP4wAiEAmZre9R81e/qazkCuj2CmfjMQgIr5yFIH/9nv08Q9jR8=")!)

    @Test func subjectAsRFC2253() {
        // openssl x509 -nameopt RFC2253 prints: UID=42+CN=client,OU=test,O=Petrel\, Inc.,C=US
        let dn = DistinguishedName.subject(ofCertificate: Self.certificate)
        #expect(dn == "UID=42+CN=client,OU=test,O=Petrel\\, Inc.,C=US" || dn == "CN=client+UID=42,OU=test,O=Petrel\\, Inc.,C=US")
        #expect(DistinguishedName.subject(ofCertificate: Array(Self.certificate.prefix(40))) == nil)
        #expect(DistinguishedName.subject(ofCertificate: []) == nil)
    }

    @Test func mappingRules() throws {
        let mapper = try PrincipalMapper(rules: "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=([a-zA-Z]+),OU=(.*?),O=.*$/$1@$2/L,DEFAULT")
        #expect(mapper.map("CN=kafka-svc,OU=ServiceUsers,O=Unknown,C=US") == "kafka-svc")
        #expect(mapper.map("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US") == "duke@sme")
        #expect(mapper.map("UID=1,C=US") == "UID=1,C=US")
        #expect(try PrincipalMapper().map("CN=a,O=b") == "CN=a,O=b")
        #expect(throws: PrincipalMapper.RuleError.self) { try PrincipalMapper(rules: "RULE:nope") }
    }
}
