import KafkaWire
import NIOCore
import SeededRandom

func buffer(_ bytes: [UInt8]) -> ByteBuffer {
    ByteBuffer(bytes: bytes)
}

func bytes(_ buffer: ByteBuffer) -> [UInt8] {
    Array(buffer.readableBytesView)
}

func hex(_ buffer: ByteBuffer) -> String {
    buffer.readableBytesView.map { b in
        let s = String(b, radix: 16)
        return b < 16 ? "0" + s : s
    }.joined()
}

func parseHex(_ text: String) -> [UInt8]? {
    var out: [UInt8] = []
    var pending: UInt8? = nil
    for scalar in text.unicodeScalars {
        let v: UInt8
        switch scalar {
        case "0"..."9": v = UInt8(scalar.value - 48)
        case "a"..."f": v = UInt8(scalar.value - 87)
        case "A"..."F": v = UInt8(scalar.value - 55)
        case " ", "\n", "\r", "\t": continue
        default: return nil
        }
        if let p = pending {
            out.append(p << 4 | v)
            pending = nil
        } else {
            pending = v
        }
    }
    return pending == nil ? out : nil
}

/// Encodes `message` at `version` into one buffer.
func encode<M: KafkaMessage>(_ message: M, version: Int16) throws -> ByteBuffer {
    try message.encoded(version: version)
}

/// encode -> decode -> re-encode; returns (first encoding, decoded, second encoding).
func roundTrip<M: KafkaMessage>(_ message: M, version: Int16) throws -> (ByteBuffer, M, ByteBuffer) {
    let first = try encode(message, version: version)
    var input = first
    let decoded = try M(from: &input, version: version)
    guard input.readableBytes == 0 else {
        throw WireError.malformed("\(M.self) v\(version): \(input.readableBytes) bytes left after decoding")
    }
    let second = try encode(decoded, version: version)
    return (first, decoded, second)
}

/// A small, valid v2 record batch-like blob (the wire layer treats records as opaque bytes).
func sampleRecords(_ seed: UInt8 = 7) -> Records {
    Records(ByteBuffer(bytes: (0..<70).map { UInt8(truncatingIfNeeded: $0) &+ seed }))
}
