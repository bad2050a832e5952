import ArgumentParser
import Foundation
import KafkaWire
import RecordFormat
import WireClient

/// Console producer: one record per stdin line, acks=all.
struct Produce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Produce lines from stdin as records (acks=all). Prints nothing on success."
    )
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Topic to produce to.") var topic: String
    @Option(help: "Partition (default: murmur2 of the key, as Kafka's partitioner; unkeyed: round-robin per batch).")
    var partition: Int32?
    @Option(help: "Split each line at the first SEP into key and value.") var keySeparator: String?
    @Option(name: .customLong("header"), help: "Header key=value added to every record (repeatable).") var headers: [String] = []

    func run() throws {
        let headers = try parseAssignments(headers, option: "--header").map { ($0.0, Optional(Array($0.1.utf8))) }
        if let keySeparator, keySeparator.isEmpty { throw ValidationError("--key-separator must not be empty") }
        let (topic, partition, separator) = (topic, partition, keySeparator.map { Array($0.utf8) })
        try connection.withClient { client in
            // Like kafka-console-producer: a missing topic is created when the broker allows it.
            guard let metadata = try await client.topic(topic, autoCreate: true) else {
                throw ClientError(.invalidArgument, "topic \(topic) does not exist (and the broker does not create topics automatically)")
            }
            let partitionCount = Int32(metadata.partitions.count)
            if let partition, !(0..<partitionCount).contains(partition) {
                throw ClientError(.invalidArgument, "topic \(topic) has no partition \(partition) (it has \(partitionCount))")
            }
            var reader = LineReader(fd: 0)
            var lineNumber = 0
            var roundRobin: Int32 = 0
            while let lines = try reader.nextLines() {
                // One batch per partition for every chunk read from stdin.
                var builders: [Int32: RecordBatchBuilder] = [:]
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                for line in lines {
                    lineNumber += 1
                    var key: [UInt8]?
                    var value = line
                    if let separator {
                        guard let at = line.firstRange(of: separator) else {
                            throw ClientError(.invalidArgument, "line \(lineNumber) has no key separator")
                        }
                        key = Array(line[..<at.lowerBound])
                        value = Array(line[at.upperBound...])
                    }
                    let target = partition ?? key.map { Murmur2.partition(for: $0, partitions: partitionCount) } ?? roundRobin
                    builders[target, default: RecordBatchBuilder()].append(key: key, value: value, headers: headers, timestamp: now)
                }
                roundRobin = (roundRobin + 1) % partitionCount
                for (target, builder) in builders.sorted(by: { $0.key < $1.key }) {
                    _ = try await client.produce(topic: topic, partition: target, batch: builder.build(), acks: -1)
                }
            }
        }
    }
}

/// Reads stdin in chunks and returns the complete lines of each (a tty gives one line per read,
/// a pipe up to 64 KiB), so interactive input is sent at once and piped input in batches.
struct LineReader {
    let fd: Int32
    private var pending: [UInt8] = []
    private var eof = false

    init(fd: Int32) { self.fd = fd }

    mutating func nextLines() throws -> [[UInt8]]? {
        while true {
            if eof {
                guard !pending.isEmpty else { return nil }
                defer { pending = [] }
                return [Self.trimCR(pending)]
            }
            var chunk = [UInt8](repeating: 0, count: 64 << 10)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ClientError(.invalidArgument, "cannot read stdin: errno \(errno)")
            }
            if n == 0 {
                eof = true
                continue
            }
            pending.append(contentsOf: chunk[0..<n])
            guard let lastNewline = pending.lastIndex(of: UInt8(ascii: "\n")) else { continue }
            let complete = pending[..<lastNewline]
            let lines = complete.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { Self.trimCR(Array($0)) }
            pending = Array(pending[(lastNewline + 1)...])
            return lines
        }
    }

    private static func trimCR(_ line: [UInt8]) -> [UInt8] {
        line.last == UInt8(ascii: "\r") ? Array(line.dropLast()) : line
    }
}

/// Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) % partitions`.
enum Murmur2 {
    static func hash(_ data: [UInt8]) -> Int32 {
        let seed: UInt32 = 0x9747_b28c
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        let length = data.count
        var h = seed ^ UInt32(truncatingIfNeeded: length)
        let fours = length / 4
        for i in 0..<fours {
            let i4 = i * 4
            var k = UInt32(data[i4]) | UInt32(data[i4 + 1]) << 8 | UInt32(data[i4 + 2]) << 16 | UInt32(data[i4 + 3]) << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
        }
        let tail = fours * 4
        switch length % 4 {
        case 3:
            h ^= UInt32(data[tail + 2]) << 16
            fallthrough
        case 2:
            h ^= UInt32(data[tail + 1]) << 8
            fallthrough
        case 1:
            h ^= UInt32(data[tail])
            h = h &* m
        default: break
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    static func partition(for key: [UInt8], partitions: Int32) -> Int32 {
        (hash(key) & 0x7fff_ffff) % partitions
    }
}
