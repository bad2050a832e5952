/// Seeded randomness for tests: `PETREL_TEST_SEED=<n>` replays a failure; otherwise a fresh seed
/// is drawn and printed by the caller on failure.
public struct TestSeed: Sendable {
    public let value: UInt64

    public init() {
        if let text = getenvString("PETREL_TEST_SEED"), let value = UInt64(text) {
            self.value = value
        } else {
            var generator = SystemRandomNumberGenerator()
            self.value = generator.next()
        }
    }

    public init(_ value: UInt64) { self.value = value }
}

/// A small, fast, seedable generator (SplitMix64).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

#if canImport(Glibc)
import Glibc
#endif

func getenvString(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}
