import Foundation
import KafkaWire
import NIOCore
import Testing

/// Golden frames captured from real clients/brokers: `Fixtures/<api>_<request|response>_v<N>_<nnn>.hex`,
/// hex text of one frame without the 4-byte size prefix (header + body).
struct Fixture: Sendable, CustomStringConvertible {
    var fileName: String
    var apiKey: APIKey
    var isRequest: Bool
    var version: Int16
    var frame: [UInt8]

    var description: String { fileName }

    static func all() -> [Fixture] {
        guard let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil),
              let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path)
        else { return [] }
        var out: [Fixture] = []
        for name in names.sorted() where name.hasSuffix(".hex") {
            guard let text = try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8) else { continue }
            // Parse "<api>_<request|response>_v<N>_<nnn>.hex"; <api> may contain underscores.
            var parts = String(name.dropLast(4)).split(separator: "_").map(String.init)
            guard parts.count >= 4 else { continue }
            parts.removeLast() // nnn
            guard let versionPart = parts.popLast(), versionPart.hasPrefix("v"), let version = Int16(versionPart.dropFirst()),
                  let kind = parts.popLast()?.lowercased(), kind == "request" || kind == "response"
            else { continue }
            let apiName = parts.joined().lowercased().replacingOccurrences(of: "-", with: "")
            let key: APIKey? = Int16(apiName).map { APIKey(rawValue: $0) }
                ?? APIKey.allKnown.first { $0.name.lowercased() == apiName }
            guard let key, let frame = parseHex(text) else { continue }
            out.append(Fixture(fileName: name, apiKey: key, isRequest: kind == "request", version: version, frame: frame))
        }
        return out
    }
}

@Suite("Golden fixtures")
struct FixtureTests {
    static let fixtures = Fixture.all()

    @Test func fixtureDirectoryLoads() {
        // Passes with zero fixtures; the parameterized test below covers each one.
        #expect(Self.fixtures.allSatisfy { !$0.frame.isEmpty })
    }

    @Test("fixture decodes and re-encodes byte-identically", arguments: fixtures)
    func fixtureRoundTrip(fixture: Fixture) throws {
        var input = ByteBuffer(bytes: fixture.frame)
        var out = ByteBuffer()
        let type: any KafkaMessage.Type
        if fixture.isRequest {
            let header = try RequestHeader.read(from: &input)
            #expect(header.apiKey == fixture.apiKey)
            #expect(header.apiVersion == fixture.version)
            try header.write(to: &out)
            type = try #require(fixture.apiKey.requestType, "\(fixture.apiKey) is not served")
        } else {
            let headerVersion = fixture.apiKey.responseHeaderVersion(apiVersion: fixture.version)
            let header = try ResponseHeader.read(from: &input, version: headerVersion)
            header.write(to: &out, version: headerVersion)
            type = try #require(fixture.apiKey.responseType, "\(fixture.apiKey) is not served")
        }
        let headerBytes = out.readableBytes
        let message = try type.init(from: &input, version: fixture.version)
        if let quirk = Self.knownQuirks[fixture.fileName] {
            // Kafka ignores trailing bytes after a request body; so do we (the broker decides).
            #expect(input.readableBytes == quirk.trailingBytes, "\(fixture): \(quirk.reason)")
        } else {
            #expect(input.readableBytes == 0, "\(fixture): \(input.readableBytes) trailing bytes")
        }
        var writer = WireWriter(buffer: out)
        try message.write(to: &writer, version: fixture.version)
        let single = writer.finishSingleBuffer()
        let reencoded = try #require(single)
        if bytes(reencoded) == fixture.frame {
            return
        }
        // Legitimate differences: the peer wrote tagged fields at their default values (we omit
        // them; old librdkafka chokes on present-but-default tags), or a known client quirk. Then
        // the decoded structures must be equal and our encoding must be stable.
        #expect(Array(bytes(reencoded).prefix(headerBytes)) == Array(fixture.frame.prefix(headerBytes)))
        var ours = reencoded
        ours.moveReaderIndex(forwardBy: headerBytes)
        var again = ours
        let redecoded = try type.init(from: &again, version: fixture.version)
        #expect(again.readableBytes == 0)
        #expect(structurallyEqual(message, redecoded), "\(fixture): decoded structures differ after re-encoding")
        var w2 = WireWriter()
        try redecoded.write(to: &w2, version: fixture.version)
        #expect(w2.finishSingleBuffer() == ours, "\(fixture): unstable re-encoding")
        #expect(reencoded.readableBytes < fixture.frame.count, "\(fixture): our encoding should only be shorter (omitted defaults)")
    }

    /// Fixtures whose bytes legitimately cannot be reproduced, and why.
    static let knownQuirks: [String: (trailingBytes: Int, reason: String)] = [
        "metadata_request_v12_002.hex": (3, """
            librdkafka 2.16 writes the null Topics array of an all-topics Metadata v12 request as a 4-byte \
            zero placeholder; Kafka reads uvarint 0 (null), then AllowAutoTopicCreation=0, \
            IncludeTopicAuthorizedOperations=0, no tags, and ignores the 3 trailing bytes
            """),
    ]
}

/// Equality of two type-erased messages of the same generated (Equatable) type.
func structurallyEqual(_ a: any KafkaMessage, _ b: any KafkaMessage) -> Bool {
    func open<T: KafkaMessage & Equatable>(_ a: T) -> Bool {
        guard let b = b as? T else { return false }
        return a == b
    }
    guard let e = a as? any (KafkaMessage & Equatable) else { return false }
    return open(e)
}
