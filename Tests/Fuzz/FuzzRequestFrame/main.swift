// Request-frame decoding: the input is a frame as the connection handler sees it after the size
// prefix (request header + body). The header is decoded, then the body with the generated decoder
// of the API key in the header, at the header's version — for every API the broker serves.
//
// Invariants: decoding never traps; a body is decoded only at a supported version; whatever decodes
// re-encodes, and the re-encoded bytes decode to the same request with nothing left over; a produce
// request's batches go through the broker's batch validation.
import FuzzSupport
import KafkaWire
import NIOCore
import RecordCompression
import RecordFormat

/// Decodes `body` as `Request` at `version` and checks the round trip: what decodes re-encodes, the
/// re-encoded bytes decode with nothing left over and encode to the same bytes again.
func check<Request: KafkaRequest>(_: Request.Type, _ body: ByteBuffer, version: Int16) {
    var buffer = body
    guard let request = try? Request(from: &buffer, version: version) else { return }
    invariant(Request.supportedVersions.contains(version), "\(Request.self) decoded at unsupported version \(version)")
    let encoded: ByteBuffer
    do { encoded = try request.encoded(version: version) } catch { violated("re-encoding a decoded \(Request.self) v\(version) failed: \(error)") }
    var again = encoded
    let decoded: Request
    do { decoded = try Request(from: &again, version: version) } catch { violated("re-encoded \(Request.self) v\(version) does not decode: \(error)") }
    invariant(again.readableBytes == 0, "re-encoded \(Request.self) v\(version) leaves \(again.readableBytes) bytes")
    let twice: ByteBuffer
    do { twice = try decoded.encoded(version: version) } catch { violated("encoding \(Request.self) v\(version) a second time failed: \(error)") }
    invariant(twice == encoded, "\(Request.self) v\(version) does not round-trip")
    if let produce = request as? ProduceRequest {
        for topic in produce.topicData {
            for partition in topic.partitionData {
                guard var batch = partition.records?.singleBuffer else { continue }
                if version < 3 {
                    // Produce v0-2: a legacy message set, converted as the broker converts it.
                    guard let converted = try? LegacyMessageSet.upConvert(batch, now: 0, decompressedBytesMax: 1 << 24) else { continue }
                    invariant((try? RecordBatch.validateFromClient(converted, requireExactLength: true)) != nil, "an up-converted message set is not a valid batch")
                    batch = converted
                }
                guard let header = try? RecordBatch.validateFromClient(batch, requireExactLength: true) else { continue }
                _ = try? RecordBatch.validateRecordsDeep(batch, header: header, offsets: .sequential, decompressedBytesMax: 1 << 24)
            }
        }
    }
}

/// The decoder for each served API key (Broker.makeRoutes serves these, ApiVersions included),
/// taken from the generated table so a newly served API is fuzzed without an edit here.
nonisolated(unsafe) let decoders: [APIKey: (ByteBuffer, Int16) -> Void] = {
    var table: [APIKey: (ByteBuffer, Int16) -> Void] = [:]
    func add<Request: KafkaRequest>(_ type: Request.Type) {
        table[Request.apiKey] = { check(type, $0, version: $1) }
    }
    for range in APIKey.servedAPIs {
        if let type = range.apiKey.requestType { add(type) }
    }
    let missing = APIKey.servedAPIs.map(\.apiKey).filter { table[$0] == nil }
    invariant(missing.isEmpty, "served APIs without a fuzzed decoder: \(missing.map(\.name))")
    return table
}()

func fuzzOne(_ input: [UInt8]) {
    var frame = ByteBuffer(bytes: input)
    guard let header = try? RequestHeader.read(from: &frame) else { return }
    decoders[header.apiKey]?(frame, header.apiVersion)
}

/// A default request of every served API at every served version (header + body), besides the
/// captured client frames tools/fuzz.sh adds.
func seeds() -> [[UInt8]] {
    var seeds: [[UInt8]] = []
    func add<Request: KafkaRequest>(_ request: Request) {
        for version in Request.supportedVersions {
            guard let chunks = try? WireWriter.encodeRequestFrame(request, version: version, correlationId: 7, clientId: "fuzz"),
                chunks.count == 1, case .bytes(let frame) = chunks[0]
            else { continue }
            seeds.append(Array(frame.readableBytesView.dropFirst(4)))
        }
    }
    var batch = RecordBatchBuilder()
    batch.append(key: Array("k".utf8), value: Array("v".utf8), timestamp: 1_600_000_000_000)
    add(ProduceRequest(acks: -1, timeoutMs: 1000, topicData: [.init(name: "t", partitionData: [.init(index: 0, records: Records(batch.build()))])]))
    add(FetchRequest())
    add(ListOffsetsRequest())
    add(MetadataRequest())
    add(OffsetCommitRequest())
    add(OffsetFetchRequest())
    add(FindCoordinatorRequest())
    add(JoinGroupRequest())
    add(HeartbeatRequest())
    add(LeaveGroupRequest())
    add(SyncGroupRequest())
    add(DescribeGroupsRequest())
    add(ListGroupsRequest())
    add(ApiVersionsRequest())
    add(CreateTopicsRequest())
    add(DeleteTopicsRequest())
    add(DeleteRecordsRequest())
    add(InitProducerIdRequest())
    add(OffsetForLeaderEpochRequest())
    add(DescribeConfigsRequest())
    add(AlterConfigsRequest())
    add(CreatePartitionsRequest())
    add(DeleteGroupsRequest())
    add(IncrementalAlterConfigsRequest())
    add(OffsetDeleteRequest())
    add(DescribeClusterRequest())
    return seeds
}

runFuzzTarget(seeds: seeds, fuzzOne)
