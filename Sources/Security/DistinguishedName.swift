/// Reads an X.509 certificate's subject as the RFC 2253 string Java's `X500Principal.getName()`
/// gives (most specific RDN first, e.g. `CN=client,OU=eng,O=Example,C=US`): Kafka's default mTLS
/// principal. A minimal DER walk, no general ASN.1.
public enum DistinguishedName {
    /// The subject DN of a DER-encoded certificate, nil when it does not parse.
    public static func subject(ofCertificate der: [UInt8]) -> String? {
        var reader = DERReader(bytes: der[...])
        guard var certificate = reader.read(tag: 0x30)?.contents, var tbs = certificate.read(tag: 0x30)?.contents else { return nil }
        if tbs.peekTag == 0xA0 { _ = tbs.read(tag: 0xA0) }  // version
        guard tbs.read(tag: 0x02) != nil,  // serialNumber
            tbs.read(tag: 0x30) != nil,  // signature
            tbs.read(tag: 0x30) != nil,  // issuer
            tbs.read(tag: 0x30) != nil,  // validity
            let subject = tbs.read(tag: 0x30)
        else { return nil }
        return format(name: subject.contents)
    }

    static let keywords: [String: String] = [
        "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.9": "STREET",
        "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
    ]

    static func format(name: DERReader) -> String? {
        var name = name
        var rdns: [String] = []
        while !name.isAtEnd {
            guard var set = name.read(tag: 0x31)?.contents else { return nil }
            var attributes: [String] = []
            while !set.isAtEnd {
                guard var pair = set.read(tag: 0x30)?.contents, let oidBytes = pair.read(tag: 0x06)?.contents.bytes, let value = pair.readAny() else {
                    return nil
                }
                let oid = objectIdentifier(oidBytes)
                if let keyword = keywords[oid], let text = value.text {
                    attributes.append("\(keyword)=\(escape(text))")
                } else {
                    attributes.append("\(oid)=#" + value.encoded.map { String($0, radix: 16).leftPadded(2) }.joined())
                }
            }
            rdns.append(attributes.joined(separator: "+"))
        }
        return rdns.reversed().joined(separator: ",")
    }

    static func objectIdentifier(_ bytes: ArraySlice<UInt8>) -> String {
        guard let first = bytes.first else { return "" }
        var parts = first < 80 ? [Int(first) / 40, Int(first) % 40] : [2, Int(first) - 80]
        var value = 0
        for byte in bytes.dropFirst() {
            value = value << 7 | Int(byte & 0x7F)
            if byte & 0x80 == 0 {
                parts.append(value)
                value = 0
            }
        }
        return parts.map(String.init).joined(separator: ".")
    }

    /// RFC 2253 section 2.4 escaping.
    static func escape(_ text: String) -> String {
        var result = ""
        for (index, c) in text.enumerated() {
            if ",+\"\\<>;".contains(c) || (index == 0 && (c == "#" || c == " ")) || (index == text.count - 1 && c == " ") {
                result.append("\\")
            }
            result.append(c)
        }
        return result
    }
}

struct DERReader {
    struct Element {
        var tag: UInt8
        var contents: DERReader
        /// The whole TLV.
        var encoded: ArraySlice<UInt8>

        /// String types: UTF8String, PrintableString, IA5String, T61String (as Latin-1), BMPString.
        var text: String? {
            let bytes = contents.bytes
            switch tag {
            case 0x0C, 0x13, 0x16: return String(decoding: bytes, as: UTF8.self)
            case 0x14: return String(bytes.map { Character(Unicode.Scalar($0)) })
            case 0x1E:
                guard bytes.count % 2 == 0 else { return nil }
                let units = stride(from: bytes.startIndex, to: bytes.endIndex, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
                return String(decoding: units, as: UTF16.self)
            default: return nil
            }
        }
    }

    var bytes: ArraySlice<UInt8>

    var isAtEnd: Bool { bytes.isEmpty }
    var peekTag: UInt8? { bytes.first }

    mutating func readAny() -> Element? {
        guard bytes.count >= 2 else { return nil }
        let start = bytes.startIndex
        let tag = bytes[start]
        var index = start + 1
        var length = Int(bytes[index])
        index += 1
        if length & 0x80 != 0 {
            let count = length & 0x7F
            guard count >= 1, count <= 4, bytes.endIndex - index >= count else { return nil }
            length = 0
            for _ in 0..<count {
                length = length << 8 | Int(bytes[index])
                index += 1
            }
        }
        guard length >= 0, bytes.endIndex - index >= length else { return nil }
        let element = Element(tag: tag, contents: DERReader(bytes: bytes[index..<index + length]), encoded: bytes[start..<index + length])
        bytes = bytes[(index + length)...]
        return element
    }

    mutating func read(tag: UInt8) -> Element? {
        guard peekTag == tag else { return nil }
        return readAny()
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
