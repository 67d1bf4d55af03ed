/// The AWS event-stream binary framing (`application/vnd.amazon.eventstream`), used by Bedrock's
/// ConverseStream, Transcribe, Kinesis and S3 Select. A frame, all integers big-endian:
///
///     total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | message_crc u32
///
/// `prelude_crc` is the CRC-32 of the first 8 bytes, `message_crc` that of everything before it.
/// A header is `name_length u8 | name | value_type u8 | value`.
public enum AWSEventStream {
    /// Limits as in botocore's decoder: larger frames are refused, which bounds what a decoder buffers.
    public static let maximumHeadersLength = 128 * 1024
    public static let maximumPayloadLength = 24 * 1024 * 1024
    static let preludeLength = 12
    static let overhead = 16 // prelude and message CRC

    public enum HeaderValue: Sendable, Equatable {
        case bool(Bool)
        /// int8, int16, int32 and int64 (types 2–5).
        case integer(Int64)
        case bytes([UInt8])
        case string(String)
        /// Milliseconds since the Unix epoch.
        case timestamp(Int64)
        case uuid([UInt8])
    }

    public struct Message: Sendable {
        public var headers: [(String, HeaderValue)]
        public var payload: [UInt8]

        public init(headers: [(String, HeaderValue)], payload: [UInt8]) {
            self.headers = headers
            self.payload = payload
        }

        /// The value of string header `name` (`:event-type`, `:message-type`, ...).
        public func string(_ name: String) -> String? {
            for (header, value) in headers where header == name {
                if case let .string(text) = value { return text }
            }
            return nil
        }
    }

    public struct DecodingError: Error, Sendable, Equatable {
        public var reason: String
    }

    /// Encodes one frame (string headers only): for tests and local answers.
    public static func encode(headers: [(String, String)], payload: [UInt8]) -> [UInt8] {
        var headerBytes: [UInt8] = []
        for (name, value) in headers {
            headerBytes.append(UInt8(truncatingIfNeeded: name.utf8.count))
            headerBytes.append(contentsOf: name.utf8)
            headerBytes.append(7)
            appendBigEndian(UInt16(truncatingIfNeeded: value.utf8.count), to: &headerBytes)
            headerBytes.append(contentsOf: value.utf8)
        }
        var frame: [UInt8] = []
        appendBigEndian(UInt32(truncatingIfNeeded: headerBytes.count + payload.count + overhead), to: &frame)
        appendBigEndian(UInt32(truncatingIfNeeded: headerBytes.count), to: &frame)
        appendBigEndian(CRC32.checksum(frame), to: &frame)
        frame.append(contentsOf: headerBytes)
        frame.append(contentsOf: payload)
        appendBigEndian(CRC32.checksum(frame), to: &frame)
        return frame
    }

    package static func appendBigEndian<Value: FixedWidthInteger>(_ value: Value, to bytes: inout [UInt8]) {
        for index in (0..<Value.bitWidth / 8).reversed() {
            bytes.append(UInt8(truncatingIfNeeded: value >> (index * 8)))
        }
    }
}

/// Decodes frames from byte chunks that may split anywhere. Buffers at most one incomplete frame,
/// whose declared size the limits above bound; checks both CRCs of every frame.
public struct AWSEventStreamDecoder: Sendable {
    private var buffer: [UInt8] = []
    /// Where the next frame starts in `buffer` (consumed bytes are dropped lazily).
    private var start = 0

    public init() {}

    /// Bytes of an incomplete frame are waiting: at the end of the stream, the answer was cut.
    public var hasPartialFrame: Bool { start < buffer.count }

    public mutating func append(_ chunk: UnsafeRawBufferPointer) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start >= 4096 && start * 2 >= buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: chunk)
    }

    public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// The next complete frame, or nil until more bytes arrive. A frame that fails its checks
    /// throws, and the decoder must not be used afterwards (a byte stream cannot resynchronize).
    public mutating func next() throws(AWSEventStream.DecodingError) -> AWSEventStream.Message? {
        let available = buffer.count - start
        guard available >= AWSEventStream.preludeLength else { return nil }
        let result = buffer.withUnsafeBytes { bytes in
            Result { () throws(AWSEventStream.DecodingError) in
                try decodeFrame(UnsafeRawBufferPointer(rebasing: bytes[start...]))
            }
        }
        let (message, consumed) = try result.get()
        start += consumed
        return message
    }

    /// The frame at the start of `frame`, with its length; (nil, 0) while it is incomplete.
    private func decodeFrame(_ frame: UnsafeRawBufferPointer) throws(AWSEventStream.DecodingError)
        -> (AWSEventStream.Message?, Int)
    {
        let totalLength = Int(readUInt32(frame, 0)), headersLength = Int(readUInt32(frame, 4))
        guard CRC32.checksum(UnsafeRawBufferPointer(rebasing: frame[0..<8])) == readUInt32(frame, 8) else {
            throw AWSEventStream.DecodingError(reason: "prelude CRC mismatch")
        }
        guard headersLength <= AWSEventStream.maximumHeadersLength,
              totalLength >= AWSEventStream.overhead + headersLength,
              totalLength - AWSEventStream.overhead - headersLength <= AWSEventStream.maximumPayloadLength
        else {
            throw AWSEventStream.DecodingError(reason: "invalid frame lengths (total \(totalLength), headers \(headersLength))")
        }
        guard frame.count >= totalLength else { return (nil, 0) }
        let crc = CRC32.checksum(UnsafeRawBufferPointer(rebasing: frame[0..<(totalLength - 4)]))
        guard crc == readUInt32(frame, totalLength - 4) else {
            throw AWSEventStream.DecodingError(reason: "message CRC mismatch")
        }
        let headersEnd = AWSEventStream.preludeLength + headersLength
        let headers = try parseHeaders(UnsafeRawBufferPointer(rebasing: frame[AWSEventStream.preludeLength..<headersEnd]))
        let payload = Array(frame[headersEnd..<(totalLength - 4)])
        return (AWSEventStream.Message(headers: headers, payload: payload), totalLength)
    }

    private func parseHeaders(_ bytes: UnsafeRawBufferPointer) throws(AWSEventStream.DecodingError)
        -> [(String, AWSEventStream.HeaderValue)]
    {
        var headers: [(String, AWSEventStream.HeaderValue)] = []
        var offset = 0
        func take(_ count: Int) throws(AWSEventStream.DecodingError) -> UnsafeRawBufferPointer {
            guard count >= 0, offset + count <= bytes.count else {
                throw AWSEventStream.DecodingError(reason: "a header runs past the header block")
            }
            defer { offset += count }
            return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        }
        func integer(_ width: Int) throws(AWSEventStream.DecodingError) -> Int64 {
            var value: UInt64 = 0
            for byte in try take(width) { value = value << 8 | UInt64(byte) }
            // Sign-extend from `width` bytes.
            let shift = UInt64(64 - width * 8)
            return Int64(bitPattern: value << shift) >> Int64(shift)
        }
        while offset < bytes.count {
            let nameLength = Int(try take(1)[0])
            let name = String(decoding: try take(nameLength), as: UTF8.self)
            let value: AWSEventStream.HeaderValue
            switch try take(1)[0] {
            case 0: value = .bool(true)
            case 1: value = .bool(false)
            case 2: value = .integer(try integer(1))
            case 3: value = .integer(try integer(2))
            case 4: value = .integer(try integer(4))
            case 5: value = .integer(try integer(8))
            case 6: value = .bytes(Array(try take(Int(try integer(2)) & 0xFFFF)))
            case 7: value = .string(String(decoding: try take(Int(try integer(2)) & 0xFFFF), as: UTF8.self))
            case 8: value = .timestamp(try integer(8))
            case 9: value = .uuid(Array(try take(16)))
            case let type: throw AWSEventStream.DecodingError(reason: "unknown header value type \(type)")
            }
            headers.append((name, value))
        }
        return headers
    }
}

@inline(__always)
private func readUInt32(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
    UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}
