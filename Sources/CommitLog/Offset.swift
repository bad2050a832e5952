/// A Kafka offset in a partition's log. Distinct from counts, byte positions and timestamps so the
/// public `CommitLog` API cannot mix them up; the wire and the indexes still carry raw `Int64`s
/// (convert at the edge with `Offset(_:)` / `.value`).
public struct Offset: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int64

    @inlinable
    public init(_ value: Int64) { self.value = value }

    @inlinable
    public static func < (lhs: Offset, rhs: Offset) -> Bool { lhs.value < rhs.value }

    /// The offset `count` records later (or earlier, for a negative count).
    @inlinable
    public func advanced(by count: Int64) -> Offset { Offset(value + count) }

    @inlinable
    public static func + (lhs: Offset, rhs: Int64) -> Offset { Offset(lhs.value + rhs) }

    /// The number of offsets from `rhs` up to `lhs`.
    @inlinable
    public static func - (lhs: Offset, rhs: Offset) -> Int64 { lhs.value - rhs.value }

    public var description: String { String(value) }
}

/// A byte position in a segment's `.log` file.
public struct FilePosition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int64

    @inlinable
    public init(_ value: Int64) { self.value = value }

    @inlinable
    public static func < (lhs: FilePosition, rhs: FilePosition) -> Bool { lhs.value < rhs.value }

    /// The position `bytes` further into the file.
    @inlinable
    public func advanced(by bytes: Int64) -> FilePosition { FilePosition(value + bytes) }

    @inlinable
    public static func + (lhs: FilePosition, rhs: Int64) -> FilePosition { FilePosition(lhs.value + rhs) }

    /// The number of bytes from `rhs` up to `lhs`.
    @inlinable
    public static func - (lhs: FilePosition, rhs: FilePosition) -> Int64 { lhs.value - rhs.value }

    public var description: String { String(value) }
}
