/// A topic name and partition number: the unit of ordering and of on-disk layout.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// The partition directory's name, Kafka style: `<topic>-<partition>`, e.g. `orders-3`.
    public var directoryName: String { "\(topic)-\(partition)" }

    /// Parses `<topic>-<partition>`; nil for anything else (including `...-delete`, `...-future`).
    /// Topic names may themselves contain `-`, so the partition is whatever follows the last one.
    public init?(directoryName: String) {
        guard let dash = directoryName.lastIndex(of: "-") else { return nil }
        let topic = directoryName[..<dash]
        let digits = directoryName[directoryName.index(after: dash)...]
        guard !topic.isEmpty, !digits.isEmpty, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }),
            let partition = Int32(digits)
        else { return nil }
        // Kafka topic names are [a-zA-Z0-9._-]; a `.` names a transient directory (`x-0.<uuid>-delete`) only
        // after the partition number, which the digit check already rejects.
        self.init(topic: String(topic), partition: partition)
    }

    public var description: String { directoryName }
}
