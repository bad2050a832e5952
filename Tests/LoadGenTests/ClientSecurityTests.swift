import Foundation
import Testing
import WireClient
import Security

@Suite struct ClientSecurityTests {
    @Test func plaintextByDefaultAndSaslFromJaasConfig() throws {
        let none = try ClientSecurity(properties: [:])
        #expect(none.securityProtocol == .plaintext && none.tlsContext == nil && none.sasl == nil)
        let sasl = try ClientSecurity(properties: [
            "security.protocol": "sasl_plaintext", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": #"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3cret";"#,
        ])
        #expect(sasl.securityProtocol == .saslPlaintext)
        #expect(sasl.sasl?.username == "alice" && sasl.sasl?.password == "s3cret" && sasl.sasl?.mechanismName == "SCRAM-SHA-512")
    }

    @Test func typosAndMissingCredentialsAreErrors() {
        #expect(throws: ClientError.self) { try ClientSecurity(properties: ["security.protocl": "SASL_SSL"]) }
        #expect(throws: ClientError.self) { try ClientSecurity(properties: ["security.protocol": "TLS"]) }
        #expect(throws: ClientError.self) { try ClientSecurity(properties: ["security.protocol": "SASL_PLAINTEXT", "sasl.username": "u"]) }
        #expect(throws: ClientError.self) {
            try ClientSecurity(properties: ["security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI", "sasl.username": "u", "sasl.password": "p"])
        }
        #expect(throws: ClientError.self) { try ClientSecurity(properties: ["security.protocol": "SSL", "ssl.ca.location": "/nonexistent/ca.pem"]) }
        #expect(throws: ClientError.self) { try ClientSecurity.parseProperty("=x") }
    }

    @Test func propertiesFileAsKafkaToolsReadIt() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("client-\(UUID().uuidString).properties").path
        try """
            # comment
            ! also a comment
            security.protocol = SASL_PLAINTEXT
            sasl.mechanism: PLAIN
            sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\
                username="bob" password="pw";
            """.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let properties = try ClientSecurity.readProperties(file: path)
        #expect(properties["security.protocol"] == "SASL_PLAINTEXT")
        #expect(properties["sasl.mechanism"] == "PLAIN")
        let security = try ClientSecurity(properties: properties)
        #expect(security.sasl?.username == "bob" && security.sasl?.password == "pw")
        #expect(try ClientSecurity.parseProperty("ssl.ca.location=/a=b") == ("ssl.ca.location", "/a=b"))
    }
}
