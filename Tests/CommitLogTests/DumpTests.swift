@testable import CommitLog
import DiskIO
import DiskIOTesting
import NIOCore
import RecordFormat
import SegmentTool
import Testing

@Suite struct DumpTests {
    /// A partition directory with a few segments, shut down cleanly.
    static func makeDirectory() async throws -> (Harness, PartitionLog) {
        let h = try Harness()
        var configuration = testConfiguration()
        configuration.segmentBytes = 600
        configuration.indexIntervalBytes = 100
        let log = try h.createLog(configuration: configuration)
        for i in 0..<12 { _ = try await h.appendOK(makeBatch(recordCount: 1 + i % 3, valueBytes: 30, timestamp: 1000 + Int64(i)), to: log) }
        try h.manager.shutdown()
        return (h, log)
    }

    static func dump(_ options: DumpOptions, _ io: any FileIO) -> (Int32, [String]) {
        var lines: [String] = []
        let status = runDump(options, io: io) { lines.append($0) }
        return (status, lines)
    }

    @Test func verifiesACleanDirectory() async throws {
        let (h, log) = try await Self.makeDirectory()
        #expect(log.segmentBaseOffsets.count > 2)
        var options = DumpOptions(paths: ["/data/orders-0"])
        options.verify = true
        let (status, lines) = Self.dump(options, h.io)
        #expect(status == 0, "\(lines.joined(separator: "\n"))")
        #expect(lines.filter { $0.hasPrefix("baseOffset:") }.count == 12)
        #expect(lines.last == "Verification passed: no problems found.")
        let first = try #require(lines.first { $0.hasPrefix("baseOffset: 0 ") })
        #expect(first.contains("lastOffset: 0 count: 1"))
        #expect(first.contains("position: 0"))
        #expect(first.contains("CreateTime: 1000"))
        #expect(first.contains("isvalid: true"))
        #expect(first.contains("compresscodec: none"))
    }

    @Test func corruptByteIsReportedWithFileAndPosition() async throws {
        let (h, log) = try await Self.makeDirectory()
        let second = log.segmentBaseOffsets[1]
        let path = segmentPath(h.root, "orders-0", second, ".log")
        let batches = try Harness.batches(in: try #require(h.disk.currentContents(of: path)))
        let badPosition = batches[0].totalByteCount  // the second batch of that segment
        let fd = try h.io.open(path, mode: .readWrite)
        try h.io.write(fd, bytes: [0xEE], at: Int64(badPosition + 70))
        h.io.close(fd)

        var options = DumpOptions(paths: ["/data/orders-0"])
        options.verify = true
        let (status, lines) = Self.dump(options, h.io)
        #expect(status == 1)
        let error = try #require(lines.first { $0.hasPrefix("ERROR:") })
        #expect(error.hasPrefix("ERROR: \(path) position \(badPosition) offset \(batches[1].baseOffset): "))
        #expect(error.contains("CRC"))
        #expect(lines.last?.hasPrefix("Verification FAILED") == true)
        // The batch line says it is invalid; without --verify the dump itself succeeds.
        #expect(lines.contains { $0.contains("position: \(badPosition) ") && $0.hasSuffix("isvalid: false") })
        #expect(Self.dump(DumpOptions(paths: [path]), h.io).0 == 0)
    }

    @Test func tornTailAndBadIndexEntriesAreReported() async throws {
        let (h, log) = try await Self.makeDirectory()
        let first = segmentPath(h.root, "orders-0", 0, ".log")
        let index = segmentPath(h.root, "orders-0", 0, ".index")
        let indexBytes = try #require(h.disk.currentContents(of: index))
        #expect(indexBytes.count >= 8)
        // Point the first index entry one byte off.
        let fd = try h.io.open(index, mode: .readWrite)
        try h.io.write(fd, bytes: [indexBytes[7] &+ 1], at: 7)
        h.io.close(fd)
        var options = DumpOptions(paths: [index])
        options.verify = true
        let (status, lines) = Self.dump(options, h.io)
        #expect(status == 1)
        #expect(lines.contains { $0.hasPrefix("ERROR: \(index) position 0 offset ") && $0.contains("not the start of a batch") })

        // A torn tail on the last segment.
        let lastBase = log.segmentBaseOffsets.last!
        let lastPath = segmentPath(h.root, "orders-0", lastBase, ".log")
        let size = try #require(h.disk.currentContents(of: lastPath)).count
        let lastFD = try h.io.open(lastPath, mode: .readWrite)
        try h.io.truncate(lastFD, to: Int64(size - 3))
        h.io.close(lastFD)
        var logOptions = DumpOptions(paths: [lastPath])
        logOptions.verify = true
        let (logStatus, logLines) = Self.dump(logOptions, h.io)
        #expect(logStatus == 1)
        #expect(logLines.contains { $0.hasPrefix("ERROR: \(lastPath) position ") && $0.contains("torn") })
        _ = first
    }

    @Test func deepJSONAndIndexDumps() async throws {
        let h = try Harness()
        let log = try h.createLog()
        var builder = RecordBatchBuilder()
        builder.append(key: Array("user-1".utf8), value: Array("hello".utf8), headers: [("trace", [1, 2])], timestamp: 42)
        builder.append(key: nil, value: [0xFF, 0x00], timestamp: 43)
        _ = try await h.appendOK(builder.build(), to: log)
        try h.manager.shutdown()

        var options = DumpOptions(paths: ["/data/orders-0/00000000000000000000.log"])
        options.deep = true
        options.printData = true
        let (status, lines) = Self.dump(options, h.io)
        #expect(status == 0)
        let records = lines.filter { $0.hasPrefix("| offset:") }
        #expect(records.count == 2)
        #expect(records[0] == "| offset: 0 CreateTime: 42 keySize: 6 valueSize: 5 sequence: -1 headerKeys: [trace] key: user-1 payload: hello headers: [trace=0x0102]")
        #expect(records[1] == "| offset: 1 CreateTime: 43 keySize: -1 valueSize: 2 sequence: -1 headerKeys: [] key: null payload: 0xff00")

        options.json = true
        options.verify = true
        let (jsonStatus, jsonLines) = Self.dump(options, h.io)
        #expect(jsonStatus == 0)
        #expect(jsonLines.allSatisfy { $0.hasPrefix("{") && $0.hasSuffix("}") })
        #expect(jsonLines.contains { $0.hasPrefix(#"{"type":"batch","baseOffset":0,"lastOffset":1,"count":2,"position":0,"#) })
        #expect(jsonLines.contains { $0.contains(#""type":"record","offset":0,"timestamp":42"#) && $0.contains(#""key":"user-1""#) })
        #expect(jsonLines.last == #"{"type":"result","status":"ok"}"#)

        // Index files: sanity check and plain dump.
        var sanity = DumpOptions(paths: ["/data/orders-0/00000000000000000000.index", "/data/orders-0/00000000000000000000.timeindex"])
        sanity.indexSanity = true
        let (sanityStatus, sanityLines) = Self.dump(sanity, h.io)
        #expect(sanityStatus == 0)
        #expect(sanityLines.filter { $0.hasSuffix("passed sanity check.") }.count == 2)
        let (_, timeLines) = Self.dump(DumpOptions(paths: ["/data/orders-0/00000000000000000000.timeindex"]), h.io)
        #expect(timeLines.contains("timestamp: 43 offset: 1"))  // the final entry written at close
    }

    @Test func missingPathsAreUnreadable() {
        let disk = SimulatedDisk()
        let (status, lines) = Self.dump(DumpOptions(paths: ["/nope.log"]), disk)
        #expect(status == 2)
        #expect(lines == ["ERROR: /nope.log: no such file or directory"])
    }
}
