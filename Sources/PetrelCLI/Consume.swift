import ArgumentParser
import Foundation
import GroupClient
import KafkaWire
import NIOCore
import RecordCompression
import RecordFormat
import Synchronization
import WireClient

/// Console consumer: direct partition fetch, or a classic-protocol group member (`--group`).
struct Consume: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print records of a topic (direct partition fetch, or as a member of a consumer group with --group).",
        discussion: """
        --format tokens: %k key, %v value, %o offset, %p partition, %t timestamp (ms), %h headers \
        (k=v,...), %T topic, %% a percent sign; \\n and \\t are escapes. A newline ends each record.
        """
    )
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Topic to read.") var topic: String
    @Option(
        help: ArgumentHelp(
            "Consume as a member of this consumer group (classic protocol, range assignor): start at the group's committed offsets, commit every 5 s and at exit.",
            discussion: "Without a committed offset a partition starts at the log end, or the log start with --from-beginning."
        )) var group: String?
    @Option(help: "Only this partition (default: all).") var partition: Int32?
    @Flag(help: "Start at the log start offset (default: the log end, i.e. new records only).") var fromBeginning = false
    @Option(help: "Start at this offset.") var offset: Int64?
    @Option(help: "Exit after this many records.") var maxMessages: Int?
    @Option(help: "Exit when no record arrives for this many milliseconds (default: wait forever).") var timeoutMs: Int?
    @Option(help: "Output format per record.") var format = "%v"

    func validate() throws {
        if fromBeginning && offset != nil { throw ValidationError("give --from-beginning or --offset, not both") }
        if let offset, offset < 0 { throw ValidationError("--offset must not be negative") }
        if let maxMessages, maxMessages < 1 { throw ValidationError("--max-messages must be at least 1") }
        if let timeoutMs, timeoutMs < 0 { throw ValidationError("--timeout-ms must not be negative") }
        if let group {
            if group.isEmpty { throw ValidationError("--group must not be empty") }
            if partition != nil { throw ValidationError("--partition cannot be used with --group (the group assigns partitions)") }
            if offset != nil { throw ValidationError("--offset cannot be used with --group (the group's committed offsets decide)") }
        }
    }

    func run() throws {
        let pattern = try RecordFormatter(format)
        if let group {
            let options = GroupConsumer.Options(
                group: group, topic: topic, fromBeginning: fromBeginning, maxMessages: maxMessages, timeoutMs: timeoutMs)
            // SIGINT/SIGTERM: commit and leave the group before exiting (a second signal exits at once).
            let signals = ([SIGINT, SIGTERM] as [Int32]).map { signo -> any DispatchSourceSignal in
                signal(signo, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
                source.setEventHandler {
                    if groupConsumerStopRequested.exchange(true, ordering: .relaxed) { Foundation.exit(128 + signo) }
                }
                source.resume()
                return source
            }
            defer { signals.forEach { $0.cancel() } }
            try connection.withClient { client in
                var member = GroupConsumer(
                    client: client, options: options, shouldStop: { groupConsumerStopRequested.load(ordering: .relaxed) }
                ) { response, positions, limit, partitionError in
                    var out: [UInt8] = []
                    let count = try FetchedRecords.append(
                        response, topic: options.topic, positions: &positions, pattern: pattern, limit: limit, to: &out,
                        partitionError: partitionError)
                    if !out.isEmpty { FileHandle.standardOutput.write(Data(out)) }
                    return count
                }
                try await member.run()
            }
            return
        }
        let (topic, partition, fromBeginning, offset, maxMessages, timeoutMs) = (topic, partition, fromBeginning, offset, maxMessages, timeoutMs)
        try connection.withClient { client in
            guard let metadata = try await client.topic(topic) else {
                throw ClientError(.invalidArgument, "topic \(topic) does not exist")
            }
            var partitions = metadata.partitions.map(\.partitionIndex).sorted()
            if let partition {
                guard partitions.contains(partition) else {
                    throw ClientError(.invalidArgument, "topic \(topic) has no partition \(partition) (it has \(partitions.count))")
                }
                partitions = [partition]
            }
            var positions: [Int32: Int64]
            if let offset {
                positions = Dictionary(uniqueKeysWithValues: partitions.map { ($0, offset) })
            } else {
                positions = try await client.listOffsets(topic, partitions: partitions, timestamp: fromBeginning ? KafkaClient.earliest : KafkaClient.latest)
            }
            var printed = 0
            var lastProgress = ContinuousClock.now
            let maxWait = Int32(min(500, timeoutMs ?? 500))
            while true {
                let response = try await client.fetch(
                    topic: topic, partitions: partitions.map { ($0, positions[$0] ?? 0) }, maxWaitMs: maxWait
                )
                var out: [UInt8] = []
                let remaining = maxMessages.map { $0 - printed }
                printed += try FetchedRecords.append(
                    response, topic: topic, positions: &positions, pattern: pattern, limit: remaining, to: &out
                ) { p, code, at in
                    try ClientError.check(code, "fetch from \(topic)-\(p) at offset \(at)")
                }
                let done = maxMessages.map { printed >= $0 } ?? false
                if !out.isEmpty {
                    FileHandle.standardOutput.write(Data(out))
                    lastProgress = .now
                }
                if done { return }
                if let timeoutMs, ContinuousClock.now - lastProgress >= .milliseconds(timeoutMs) { return }
            }
        }
    }
}

/// Set by SIGINT/SIGTERM while a group consumer runs: the loop then commits, leaves the group and exits.
let groupConsumerStopRequested = Atomic<Bool>(false)

/// Turns fetch responses into formatted output; shared by the direct and the group consumer.
enum FetchedRecords {
    /// Appends to `out` the records of `response` at or past `positions` (only partitions that have a
    /// position), advancing the positions; stops after `limit` records.
    ///
    /// - Parameter partitionError: Called for a partition with a non-zero error code and its position
    ///   (its data is skipped); throw to stop.
    /// - Returns: The number of records appended.
    static func append(
        _ response: FetchResponse, topic: String, positions: inout [Int32: Int64], pattern: RecordFormatter, limit: Int?,
        to out: inout [UInt8], partitionError: (_ partition: Int32, _ code: Int16, _ position: Int64) throws -> Void
    ) throws -> Int {
        var printed = 0
        var done = false
        for topicResponse in response.responses {
            for data in topicResponse.partitions.sorted(by: { $0.partitionIndex < $1.partitionIndex }) where !done {
                let p = data.partitionIndex
                guard positions[p] != nil else { continue }
                if data.errorCode != 0 {
                    try partitionError(p, data.errorCode, positions[p]!)
                    continue
                }
                guard let records = data.records, records.byteCount > 0, let buffer = records.singleBuffer else { continue }
                var iterator = RecordBatchIterator(buffer, validatingCRC: true)
                while let (position, header) = iterator.next(), !done {
                    guard header.nextOffset > positions[p]! else { continue }
                    let batch = buffer.getSlice(at: buffer.readerIndex + position, length: header.totalByteCount)!
                    let decoded: [Record]
                    do {
                        // Compressed batches (gzip, snappy, lz4, zstd) are decompressed here.
                        decoded = try RecordBatch.decodeRecords(in: batch).records
                    } catch {
                        throw ClientError(.protocolViolation, "\(topic)-\(p) offset \(header.baseOffset): \(error)")
                    }
                    for record in decoded {
                        let recordOffset = header.baseOffset + Int64(record.offsetDelta)
                        guard recordOffset >= positions[p]! else { continue }
                        let timestamp = header.isLogAppendTime ? header.maxTimestamp : header.baseTimestamp + record.timestampDelta
                        pattern.append(record, topic: topic, partition: p, offset: recordOffset, timestamp: timestamp, to: &out)
                        positions[p] = recordOffset + 1
                        printed += 1
                        if let limit, printed >= limit { done = true; break }
                    }
                    if !done { positions[p] = max(positions[p]!, header.nextOffset) }
                }
                if let invalid = iterator.invalidBatch {
                    throw ClientError(.protocolViolation, "\(topic)-\(p): bad batch in fetch response: \(invalid.error)")
                }
            }
        }
        return printed
    }
}

/// A parsed `--format` string.
struct RecordFormatter {
    enum Piece: Equatable {
        case literal([UInt8])
        case key, value, offset, partition, timestamp, headers, topic
    }

    let pieces: [Piece]

    init(_ format: String) throws {
        var pieces: [Piece] = []
        var literal: [UInt8] = []
        var chars = Array(format.utf8).makeIterator()
        func flush() {
            if !literal.isEmpty { pieces.append(.literal(literal)); literal = [] }
        }
        while let c = chars.next() {
            switch c {
            case UInt8(ascii: "%"):
                guard let token = chars.next() else { throw ValidationError("--format ends with a lone %") }
                let piece: Piece
                switch token {
                case UInt8(ascii: "k"): piece = .key
                case UInt8(ascii: "v"): piece = .value
                case UInt8(ascii: "o"): piece = .offset
                case UInt8(ascii: "p"): piece = .partition
                case UInt8(ascii: "t"): piece = .timestamp
                case UInt8(ascii: "h"): piece = .headers
                case UInt8(ascii: "T"): piece = .topic
                case UInt8(ascii: "%"): literal.append(token); continue
                default: throw ValidationError("--format: unknown token %\(Character(UnicodeScalar(token)))")
                }
                flush()
                pieces.append(piece)
            case UInt8(ascii: "\\"):
                switch chars.next() {
                case UInt8(ascii: "n"): literal.append(UInt8(ascii: "\n"))
                case UInt8(ascii: "t"): literal.append(UInt8(ascii: "\t"))
                case UInt8(ascii: "\\"): literal.append(UInt8(ascii: "\\"))
                case let other?: literal.append(c); literal.append(other)
                case nil: literal.append(c)
                }
            default:
                literal.append(c)
            }
        }
        flush()
        self.pieces = pieces
    }

    func append(_ record: Record, topic: String, partition: Int32, offset: Int64, timestamp: Int64, to out: inout [UInt8]) {
        func bytes(_ buffer: ByteBuffer?) {
            if let buffer { out.append(contentsOf: buffer.readableBytesView) } else { out.append(contentsOf: "null".utf8) }
        }
        for piece in pieces {
            switch piece {
            case .literal(let text): out.append(contentsOf: text)
            case .key: bytes(record.key)
            case .value: bytes(record.value)
            case .offset: out.append(contentsOf: String(offset).utf8)
            case .partition: out.append(contentsOf: String(partition).utf8)
            case .timestamp: out.append(contentsOf: String(timestamp).utf8)
            case .topic: out.append(contentsOf: topic.utf8)
            case .headers:
                for (index, header) in record.headers.enumerated() {
                    if index > 0 { out.append(UInt8(ascii: ",")) }
                    out.append(contentsOf: header.key.utf8)
                    out.append(UInt8(ascii: "="))
                    bytes(header.value)
                }
            }
        }
        out.append(UInt8(ascii: "\n"))
    }
}
