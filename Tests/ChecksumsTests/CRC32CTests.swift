import Checksums
import Testing

@Suite struct CRC32CTests {
    // Standard check value and RFC 3720 (iSCSI) appendix B.4 vectors.
    @Test func standardVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    @Test func hardwareMatchesPortableAtEveryLengthAndAlignment() {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes.withUnsafeBytes { all in
            for length in [0, 1, 7, 8, 9, 63, 255, 256, 767, 768, 769, 4096, 24_575, 24_576, 24_577, 99_000] {
                for shift in 0..<3 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[shift..<(shift + length)])
                    #expect(CRC32C.checksum(slice) == CRC32C.portableChecksum(slice), "length \(length) shift \(shift)")
                }
            }
        }
    }

    @Test func incrementalEqualsOneShot() {
        let bytes = Array("The quick brown fox jumps over the lazy dog".utf8)
        var crc = CRC32C()
        bytes.withUnsafeBytes { all in
            crc.update(UnsafeRawBufferPointer(rebasing: all[0..<10]))
            crc.update(UnsafeRawBufferPointer(rebasing: all[10...]))
        }
        #expect(crc.value == CRC32C.checksum(bytes))
        #expect(crc.value == 0x2262_0404)
    }
}
