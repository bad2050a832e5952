import SeededRandom
import Synchronization

/// The store's random choices (a new segment's `segment.jitter.ms` share, the name a deleted
/// partition directory is renamed to), drawn from one seeded generator per `LogManager` so a test
/// or a simulation that passes a seed replays the same choices.
final class StoreRandom: Sendable {
    private let generator: Mutex<SplitMix64>

    /// `seed` nil: seeded from the system generator.
    init(seed: UInt64? = nil) {
        generator = Mutex(seed.map { SplitMix64(seed: $0) } ?? SplitMix64())
    }

    /// A uniform value in `range` (which must not be empty).
    func int64(in range: Range<Int64>) -> Int64 {
        generator.withLock { Int64.random(in: range, using: &$0) }
    }

    /// `count` random lowercase hex digits.
    func hex(_ count: Int) -> String {
        let digits = Array("0123456789abcdef")
        return generator.withLock { generator in String((0..<count).map { _ in digits[Int(generator.next() % 16)] }) }
    }
}
