import DiskIO

/// Kafka's text checkpoint files (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`):
/// line 1 the version `0`, line 2 the entry count, then `<topic> <partition> <offset>` per line.
/// Written to `<name>.tmp`, fsynced, renamed.
enum CheckpointFile {
    static func encode(_ entries: [TopicPartition: Int64]) -> [UInt8] {
        var text = "0\n\(entries.count)\n"
        for (topicPartition, offset) in entries.sorted(by: { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }) {
            text += "\(topicPartition.topic) \(topicPartition.partition) \(offset)\n"
        }
        return Array(text.utf8)
    }

    /// Parses a checkpoint; throws a description when malformed.
    static func decode(_ bytes: [UInt8]) throws(IndexCorruption) -> [TopicPartition: Int64] {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 2, lines[0].trimmingWhitespace == "0", let count = Int(lines[1].trimmingWhitespace), count >= 0 else {
            throw IndexCorruption("bad checkpoint header")
        }
        var entries: [TopicPartition: Int64] = [:]
        for line in lines.dropFirst(2) where !line.trimmingWhitespace.isEmpty {
            let fields = line.split(separator: " ")
            guard fields.count == 3, let partition = Int32(fields[1]), let offset = Int64(fields[2]) else {
                throw IndexCorruption("bad checkpoint line '\(line)'")
            }
            entries[TopicPartition(topic: String(fields[0]), partition: partition)] = offset
        }
        guard entries.count == count else { throw IndexCorruption("checkpoint says \(count) entries, has \(entries.count)") }
        return entries
    }

    static func read(_ path: String, io: any FileIO) throws(DiskError) -> [TopicPartition: Int64]? {
        guard let bytes = try io.readWholeFile(path) else { return nil }
        do { return try decode(bytes) } catch { return nil }
    }

    static func write(_ entries: [TopicPartition: Int64], to path: String, io: any FileIO) throws(DiskError) {
        try io.writeFileAtomically(path, encode(entries))
    }
}

extension Substring {
    var trimmingWhitespace: Substring {
        var text = self
        while let first = text.first, first.isWhitespace { text = text.dropFirst() }
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return text
    }
}
