import BrokerCore
import Security
import Testing

@Suite struct ListenerConfigurationTests {
    @Test func defaultIsOnePlaintextListenerOnLoopback() throws {
        #expect(try BrokerConfiguration().resolvedListeners() == [Listener(name: "PLAINTEXT", securityProtocol: .plaintext, host: "127.0.0.1", port: 9092)])
        var shorthand = BrokerConfiguration()
        try shorthand.apply(key: "listeners", value: "127.0.0.1:0")  // what --listen sets
        #expect(try shorthand.resolvedListeners() == [Listener(name: "PLAINTEXT", securityProtocol: .plaintext, host: "127.0.0.1", port: 0)])
    }

    @Test func namedListenersWithProtocolMap() throws {
        var configuration = BrokerConfiguration()
        try configuration.apply(key: "listener.security.protocol.map", value: "INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL")
        try configuration.apply(key: "listeners", value: "INTERNAL://127.0.0.1:9092,EXTERNAL://:9093")
        try configuration.apply(key: "advertised.listeners", value: "INTERNAL://127.0.0.1:9092,EXTERNAL://broker.example.com:19093")
        try configuration.apply(key: "listener.name.external.ssl.client.auth", value: "required")
        let listeners = try configuration.resolvedListeners()
        #expect(listeners.map(\.name) == ["INTERNAL", "EXTERNAL"])
        #expect(listeners.map(\.securityProtocol) == [.plaintext, .saslSSL])
        #expect(listeners[1].host == "0.0.0.0" && listeners[1].port == 9093)
        #expect(try configuration.resolvedAdvertisedListeners()["EXTERNAL"]?.host == "broker.example.com")
        #expect(configuration.listenerConfig("EXTERNAL", "ssl.client.auth") == "required")
        #expect(configuration.listenerConfig("INTERNAL", "ssl.client.auth") == nil)
        #expect(configuration.listenHost == "127.0.0.1" && configuration.listenPort == 9092)
    }

    @Test func badListenersAreRefused() throws {
        var unmapped = BrokerConfiguration()
        try unmapped.apply(key: "listeners", value: "CUSTOM://127.0.0.1:9092")
        #expect(throws: ConfigurationError.self) { try unmapped.resolvedListeners() }
        var twice = BrokerConfiguration()
        try twice.apply(key: "listeners", value: "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093")
        #expect(throws: ConfigurationError.self) { try twice.resolvedListeners() }
        var badMap = BrokerConfiguration()
        try badMap.apply(key: "listener.security.protocol.map", value: "A:KERBEROS")
        #expect(throws: ConfigurationError.self) { try badMap.resolvedListeners() }
    }
}
