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

#if canImport(Glibc)
import Glibc
#endif

func getenvString(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}
