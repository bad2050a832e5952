public import DiskIO
import NIOCore
import RecordCompression
import RecordFormat

/// Dumps (and with `verify`, checks) segment files, like Kafka's `kafka-dump-log.sh`.
///
/// - Parameters:
///   - options: Paths and flags.
///   - io: How files are read.
///   - write: Receives each output line (without a newline).
/// - Returns: 0 when clean, 1 when `verify`/`indexSanity` found problems, 2 when a path is unusable.
public func runDump(_ options: DumpOptions, io: any FileIO, write: (String) -> Void) -> Int32 {
    withoutActuallyEscaping(write) { write in
        var dumper = Dumper(options: options, io: io, write: write)
        return dumper.run()
    }
}

/// A problem found while verifying.
struct DumpProblem {
    var path: String
    var position: Int64
    var offset: Int64?
    var message: String
}

/// What a `.log` scan learned, for checking indexes and segment order.
struct LogScan {
    var path: String
    var baseOffset: Int64
    var size: Int64 = 0
    /// Batches that parsed (position, header), in file order.
    var batches: [(position: Int64, header: RecordBatchHeader)] = []
    var batchByPosition: [Int64: RecordBatchHeader] = [:]
    var lastOffset: Int64? { batches.last?.header.lastOffset }
}

struct Dumper {
    let options: DumpOptions
    let io: any FileIO
    let write: (String) -> Void
    var problems: [DumpProblem] = []
    var unreadable = false

    init(options: DumpOptions, io: any FileIO, write: @escaping (String) -> Void) {
        self.options = options
        self.io = io
        self.write = write
    }

    mutating func run() -> Int32 {
        for path in options.paths {
            if io.isDirectory(path) {
                dumpDirectory(path)
            } else if io.fileExists(path) {
                dumpFile(path)
            } else {
                fail(path, "no such file or directory")
            }
        }
        if options.verify || options.indexSanity {
            if problems.isEmpty {
                emit(text: "Verification passed: no problems found.", json: [("type", .string("result")), ("status", .string("ok"))])
            } else {
                let first = problems[0]
                emit(
                    text: "Verification FAILED: \(problems.count) problem(s); first in \(first.path) at position \(first.position)\(first.offset.map { " offset \($0)" } ?? ""): \(first.message)",
                    json: [
                        ("type", .string("result")), ("status", .string("failed")), ("problems", .int(Int64(problems.count))),
                        ("file", .string(first.path)), ("position", .int(first.position)),
                        ("offset", first.offset.map { .int($0) } ?? .null), ("message", .string(first.message)),
                    ])
            }
        }
        if unreadable { return DumpExitStatus.unreadable }
        if (options.verify || options.indexSanity) && !problems.isEmpty { return DumpExitStatus.problemsFound }
        return DumpExitStatus.clean
    }

    // MARK: Files and directories

    mutating func dumpDirectory(_ directory: String) {
        let names: [String]
        do { names = try io.listDirectory(directory) } catch {
            fail(directory, "cannot list: \(error)")
            return
        }
        let bases = names.compactMap { SegmentName.baseOffset($0, ".log") }.sorted()
        if bases.isEmpty { emit(text: "No segments in \(directory)", json: [("type", .string("note")), ("path", .string(directory)), ("message", .string("no segments"))]) }
        var previous: LogScan?
        for (i, base) in bases.enumerated() {
            let logPath = SegmentName.join(directory, SegmentName.stem(base) + ".log")
            guard var scan = dumpLog(logPath, baseOffset: base) else { continue }
            scan.baseOffset = base
            let transactionIndex = SegmentName.join(directory, SegmentName.stem(base) + ".txnindex")
            if io.fileExists(transactionIndex) { printTransactionIndex(transactionIndex) }
            if options.verify {
                let nextBase = i + 1 < bases.count ? bases[i + 1] : nil
                checkOrder(scan, previous: previous, nextBase: nextBase)
                for suffix in [".index", ".timeindex"] {
                    let indexPath = SegmentName.join(directory, SegmentName.stem(base) + suffix)
                    if io.fileExists(indexPath) {
                        if suffix == ".index" { verifyOffsetIndex(indexPath, against: scan) } else { verifyTimeIndex(indexPath, against: scan) }
                    }
                }
            }
            previous = scan
        }
    }

    mutating func dumpFile(_ path: String) {
        let name = String(path.split(separator: "/").last ?? Substring(path))
        if let base = SegmentName.baseOffset(name, ".log") {
            _ = dumpLog(path, baseOffset: base)
        } else if let base = SegmentName.baseOffset(name, ".index") {
            let scan = options.verify || options.indexSanity ? siblingLogScan(path, suffix: ".index", base: base) : nil
            if options.indexSanity {
                sanityCheckOffsetIndex(path, base: base, logSize: scan?.size)
            } else if options.verify, let scan {
                verifyOffsetIndex(path, against: scan, printing: true)
            } else {
                printOffsetIndex(path, base: base)
            }
        } else if let base = SegmentName.baseOffset(name, ".timeindex") {
            let scan = options.verify ? siblingLogScan(path, suffix: ".timeindex", base: base) : nil
            if options.indexSanity {
                sanityCheckTimeIndex(path, base: base)
            } else if options.verify, let scan {
                verifyTimeIndex(path, against: scan, printing: true)
            } else {
                printTimeIndex(path, base: base)
            }
        } else if SegmentName.baseOffset(name, ".txnindex") != nil {
            printTransactionIndex(path)
        } else {
            fail(path, "not a segment file (expected <20-digit offset>.log, .index, .timeindex or .txnindex)")
        }
    }

    /// Scans the `.log` beside an index file quietly (for verification).
    mutating func siblingLogScan(_ indexPath: String, suffix: String, base: Int64) -> LogScan? {
        let logPath = String(indexPath.dropLast(suffix.count)) + ".log"
        guard io.fileExists(logPath) else {
            if options.verify { problem(indexPath, 0, nil, "no \(logPath) to verify against") }
            return nil
        }
        var quiet = self
        quiet.problems = []
        let scan = quiet.scanLog(logPath, baseOffset: base, printing: false)
        if options.verify { problems += quiet.problems }
        unreadable = unreadable || quiet.unreadable
        return scan
    }

    // MARK: .log

    /// Prints the segment's batches (and records with `deep`); returns what it learned.
    mutating func dumpLog(_ path: String, baseOffset: Int64) -> LogScan? {
        emit(text: "Dumping \(path)", json: [("type", .string("file")), ("path", .string(path)), ("baseOffset", .int(baseOffset))])
        emit(text: "Log starting offset: \(baseOffset)", json: nil)
        return scanLog(path, baseOffset: baseOffset, printing: true)
    }

    mutating func scanLog(_ path: String, baseOffset: Int64, printing: Bool) -> LogScan? {
        let fd: Int32
        do { fd = try io.open(path, mode: .readOnly) } catch {
            fail(path, "cannot open: \(error)")
            return nil
        }
        defer { io.close(fd) }
        var scan = LogScan(path: path, baseOffset: baseOffset)
        do { scan.size = try io.fileSize(fd) } catch {
            fail(path, "cannot stat: \(error)")
            return nil
        }
        var position: Int64 = 0
        var previousLast: Int64?
        while position < scan.size {
            let remaining = scan.size - position
            guard remaining >= Int64(RecordBatchHeader.logOverhead) else {
                problem(path, position, nil, "\(remaining) trailing bytes: a torn batch header")
                break
            }
            guard let prefix = read(fd, path, at: position, count: RecordBatchHeader.logOverhead) else { return scan }
            let batchLength = prefix.getInteger(at: prefix.readerIndex + 8, as: Int32.self) ?? 0
            let headerOffset = prefix.getInteger(at: prefix.readerIndex, as: Int64.self)
            let total = Int64(batchLength) + Int64(RecordBatchHeader.logOverhead)
            guard batchLength >= RecordBatch.batchLengthMin, total <= remaining else {
                problem(path, position, headerOffset, "batch length \(batchLength) does not fit the \(remaining) bytes left: torn or corrupt batch")
                break
            }
            guard let batch = read(fd, path, at: position, count: Int(total)) else { return scan }
            guard let header = RecordBatchHeader(buffer: batch) else {
                problem(path, position, headerOffset, "truncated batch header")
                break
            }
            var valid = true
            do {
                _ = try RecordBatch.validateFraming(batch, requireExactLength: true)
                // --deep walks every record (decompressing), as the broker does on produce.
                if options.deep { _ = try RecordBatch.validateRecordsDeep(batch, header: header, offsets: .increasing) }
            } catch {
                valid = false
                problem(path, position, header.baseOffset, "\(error)")
            }
            if printing { printBatch(header, position: position, valid: valid) }
            // Offsets: within the segment's u32 range, increasing.
            if header.lastOffsetDelta < 0 {
                problem(path, position, header.baseOffset, "negative lastOffsetDelta \(header.lastOffsetDelta)")
            } else if header.baseOffset < baseOffset {
                problem(path, position, header.baseOffset, "offset below the segment's base offset \(baseOffset)")
            } else if header.lastOffset - baseOffset > Int64(Int32.max) {
                problem(path, position, header.baseOffset, "last offset \(header.lastOffset) too far from the base offset \(baseOffset)")
            } else if let previousLast, header.baseOffset <= previousLast {
                problem(path, position, header.baseOffset, "offset not above the previous batch's last offset \(previousLast)")
            }
            previousLast = header.lastOffset
            scan.batches.append((position, header))
            scan.batchByPosition[position] = header
            if printing && options.deep && valid { printRecords(batch, header: header) }
            position += total
        }
        return scan
    }

    mutating func read(_ fd: Int32, _ path: String, at position: Int64, count: Int) -> ByteBuffer? {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        let io = self.io
        let result = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw -> Int in
            (try? io.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[..<count]), at: position)) ?? -1
        }
        guard result == count else {
            fail(path, "cannot read \(count) bytes at position \(position)")
            return nil
        }
        return buffer
    }

    /// Segment order in a directory: each segment's batches below the next segment's base offset,
    /// and after the previous segment's last offset.
    mutating func checkOrder(_ scan: LogScan, previous: LogScan?, nextBase: Int64?) {
        if let previous, let previousLast = previous.lastOffset, scan.baseOffset <= previousLast {
            problem(scan.path, 0, scan.baseOffset, "segment base offset overlaps \(previous.path), which ends at offset \(previousLast)")
        }
        if let nextBase, let last = scan.batches.last, last.header.lastOffset >= nextBase {
            problem(scan.path, last.position, last.header.baseOffset, "batch reaches offset \(last.header.lastOffset), into the next segment at \(nextBase)")
        }
    }

    // MARK: .index

    mutating func readIndexFile(_ path: String) -> [UInt8]? {
        do {
            guard let bytes = try io.readWholeFile(path) else {
                fail(path, "no such file")
                return nil
            }
            return bytes
        } catch {
            fail(path, "cannot read: \(error)")
            return nil
        }
    }

    /// Entries of an offset index without the all-zero tail of a preallocated file.
    static func offsetEntries(_ bytes: [UInt8]) -> [(relativeOffset: UInt32, position: UInt32)] {
        var entries: [(UInt32, UInt32)] = []
        var i = 0
        while i + 8 <= bytes.count {
            entries.append((SegmentName.u32(bytes, i), SegmentName.u32(bytes, i + 4)))
            i += 8
        }
        while let last = entries.last, last == (0, 0) { entries.removeLast() }
        return entries
    }

    static func timeEntries(_ bytes: [UInt8]) -> [(timestamp: Int64, relativeOffset: UInt32)] {
        var entries: [(Int64, UInt32)] = []
        var i = 0
        while i + 12 <= bytes.count {
            entries.append((Int64(bitPattern: SegmentName.u64(bytes, i)), SegmentName.u32(bytes, i + 8)))
            i += 12
        }
        while let last = entries.last, last == (0, 0) { entries.removeLast() }
        return entries
    }

    mutating func printOffsetIndex(_ path: String, base: Int64) {
        guard let bytes = readIndexFile(path) else { return }
        emit(text: "Dumping \(path)", json: [("type", .string("file")), ("path", .string(path)), ("baseOffset", .int(base))])
        for entry in Self.offsetEntries(bytes) {
            emit(
                text: "offset: \(base + Int64(entry.relativeOffset)) position: \(entry.position)",
                json: [("type", .string("indexEntry")), ("offset", .int(base + Int64(entry.relativeOffset))), ("position", .int(Int64(entry.position)))])
        }
    }

    mutating func printTimeIndex(_ path: String, base: Int64) {
        guard let bytes = readIndexFile(path) else { return }
        emit(text: "Dumping \(path)", json: [("type", .string("file")), ("path", .string(path)), ("baseOffset", .int(base))])
        for entry in Self.timeEntries(bytes) {
            emit(
                text: "timestamp: \(entry.timestamp) offset: \(base + Int64(entry.relativeOffset))",
                json: [("type", .string("timeIndexEntry")), ("timestamp", .int(entry.timestamp)), ("offset", .int(base + Int64(entry.relativeOffset)))])
        }
    }

    /// Every entry must name a batch: its position a batch start whose last offset is the entry's.
    mutating func verifyOffsetIndex(_ path: String, against scan: LogScan, printing: Bool = false) {
        guard let bytes = readIndexFile(path) else { return }
        if printing { emit(text: "Verifying \(path)", json: [("type", .string("file")), ("path", .string(path))]) }
        if bytes.count % 8 != 0 { problem(path, Int64(bytes.count - bytes.count % 8), nil, "length \(bytes.count) is not a multiple of 8") }
        var previous: (relativeOffset: UInt32, position: UInt32)?
        for (i, entry) in Self.offsetEntries(bytes).enumerated() {
            let offset = scan.baseOffset + Int64(entry.relativeOffset)
            let filePosition = Int64(i * 8)
            if let previous, entry.relativeOffset <= previous.relativeOffset || entry.position <= previous.position {
                problem(path, filePosition, offset, "entry (offset \(offset), position \(entry.position)) does not follow the previous one")
                return
            }
            previous = entry
            guard let header = scan.batchByPosition[Int64(entry.position)] else {
                problem(path, filePosition, offset, "position \(entry.position) is not the start of a batch in \(scan.path)")
                return
            }
            if header.lastOffset != offset {
                problem(path, filePosition, offset, "points at the batch \(header.baseOffset)...\(header.lastOffset), not one ending at offset \(offset)")
                return
            }
        }
    }

    /// Every entry must name a batch (by last offset) whose max timestamp is the entry's; timestamps increase.
    mutating func verifyTimeIndex(_ path: String, against scan: LogScan, printing: Bool = false) {
        guard let bytes = readIndexFile(path) else { return }
        if printing { emit(text: "Verifying \(path)", json: [("type", .string("file")), ("path", .string(path))]) }
        if bytes.count % 12 != 0 { problem(path, Int64(bytes.count - bytes.count % 12), nil, "length \(bytes.count) is not a multiple of 12") }
        var byLastOffset: [Int64: RecordBatchHeader] = [:]
        for batch in scan.batches { byLastOffset[batch.header.lastOffset] = batch.header }
        var previous: (timestamp: Int64, relativeOffset: UInt32)?
        for (i, entry) in Self.timeEntries(bytes).enumerated() {
            let offset = scan.baseOffset + Int64(entry.relativeOffset)
            let filePosition = Int64(i * 12)
            if let previous, entry.timestamp <= previous.timestamp || entry.relativeOffset < previous.relativeOffset {
                problem(path, filePosition, offset, "entry (timestamp \(entry.timestamp), offset \(offset)) does not follow the previous one")
                return
            }
            previous = entry
            guard let header = byLastOffset[offset] else {
                problem(path, filePosition, offset, "no batch in \(scan.path) ends at offset \(offset)")
                return
            }
            if header.maxTimestamp != entry.timestamp {
                problem(path, filePosition, offset, "timestamp \(entry.timestamp) but the batch's max timestamp is \(header.maxTimestamp)")
                return
            }
        }
    }

    mutating func sanityCheckOffsetIndex(_ path: String, base: Int64, logSize: Int64?) {
        guard let bytes = readIndexFile(path) else { return }
        let before = problems.count
        if bytes.count % 8 != 0 {
            problem(path, 0, nil, "length \(bytes.count) is not a multiple of 8")
        } else {
            var previous: (relativeOffset: UInt32, position: UInt32)?
            for (i, entry) in Self.offsetEntries(bytes).enumerated() {
                if let previous, entry.relativeOffset <= previous.relativeOffset || entry.position <= previous.position {
                    problem(path, Int64(i * 8), base + Int64(entry.relativeOffset), "entries are not increasing")
                    break
                }
                if let logSize, Int64(entry.position) >= logSize {
                    problem(path, Int64(i * 8), base + Int64(entry.relativeOffset), "position \(entry.position) is past the log's \(logSize) bytes")
                    break
                }
                previous = entry
            }
        }
        reportSanity(path, passed: problems.count == before)
    }

    mutating func sanityCheckTimeIndex(_ path: String, base: Int64) {
        guard let bytes = readIndexFile(path) else { return }
        let before = problems.count
        if bytes.count % 12 != 0 {
            problem(path, 0, nil, "length \(bytes.count) is not a multiple of 12")
        } else {
            var previous: (timestamp: Int64, relativeOffset: UInt32)?
            for (i, entry) in Self.timeEntries(bytes).enumerated() {
                if let previous, entry.timestamp <= previous.timestamp || entry.relativeOffset < previous.relativeOffset {
                    problem(path, Int64(i * 12), base + Int64(entry.relativeOffset), "entries are not increasing")
                    break
                }
                previous = entry
            }
        }
        reportSanity(path, passed: problems.count == before)
    }

    mutating func reportSanity(_ path: String, passed: Bool) {
        emit(
            text: passed ? "\(path) passed sanity check." : "\(path) failed sanity check.",
            json: [("type", .string("sanity")), ("path", .string(path)), ("passed", .bool(passed))])
    }

    /// A `.txnindex` (aborted transactions, 34 bytes each), printed as Kafka's dump tool does.
    mutating func printTransactionIndex(_ path: String) {
        let bytes: [UInt8]
        do { bytes = try io.readWholeFile(path) ?? [] } catch {
            fail(path, "cannot read: \(error)")
            return
        }
        emit(text: "Dumping \(path)", json: [("type", .string("file")), ("path", .string(path))])
        func int64(_ at: Int) -> Int64 { bytes[at..<at + 8].reduce(0) { $0 << 8 | Int64($1) } }
        var at = 0
        while bytes.count - at >= 34 {
            let version = Int16(bytes[at]) << 8 | Int16(bytes[at + 1])
            let producerId = int64(at + 2), first = int64(at + 10), last = int64(at + 18), lastStable = int64(at + 26)
            emit(
                text: "version: \(version) producerId: \(producerId) firstOffset: \(first) lastOffset: \(last) lastStableOffset: \(lastStable)",
                json: [
                    ("type", .string("abortedTransaction")), ("version", .int(Int64(version))), ("producerId", .int(producerId)),
                    ("firstOffset", .int(first)), ("lastOffset", .int(last)), ("lastStableOffset", .int(lastStable)),
                ])
            at += 34
        }
        if at != bytes.count { fail(path, "\(bytes.count - at) trailing bytes (a torn entry)") }
    }

    // MARK: Output

    func printBatch(_ header: RecordBatchHeader, position: Int64, valid: Bool) {
        let timestampType = header.isLogAppendTime ? "LogAppendTime" : "CreateTime"
        let codec = header.compression?.name ?? "unknown(\(header.attributes & 7))"
        let text =
            "baseOffset: \(header.baseOffset) lastOffset: \(header.lastOffset) count: \(header.recordsCount)"
            + " baseSequence: \(header.baseSequence) lastSequence: \(header.lastSequence)"
            + " producerId: \(header.producerId) producerEpoch: \(header.producerEpoch)"
            + " partitionLeaderEpoch: \(header.partitionLeaderEpoch) isTransactional: \(header.isTransactional)"
            + " isControl: \(header.isControl) position: \(position) baseTimestamp: \(header.baseTimestamp)"
            + " \(timestampType): \(header.maxTimestamp) size: \(header.totalByteCount) magic: \(header.magic)"
            + " compresscodec: \(codec) crc: \(header.crc) isvalid: \(valid)"
        emit(
            text: text,
            json: [
                ("type", .string("batch")), ("baseOffset", .int(header.baseOffset)), ("lastOffset", .int(header.lastOffset)),
                ("count", .int(Int64(header.recordsCount))), ("position", .int(position)), ("size", .int(Int64(header.totalByteCount))),
                ("crc", .int(Int64(header.crc))), ("isValid", .bool(valid)), ("magic", .int(Int64(header.magic))),
                ("compression", .string(codec)), ("timestampType", .string(timestampType)),
                ("baseTimestamp", .int(header.baseTimestamp)), ("maxTimestamp", .int(header.maxTimestamp)),
                ("producerId", .int(header.producerId)), ("producerEpoch", .int(Int64(header.producerEpoch))),
                ("baseSequence", .int(Int64(header.baseSequence))), ("partitionLeaderEpoch", .int(Int64(header.partitionLeaderEpoch))),
                ("isTransactional", .bool(header.isTransactional)), ("isControl", .bool(header.isControl)),
            ])
    }

    mutating func printRecords(_ batch: ByteBuffer, header: RecordBatchHeader) {
        let records: [Record]
        do { records = try RecordBatch.decodeRecords(in: batch).records } catch {
            emit(text: "| records not decoded: \(error)", json: [("type", .string("note")), ("offset", .int(header.baseOffset)), ("message", .string("\(error)"))])
            return
        }
        let timestampType = header.isLogAppendTime ? "LogAppendTime" : "CreateTime"
        for record in records {
            let offset = header.baseOffset + Int64(record.offsetDelta)
            let timestamp = header.isLogAppendTime ? header.maxTimestamp : header.baseTimestamp &+ record.timestampDelta
            let sequence = header.baseSequence >= 0 ? Int64(header.baseSequence) + Int64(record.offsetDelta) : -1
            var text = "| offset: \(offset) \(timestampType): \(timestamp) keySize: \(record.key?.readableBytes ?? -1)"
                + " valueSize: \(record.value?.readableBytes ?? -1) sequence: \(sequence)"
                + " headerKeys: [\(record.headers.map(\.key).joined(separator: ","))]"
            var json: [(String, JSONValue)] = [
                ("type", .string("record")), ("offset", .int(offset)), ("timestamp", .int(timestamp)),
                ("keySize", .int(Int64(record.key?.readableBytes ?? -1))), ("valueSize", .int(Int64(record.value?.readableBytes ?? -1))),
                ("sequence", .int(sequence)), ("headerKeys", .array(record.headers.map { .string($0.key) })),
            ]
            if header.isControl, let key = record.key, key.readableBytes >= 4,
                let type = key.getInteger(at: key.readerIndex + 2, as: Int16.self)
            {
                // Kafka's dump: the transaction marker a control record carries.
                let marker = type == 0 ? "ABORT" : type == 1 ? "COMMIT" : "UNKNOWN(\(type))"
                let coordinatorEpoch = record.value.flatMap { $0.readableBytes >= 6 ? $0.getInteger(at: $0.readerIndex + 2, as: Int32.self) : nil } ?? -1
                text += " endTxnMarker: \(marker) coordinatorEpoch: \(coordinatorEpoch)"
                json.append(("endTxnMarker", .string(marker)))
                json.append(("coordinatorEpoch", .int(Int64(coordinatorEpoch))))
            }
            if options.printData {
                text += " key: \(Self.render(record.key)) payload: \(Self.render(record.value))"
                if !record.headers.isEmpty {
                    text += " headers: [" + record.headers.map { "\($0.key)=\(Self.render($0.value))" }.joined(separator: ",") + "]"
                }
                json.append(("key", record.key.map { .string(Self.render($0)) } ?? .null))
                json.append(("payload", record.value.map { .string(Self.render($0)) } ?? .null))
                json.append(("headers", .array(record.headers.map { .string("\($0.key)=\(Self.render($0.value))") })))
            }
            emit(text: text, json: json)
        }
    }

    /// UTF-8 text when it is printable, else `0x` hex; `null` for nil.
    static func render(_ buffer: ByteBuffer?) -> String {
        guard let buffer else { return "null" }
        let bytes = Array(buffer.readableBytesView)
        if let text = String(validating: bytes, as: UTF8.self),
            text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F || $0 == "\t" })
        {
            return text
        }
        let digits = Array("0123456789abcdef")
        return "0x" + String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] })
    }

    mutating func problem(_ path: String, _ position: Int64, _ offset: Int64?, _ message: String) {
        problems.append(DumpProblem(path: path, position: position, offset: offset, message: message))
        emit(
            text: "ERROR: \(path) position \(position)\(offset.map { " offset \($0)" } ?? ""): \(message)",
            json: [
                ("type", .string("error")), ("file", .string(path)), ("position", .int(position)),
                ("offset", offset.map { .int($0) } ?? .null), ("message", .string(message)),
            ])
    }

    mutating func fail(_ path: String, _ message: String) {
        unreadable = true
        emit(text: "ERROR: \(path): \(message)", json: [("type", .string("error")), ("file", .string(path)), ("message", .string(message))])
    }

    func emit(text: String, json: [(String, JSONValue)]?) {
        if options.json {
            if let json { write(JSONValue.object(json).encoded) }
        } else {
            write(text)
        }
    }
}

/// Just enough JSON for one-object-per-line output.
indirect enum JSONValue {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([(String, JSONValue)])

    var encoded: String {
        switch self {
        case .string(let text): return Self.quote(text)
        case .int(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .null: return "null"
        case .array(let values): return "[" + values.map(\.encoded).joined(separator: ",") + "]"
        case .object(let fields): return "{" + fields.map { Self.quote($0.0) + ":" + $0.1.encoded }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}

/// Segment file names, independent of CommitLog's internals so the tool checks what is on disk.
enum SegmentName {
    static func baseOffset(_ name: String, _ suffix: String) -> Int64? {
        guard name.hasSuffix(suffix) else { return nil }
        let stem = name.dropLast(suffix.count)
        guard stem.count == 20, stem.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
        return Int64(stem)
    }

    static func stem(_ base: Int64) -> String {
        let digits = String(base)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func u32(_ bytes: [UInt8], _ i: Int) -> UInt32 {
        UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
    }

    static func u64(_ bytes: [UInt8], _ i: Int) -> UInt64 {
        UInt64(u32(bytes, i)) << 32 | UInt64(u32(bytes, i + 4))
    }
}
