/// Kafka's 128-bit UUID (topic ids, directory ids). Printed, like Kafka's `Uuid.toString()`, as
/// 22 characters of unpadded base64url.
public struct KafkaUUID: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var mostSignificantBits: UInt64
    public var leastSignificantBits: UInt64

    public init(mostSignificantBits: UInt64, leastSignificantBits: UInt64) {
        self.mostSignificantBits = mostSignificantBits
        self.leastSignificantBits = leastSignificantBits
    }

    /// The all-zero UUID (Kafka's `Uuid.ZERO_UUID`, "no id").
    public static let zero = KafkaUUID(mostSignificantBits: 0, leastSignificantBits: 0)
    /// Kafka's `Uuid.ONE_UUID` (reserved for the metadata topic).
    public static let one = KafkaUUID(mostSignificantBits: 0, leastSignificantBits: 1)

    /// The 16 bytes, big-endian.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(16)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: mostSignificantBits >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: leastSignificantBits >> UInt64(shift))) }
        return out
    }

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { hi = hi << 8 | UInt64(b) } else { lo = lo << 8 | UInt64(b) }
        }
        self.init(mostSignificantBits: hi, leastSignificantBits: lo)
    }

    /// A random version-4 UUID, as Kafka's `Uuid.randomUuid()`: never zero, never `.one`, and never
    /// one whose string form starts with '-'.
    public static func random() -> KafkaUUID {
        var rng = SystemRandomNumberGenerator()
        return random(using: &rng)
    }

    public static func random(using rng: inout some RandomNumberGenerator) -> KafkaUUID {
        while true {
            var hi = rng.next() as UInt64
            var lo = rng.next() as UInt64
            hi = (hi & ~0xF000) | 0x4000 // version 4
            lo = (lo & ~(0xC000_0000_0000_0000 as UInt64)) | 0x8000_0000_0000_0000 // IETF variant
            let candidate = KafkaUUID(mostSignificantBits: hi, leastSignificantBits: lo)
            if candidate != .zero && candidate != .one && !candidate.description.hasPrefix("-") {
                return candidate
            }
        }
    }

    /// Same as `KafkaUUID.random()`.
    public init() {
        self = KafkaUUID.random()
    }

    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public var description: String {
        let b = bytes
        var out = [UInt8]()
        out.reserveCapacity(22)
        var i = 0
        while i + 3 <= 15 {
            let n = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2])
            out.append(Self.alphabet[Int(n >> 18 & 63)])
            out.append(Self.alphabet[Int(n >> 12 & 63)])
            out.append(Self.alphabet[Int(n >> 6 & 63)])
            out.append(Self.alphabet[Int(n & 63)])
            i += 3
        }
        // One byte left (16 = 5 * 3 + 1): two characters, no padding.
        let n = UInt32(b[15]) << 16
        out.append(Self.alphabet[Int(n >> 18 & 63)])
        out.append(Self.alphabet[Int(n >> 12 & 63)])
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses the 22-character base64url form (Kafka's `Uuid.fromString`).
    public init?(_ string: String) {
        let chars = Array(string.utf8)
        guard chars.count == 22 else { return nil }
        var values = [UInt8]()
        values.reserveCapacity(22)
        for c in chars {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(c - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(c - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "-"): values.append(62)
            case UInt8(ascii: "_"): values.append(63)
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(16)
        var i = 0
        while i + 4 <= 20 {
            let n = UInt32(values[i]) << 18 | UInt32(values[i + 1]) << 12 | UInt32(values[i + 2]) << 6 | UInt32(values[i + 3])
            out.append(UInt8(truncatingIfNeeded: n >> 16))
            out.append(UInt8(truncatingIfNeeded: n >> 8))
            out.append(UInt8(truncatingIfNeeded: n))
            i += 4
        }
        let n = UInt32(values[20]) << 18 | UInt32(values[21]) << 12
        guard n & 0xFFFF == 0 else { return nil } // non-canonical trailing bits
        out.append(UInt8(truncatingIfNeeded: n >> 16))
        self.init(bytes: out)
    }

    public static func < (lhs: KafkaUUID, rhs: KafkaUUID) -> Bool {
        (lhs.mostSignificantBits, lhs.leastSignificantBits) < (rhs.mostSignificantBits, rhs.leastSignificantBits)
    }
}
