import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import BrokerServer

/// Framing of the byte stream, and whether frames share the input's storage.
@Suite struct KafkaFrameReaderTests {
    /// Two complete frames and the start of a third in one read, as NIOSSL or a socket delivers them.
    func input() -> ByteBuffer {
        var buffer = ByteBuffer()
        for body in [[UInt8](repeating: 1, count: 100), [UInt8](repeating: 2, count: 300)] {
            buffer.writeInteger(Int32(body.count))
            buffer.writeBytes(body)
        }
        buffer.writeInteger(Int32(50))
        buffer.writeBytes([UInt8](repeating: 3, count: 20))
        return buffer
    }

    func frames(copiesFrames: Bool) throws -> (input: ByteBuffer, frames: [ByteBuffer]) {
        let reader = KafkaFrameReader(
            maxFrameBytes: 1 << 20, budget: RequestMemoryBudget(limit: 1 << 20), readTimeout: .seconds(30),
            copiesFrames: copiesFrames, logger: Logger(label: "test"))
        let channel = EmbeddedChannel(handler: reader)
        let input = input()
        try channel.writeInbound(input)
        var frames: [ByteBuffer] = []
        while let frame = try channel.readInbound(as: ByteBuffer.self) { frames.append(frame) }
        var rest = ByteBuffer()
        rest.writeBytes([UInt8](repeating: 3, count: 30))
        try channel.writeInbound(rest)
        while let frame = try channel.readInbound(as: ByteBuffer.self) { frames.append(frame) }
        _ = try? channel.finish()
        return (input, frames)
    }

    func storage(_ buffer: ByteBuffer) -> ClosedRange<UInt> {
        buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress!)...UInt(bitPattern: $0.baseAddress! + $0.count - 1) }
    }

    @Test(arguments: [false, true])
    func framesAreSplitAndCompletedAcrossReads(copiesFrames: Bool) throws {
        let (_, frames) = try frames(copiesFrames: copiesFrames)
        #expect(frames.map(\.readableBytes) == [100, 300, 50])
        #expect(frames[0].readableBytesView.allSatisfy { $0 == 1 })
        #expect(frames[1].readableBytesView.allSatisfy { $0 == 2 })
        #expect(frames[2].readableBytesView.allSatisfy { $0 == 3 })
    }

    /// Plaintext frames are zero-copy slices of the read; behind TLS (where the read buffer is
    /// NIOSSL's, reused, and copied whole on write while shared) they are copies.
    @Test(arguments: [false, true])
    func completeFramesShareTheReadOnlyWithoutCopying(copiesFrames: Bool) throws {
        let (input, frames) = try frames(copiesFrames: copiesFrames)
        let read = storage(input)
        for frame in frames.prefix(2) {
            #expect(read.overlaps(storage(frame)) == !copiesFrames)
        }
    }
}
