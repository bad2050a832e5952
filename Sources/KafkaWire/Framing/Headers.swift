import NIOCore

/// Request header, versions 0-2 (RequestHeader.json). The header version follows from the api
/// key/version: flexible versions use v2 (with a tagged-field section), others v1. ClientId is
/// always the classic int16-length nullable string.
public struct RequestHeader: Sendable, Hashable {
    public var apiKey: APIKey
    public var apiVersion: Int16
    public var correlationId: Int32
    public var clientId: String?

    public init(apiKey: APIKey, apiVersion: Int16, correlationId: Int32, clientId: String? = nil) {
        self.apiKey = apiKey
        self.apiVersion = apiVersion
        self.correlationId = correlationId
        self.clientId = clientId
    }

    public var headerVersion: Int16 { apiKey.requestHeaderVersion(apiVersion: apiVersion) }

    /// Reads the header from the start of a frame (after the size prefix). Works for any api key,
    /// including ones this module has no codecs for (unknown keys are read as header v1).
    public static func read(from buffer: inout ByteBuffer) throws(WireError) -> RequestHeader {
        let apiKey = APIKey(rawValue: try buffer.readWireInt16())
        let apiVersion = try buffer.readWireInt16()
        let correlationId = try buffer.readWireInt32()
        var header = RequestHeader(apiKey: apiKey, apiVersion: apiVersion, correlationId: correlationId)
        let version = header.headerVersion
        if version >= 1 {
            header.clientId = try buffer.readWireNullableString(compact: false, nullable: true)
        }
        if version >= 2 {
            try buffer.skipTaggedFields()
        }
        return header
    }

    public func write(to buffer: inout ByteBuffer) throws(WireError) {
        buffer.writeWireInt16(apiKey.rawValue)
        buffer.writeWireInt16(apiVersion)
        buffer.writeWireInt32(correlationId)
        let version = headerVersion
        if version >= 1 {
            try buffer.writeWireNullableString(clientId, compact: false, nullable: true)
        }
        if version >= 2 {
            buffer.writeUnsignedVarint(0)
        }
    }
}

/// Response header, versions 0-1 (ResponseHeader.json): correlation id, plus an (empty) tagged-field
/// section in v1. Use `APIKey.responseHeaderVersion(apiVersion:)` to pick the version.
public struct ResponseHeader: Sendable, Hashable {
    public var correlationId: Int32

    public init(correlationId: Int32) {
        self.correlationId = correlationId
    }

    public static func read(from buffer: inout ByteBuffer, version: Int16) throws(WireError) -> ResponseHeader {
        guard version == 0 || version == 1 else { throw .unsupportedVersion(version: version) }
        let header = ResponseHeader(correlationId: try buffer.readWireInt32())
        if version >= 1 {
            try buffer.skipTaggedFields()
        }
        return header
    }

    public func write(to buffer: inout ByteBuffer, version: Int16) {
        buffer.writeWireInt32(correlationId)
        if version >= 1 {
            buffer.writeUnsignedVarint(0)
        }
    }
}
