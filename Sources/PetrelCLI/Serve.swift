import ArgumentParser
import BrokerCore
import BrokerServer
import Dispatch
import Foundation
import Logging
import Synchronization
import NIOCore
import Security

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the broker.")

    @Option(name: .long, help: "Address to listen on, HOST:PORT (Kafka: listeners).")
    var listen: String?

    @Option(name: .long, help: "Data directory (Kafka: log.dirs). Default: ./petrel-data")
    var dataDir: String?

    @Option(name: .long, help: "A server.properties file with Kafka broker config names.")
    var config: String?

    @Option(name: .customLong("set"), help: "Override one config, key=value (repeatable).")
    var overrides: [String] = []

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func run() throws {
        var configuration = BrokerConfiguration()
        do {
            if let config {
                let text = try String(contentsOfFile: config, encoding: .utf8)
                for (key, value) in try Properties.parse(text) { try configuration.apply(key: key, value: value) }
            }
            for assignment in overrides {
                let (key, value) = try Properties.parseAssignment(assignment)
                try configuration.apply(key: key, value: value)
            }
            if let listen { try configuration.apply(key: "listeners", value: listen) }
            if let dataDir { try configuration.apply(key: "log.dirs", value: dataDir) }
        } catch let error as ConfigurationError {
            throw ValidationError("invalid configuration: \(error)")
        }

        let level = Logger.Level(rawValue: logLevel) ?? .info
        // The level is process-wide and follows `log.level` (static or dynamic) over --log-level.
        BrokerLogLevel.setBaseline(level)
        BrokerLogLevel.apply(configured: configuration.logLevel)
        LoggingSystem.bootstrap { label in
            DynamicLevelLogHandler(wrapping: StreamLogHandler.standardError(label: label))
        }
        let logger = Logger(label: "petrel")
        let server = KafkaServer(configuration: configuration, logger: logger)
        do {
            try server.start()
        } catch {
            logger.critical("failed to start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        // Only a SIGINT/SIGTERM ends the loop: a semaphore wait can return early (e.g. around
        // SIGSTOP/SIGCONT), so the handler also sets a flag that the loop checks.
        let done = DispatchSemaphore(value: 0)
        let stopRequested = Mutex(false)
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let queue = DispatchQueue(label: "petrel.signals")
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                stopRequested.withLock { $0 = true }
                done.signal()
            }
            source.resume()
            sources.append(source)
        }
        // Announced only once the signal handlers are in place: a SIGTERM right after this line
        // (a harness stopping a broker it just started) must not fall into SIG_IGN.
        let port = server.localAddress?.port ?? configuration.listenPort
        let host = server.boundListeners.first?.listener.host ?? configuration.listenHost
        // Written unbuffered: test harnesses and scripts wait for this line.
        let ready = "petrel listening on \(host):\(port) (data dir \(configuration.dataDirectory), io \(server.ioEngineName))\n"
        FileHandle.standardOutput.write(Data(ready.utf8))
        for (listener, port) in server.boundListeners {
            let line = "petrel listener \(listener.name) (\(listener.securityProtocol.rawValue)) bound to \(listener.host):\(port)\n"
            FileHandle.standardOutput.write(Data(line.utf8))
        }
        while !stopRequested.withLock({ $0 }) {
            _ = done.wait(timeout: .now() + .seconds(1))
        }
        logger.info("shutting down")
        do {
            try server.shutdown()
        } catch {
            logger.error("unclean shutdown", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        withExtendedLifetime(sources) {}
        logger.info("stopped")
    }
}
