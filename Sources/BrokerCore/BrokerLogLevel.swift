import Logging
import Synchronization

/// The process-wide log level behind `log.level`: `petrel serve` installs `DynamicLevelLogHandler`,
/// whose level is read here on every log call, so a dynamic config change applies at once.
public enum BrokerLogLevel {
    private static let level = Atomic<UInt8>(2)  // info
    private static let levels = Logger.Level.allCases

    public static var current: Logger.Level {
        let index = Int(level.load(ordering: .relaxed))
        return levels.indices.contains(index) ? levels[index] : .info
    }

    /// The level's name, as `log.level` spells it.
    public static var currentName: String { current.rawValue }

    public static func set(_ value: Logger.Level) {
        level.store(UInt8(levels.firstIndex(of: value) ?? 2), ordering: .relaxed)
    }

    /// The level when `log.level` is not set (the `--log-level` option).
    private static let baseline = Atomic<UInt8>(2)

    public static func setBaseline(_ value: Logger.Level) {
        baseline.store(UInt8(levels.firstIndex(of: value) ?? 2), ordering: .relaxed)
        set(value)
    }

    /// Applies the effective `log.level` (nil: back to the baseline).
    public static func apply(configured: String?) {
        if let configured, let value = Logger.Level(rawValue: configured) {
            set(value)
        } else {
            let index = Int(baseline.load(ordering: .relaxed))
            set(levels.indices.contains(index) ? levels[index] : .info)
        }
    }
}

/// A log handler whose level is `BrokerLogLevel.current`; setting a logger's level does nothing
/// (only `log.level` / `--log-level` change it, for the whole process).
public struct DynamicLevelLogHandler: LogHandler {
    private var wrapped: any LogHandler

    public init(wrapping handler: any LogHandler) {
        self.wrapped = handler
        self.wrapped.logLevel = .trace
    }

    public var logLevel: Logger.Level {
        get { BrokerLogLevel.current }
        set {}
    }

    public var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        wrapped.log(event: event)
    }
}
