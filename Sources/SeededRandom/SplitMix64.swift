/// The project's one seedable pseudo-random generator (SplitMix64, Steele, Lea and Flood 2014):
/// fast, 64 bits of state, good enough for ids, load generation and reproducible tests; not for
/// anything that must be unpredictable. Every random choice in Petrel is drawn from one of these,
/// seeded from the system generator unless a test or a benchmark passes its own seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// Seeded from the system generator (for production callers that do not need to replay).
    public init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
