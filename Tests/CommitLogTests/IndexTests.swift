@testable import CommitLog
import Testing

@Suite struct IndexTests {
    @Test func sparseEntriesFollowKafkasRule() {
        // index.interval.bytes 100, batches of 60 bytes with 2 records each: an entry is added *before*
        // appending a batch when more than 100 bytes were appended since the last entry, and maps the
        // batch's last offset to its start position. The first batch never gets one.
        var indexer = SegmentIndexer(baseOffset: 1000, intervalBytes: 100)
        var offsetEntries: [OffsetIndexEntry] = []
        var timeEntries: [TimeIndexEntry] = []
        for batch in 0..<7 {
            let (o, t) = indexer.add(
                lastOffset: 1000 + Int64(batch * 2 + 1), position: Int64(batch * 60), byteCount: 60,
                maxTimestamp: 500 + Int64(batch))
            if let o { offsetEntries.append(o) }
            if let t { timeEntries.append(t) }
        }
        #expect(offsetEntries == [
            OffsetIndexEntry(relativeOffset: 5, position: 120),
            OffsetIndexEntry(relativeOffset: 9, position: 240),
            OffsetIndexEntry(relativeOffset: 13, position: 360),
        ])
        #expect(timeEntries == [
            TimeIndexEntry(timestamp: 502, relativeOffset: 5),
            TimeIndexEntry(timestamp: 504, relativeOffset: 9),
            TimeIndexEntry(timestamp: 506, relativeOffset: 13),
        ])
        // Final entry on roll: the max timestamp so far, only if it grew.
        #expect(indexer.nextTimeEntry() == nil)
        _ = indexer.add(lastOffset: 1015, position: 420, byteCount: 60, maxTimestamp: 900)
        #expect(indexer.nextTimeEntry() == TimeIndexEntry(timestamp: 900, relativeOffset: 15))
    }

    @Test func timeEntriesOnlyForGrowingTimestamps() {
        var indexer = SegmentIndexer(baseOffset: 0, intervalBytes: 0)
        var times: [TimeIndexEntry] = []
        for (i, ts) in [Int64(10), 50, 20, 50, 60].enumerated() {
            if let t = indexer.add(lastOffset: Int64(i), position: Int64(i * 10), byteCount: 10, maxTimestamp: ts).time { times.append(t) }
        }
        // Batch 0 gets no entry; batch 1 (ts 50); batch 2 keeps max 50 (no growth); 3 the same; 4: 60.
        #expect(times == [TimeIndexEntry(timestamp: 50, relativeOffset: 1), TimeIndexEntry(timestamp: 60, relativeOffset: 4)])
    }

    @Test func offsetLookupFindsGreatestEntryAtOrBelow() {
        let index = OffsetIndex(baseOffset: 100, entries: [
            OffsetIndexEntry(relativeOffset: 9, position: 500),
            OffsetIndexEntry(relativeOffset: 19, position: 1000),
            OffsetIndexEntry(relativeOffset: 29, position: 1500),
        ])
        #expect(index.lookup(50) == (100, 0))
        #expect(index.lookup(100) == (100, 0))
        #expect(index.lookup(108) == (100, 0))
        #expect(index.lookup(109) == (109, 500))
        #expect(index.lookup(118) == (109, 500))
        #expect(index.lookup(119) == (119, 1000))
        #expect(index.lookup(10_000) == (129, 1500))
        #expect(index.floorPosition(atMost: 499) == nil)
        #expect(index.floorPosition(atMost: 500) == 500)
        #expect(index.floorPosition(atMost: 1499) == 1000)
        #expect(index.floorPosition(atMost: 9999) == 1500)
        #expect(OffsetIndex(baseOffset: 0).lookup(5) == (0, 0))
    }

    @Test func timeLookupFindsGreatestEntryAtOrBelow() {
        let index = TimeIndex(baseOffset: 100, entries: [
            TimeIndexEntry(timestamp: 1000, relativeOffset: 9),
            TimeIndexEntry(timestamp: 2000, relativeOffset: 19),
        ])
        #expect(index.lookup(999) == 100)
        #expect(index.lookup(1000) == 109)
        #expect(index.lookup(1999) == 109)
        #expect(index.lookup(5000) == 119)
        #expect(index.lastTimestamp == 2000)
        #expect(TimeIndex(baseOffset: 7).lastTimestamp == -1)
    }

    @Test func fileFormatRoundTripsAndDropsZeroTail() throws {
        let entries = [OffsetIndexEntry(relativeOffset: 3, position: 4100), OffsetIndexEntry(relativeOffset: 70_000, position: 9000)]
        var bytes = OffsetIndex.encode(entries)
        #expect(bytes.count == 16)
        #expect(Array(bytes[0..<8]) == [0, 0, 0, 3, 0, 0, 0x10, 0x04])  // big-endian u32 + u32
        bytes += [UInt8](repeating: 0, count: 80)  // preallocated, untrimmed tail
        let decoded = try OffsetIndex.decode(bytes, baseOffset: 0, logSize: 10_000)
        #expect(decoded.entries == entries)

        let times = [TimeIndexEntry(timestamp: 1_700_000_000_000, relativeOffset: 3)]
        var timeBytes = TimeIndex.encode(times)
        #expect(timeBytes.count == 12)
        timeBytes += [UInt8](repeating: 0, count: 24)
        #expect(try TimeIndex.decode(timeBytes, baseOffset: 0, nextOffset: 10).entries == times)
    }

    @Test func insaneIndexesAreRejected() {
        // Not a multiple of the entry size.
        #expect(throws: IndexCorruption.self) { try OffsetIndex.decode([0, 0, 0, 1], baseOffset: 0, logSize: 100) }
        // Not increasing.
        let backwards = OffsetIndex.encode([OffsetIndexEntry(relativeOffset: 5, position: 50), OffsetIndexEntry(relativeOffset: 4, position: 60)])
        #expect(throws: IndexCorruption.self) { try OffsetIndex.decode(backwards, baseOffset: 0, logSize: 100) }
        // A zero hole in the middle (a lost write) breaks monotonicity.
        let hole = OffsetIndex.encode([
            OffsetIndexEntry(relativeOffset: 5, position: 50), OffsetIndexEntry(relativeOffset: 0, position: 0),
            OffsetIndexEntry(relativeOffset: 9, position: 90),
        ])
        #expect(throws: IndexCorruption.self) { try OffsetIndex.decode(hole, baseOffset: 0, logSize: 100) }
        // Past the end of the log.
        let past = OffsetIndex.encode([OffsetIndexEntry(relativeOffset: 5, position: 500)])
        #expect(throws: IndexCorruption.self) { try OffsetIndex.decode(past, baseOffset: 0, logSize: 100) }
        // Time index: decreasing timestamps, or an offset past the segment's end.
        let timeBackwards = TimeIndex.encode([TimeIndexEntry(timestamp: 10, relativeOffset: 1), TimeIndexEntry(timestamp: 5, relativeOffset: 2)])
        #expect(throws: IndexCorruption.self) { try TimeIndex.decode(timeBackwards, baseOffset: 0, nextOffset: 10) }
        let timePast = TimeIndex.encode([TimeIndexEntry(timestamp: 10, relativeOffset: 10)])
        #expect(throws: IndexCorruption.self) { try TimeIndex.decode(timePast, baseOffset: 0, nextOffset: 10) }
    }

    @Test func checkpointFormat() throws {
        let entries = [TopicPartition(topic: "orders", partition: 1): Int64(42), TopicPartition(topic: "a-b.c", partition: 0): 7]
        let bytes = CheckpointFile.encode(entries)
        #expect(String(decoding: bytes, as: UTF8.self) == "0\n2\na-b.c 0 7\norders 1 42\n")
        #expect(try CheckpointFile.decode(bytes) == entries)
        #expect(throws: IndexCorruption.self) { try CheckpointFile.decode(Array("0\n3\norders 1 42\n".utf8)) }
    }

    @Test func topicPartitionDirectoryNames() {
        #expect(TopicPartition(topic: "my-topic", partition: 12).directoryName == "my-topic-12")
        #expect(TopicPartition(directoryName: "my-topic-12") == TopicPartition(topic: "my-topic", partition: 12))
        #expect(TopicPartition(directoryName: "orders-0.0123abcd-delete") == nil)
        #expect(TopicPartition(directoryName: "orders") == nil)
        #expect(TopicPartition(directoryName: "-3") == nil)
        #expect(SegmentFileName.log(42) == "00000000000000000042.log")
        #expect(SegmentFileName.baseOffset(of: "00000000000000000042.timeindex", suffix: ".timeindex") == 42)
    }
}
