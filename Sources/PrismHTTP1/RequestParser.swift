import NIOCore
import NIOHTTP1

/// Why a client's bytes are not an HTTP/1.1 request. `headersTooLarge` is answered 431, the rest
/// 400; either way the connection closes, since the byte stream cannot be trusted after it.
package struct HTTPRequestError: Error, Equatable, CustomStringConvertible {
    package let reason: String
    package let headersTooLarge: Bool

    init(_ reason: String, headersTooLarge: Bool = false) {
        self.reason = reason
        self.headersTooLarge = headersTooLarge
    }

    package var description: String { reason }
}

/// An incremental HTTP/1.1 request parser (RFC 9112), strict where leniency lets two parsers
/// disagree about where a request ends: CRLF line ends only, no whitespace before a header's
/// colon, no obs-fold, one Content-Length of digits, Transfer-Encoding only `chunked` and never
/// with a Content-Length. Empty lines before a request line are skipped (RFC 9112 §2.2).
///
/// `next(_:)` takes bytes from the front of the buffer and returns one part at a time (nil: it
/// needs more bytes). Body parts are slices of the buffer, not copies.
package struct HTTP1RequestParser {
    private enum State {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers(size: Int)
        case end
        case failed
    }

    private var state = State.head
    /// How far the pending head has been searched for its end (a head trickled in many reads is
    /// not searched from its start each time).
    private var scanned = 0
    /// The last head asked for `100 Continue` before sending its body (HTTP/1.1, `Expect:
    /// 100-continue`, a body to come).
    package private(set) var expectsContinue = false
    /// The largest head (request line and headers) and trailer section accepted, as llhttp's 80 KiB.
    package let maximumHeadSize: Int

    package init(maximumHeadSize: Int = 80 * 1024) {
        self.maximumHeadSize = maximumHeadSize
    }

    package enum Part {
        case head(HTTPRequestHead)
        case body(ByteBuffer)
        case end
    }

    package mutating func next(_ buffer: inout ByteBuffer) throws(HTTPRequestError) -> Part? {
        do {
            return try step(&buffer)
        } catch {
            state = .failed
            throw error
        }
    }

    private mutating func step(_ buffer: inout ByteBuffer) throws(HTTPRequestError) -> Part? {
        switch state {
        case .head:
            return try head(&buffer)
        case let .body(remaining):
            return slice(&buffer, remaining, then: .end, else: State.body)
        case .chunkSize:
            guard let line = try line(in: buffer, limit: 1024) else { return nil }
            let size = try chunkSize(buffer, line)
            buffer.moveReaderIndex(forwardBy: line + 2)
            state = size == 0 ? .trailers(size: 0) : .chunkData(remaining: size)
            return try step(&buffer)
        case let .chunkData(remaining):
            return slice(&buffer, remaining, then: .chunkDataEnd, else: State.chunkData)
        case .chunkDataEnd:
            guard buffer.readableBytes >= 2 else { return nil }
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw HTTPRequestError("a chunk does not end with CRLF") }
            state = .chunkSize
            return try step(&buffer)
        case let .trailers(size):
            // Trailer fields are read and dropped: nothing downstream uses them.
            guard let line = try line(in: buffer, limit: maximumHeadSize - size) else { return nil }
            if line == 0 {
                buffer.moveReaderIndex(forwardBy: 2)
                state = .head
                return .end
            }
            try checkTrailer(buffer, line)
            buffer.moveReaderIndex(forwardBy: line + 2)
            state = .trailers(size: size + line + 2)
            return try step(&buffer)
        case .end:
            state = .head
            return .end
        case .failed:
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            return nil
        }
    }

    /// Up to `remaining` body bytes as a slice; `then` once they are all read, else `partial` of the rest.
    private mutating func slice(_ buffer: inout ByteBuffer, _ remaining: Int, then: State,
                                else partial: (_ remaining: Int) -> State) -> Part?
    {
        guard buffer.readableBytes > 0 else { return nil }
        let count = min(remaining, buffer.readableBytes)
        state = count == remaining ? then : partial(remaining - count)
        return .body(buffer.readSlice(length: count)!)
    }

    /// The length of the line at the buffer's front (without its CRLF); nil while incomplete.
    private mutating func line(in buffer: ByteBuffer, limit: Int) throws(HTTPRequestError) -> Int? {
        // Searched from where the last search stopped: trailers trickled a byte at a time must not
        // cost a scan of everything before each byte.
        let from = scanned
        let found = buffer.withUnsafeReadableBytes { bytes -> Int? in
            var index = from
            while index < bytes.count {
                if bytes[index] == 0x0A { return index }
                index += 1
            }
            return nil
        }
        guard let found else {
            if buffer.readableBytes > limit { throw HTTPRequestError("a chunk line or the trailers are too long", headersTooLarge: true) }
            scanned = buffer.readableBytes
            return nil
        }
        scanned = 0
        let cr = buffer.getInteger(at: buffer.readerIndex + found - 1, as: UInt8.self)
        guard found > 0, cr == 0x0D else { throw HTTPRequestError("a line ends without CR") }
        if found - 1 > limit { throw HTTPRequestError("a chunk line or the trailers are too long", headersTooLarge: true) }
        return found - 1
    }

    private func chunkSize(_ buffer: ByteBuffer, _ length: Int) throws(HTTPRequestError) -> Int {
        let size = buffer.withUnsafeReadableBytes { bytes -> Int? in
            var size = 0, digits = 0, index = 0
            while index < length, let digit = Self.hexValue(bytes[index]) {
                guard digits < 15 else { return nil } // would overflow
                size = size << 4 | digit
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            guard index < length else { return size }
            // An extension (`;name=value`, whitespace allowed before the `;`) is ignored, but may
            // hold no control byte: a bare CR there is where two parsers would part ways.
            while index < length, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
            guard index < length, bytes[index] == UInt8(ascii: ";") else { return nil }
            while index < length {
                let byte = bytes[index]
                guard isHTTPFieldValueByte(byte) else { return nil }
                index += 1
            }
            return size
        }
        guard let size else { throw HTTPRequestError("invalid chunk size") }
        return size
    }

    /// A trailer line is a header line (name `:` value), though its field is dropped.
    private func checkTrailer(_ buffer: ByteBuffer, _ length: Int) throws(HTTPRequestError) {
        let valid = buffer.withUnsafeReadableBytes { bytes -> Bool in
            var index = 0
            while index < length, isHTTPToken(bytes[index]) { index += 1 }
            guard index > 0, index < length, bytes[index] == UInt8(ascii: ":") else { return false }
            return bytes[(index + 1)..<length].allSatisfy(isHTTPFieldValueByte)
        }
        guard valid else { throw HTTPRequestError("invalid trailer line") }
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30...0x39: Int(byte - 0x30)
        case 0x41...0x46: Int(byte - 0x41 + 10)
        case 0x61...0x66: Int(byte - 0x61 + 10)
        default: nil
        }
    }

    // MARK: The head

    private mutating func head(_ buffer: inout ByteBuffer) throws(HTTPRequestError) -> Part? {
        // Empty lines before a request line are skipped (their CR and LF may come in two reads).
        while buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
            buffer.moveReaderIndex(forwardBy: 2)
            scanned = max(scanned - 2, 0)
        }
        let from = max(scanned - 3, 0)
        let end = buffer.withUnsafeReadableBytes { bytes -> Int? in
            guard bytes.count >= 4 else { return nil }
            var index = from
            while index <= bytes.count - 4 {
                if bytes[index + 3] == 0x0A {
                    if bytes[index] == 0x0D && bytes[index + 1] == 0x0A && bytes[index + 2] == 0x0D { return index }
                    index += 1
                } else {
                    index += bytes[index + 3] == 0x0D ? 1 : 4 // the terminator cannot start before the next CR
                }
            }
            return nil
        }
        guard let end else {
            scanned = buffer.readableBytes
            if scanned > maximumHeadSize { throw HTTPRequestError("the request's headers are too large", headersTooLarge: true) }
            return nil
        }
        guard end + 4 <= maximumHeadSize else { throw HTTPRequestError("the request's headers are too large", headersTooLarge: true) }
        scanned = 0
        let parsed = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(HTTPRequestError) in try Self.parseHead(UnsafeRawBufferPointer(rebasing: bytes[0..<(end + 2)])) }
        }
        let (head, framing, expect) = try parsed.get()
        buffer.moveReaderIndex(forwardBy: end + 4)
        let bodyFollows: Bool
        switch framing {
        case let .length(length):
            state = length > 0 ? .body(remaining: length) : .end
            bodyFollows = length > 0
        case .chunked:
            state = .chunkSize
            bodyFollows = true
        }
        expectsContinue = expect && bodyFollows && head.version == .http1_1
        return .head(head)
    }

    private enum Framing {
        case length(Int)
        case chunked
    }

    /// Parses the request line and header lines, each ending in CRLF (`bytes` ends with one).
    private static func parseHead(_ bytes: UnsafeRawBufferPointer) throws(HTTPRequestError) -> (HTTPRequestHead, Framing, Bool) {
        var lineStart = 0
        /// The next line's end (the index of its CR), checking that CR and LF come only as a pair.
        func nextLine() throws(HTTPRequestError) -> Int {
            var index = lineStart
            while true {
                let byte = bytes[index]
                if byte == 0x0D {
                    guard bytes[index + 1] == 0x0A else { throw HTTPRequestError("a CR without LF") }
                    return index
                }
                if byte == 0x0A { throw HTTPRequestError("a line ends without CR") }
                index += 1
            }
        }

        // The request line: method SP request-target SP HTTP-version.
        let requestLineEnd = try nextLine()
        var index = 0
        while index < requestLineEnd, isHTTPToken(bytes[index]) { index += 1 }
        guard index > 0, index < requestLineEnd, bytes[index] == 0x20 else { throw HTTPRequestError("invalid method") }
        let method = Self.method(UnsafeRawBufferPointer(rebasing: bytes[0..<index]))
        let targetStart = index + 1
        index = targetStart
        while index < requestLineEnd, bytes[index] > 0x20, bytes[index] != 0x7F { index += 1 }
        guard index > targetStart, index < requestLineEnd, bytes[index] == 0x20 else { throw HTTPRequestError("invalid request target") }
        let uri = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[targetStart..<index]), as: UTF8.self)
        let version: HTTPVersion
        switch bytesEqual(UnsafeRawBufferPointer(rebasing: bytes[(index + 1)..<requestLineEnd]), "HTTP/1.1") {
        case true: version = .http1_1
        case false:
            guard bytesEqual(UnsafeRawBufferPointer(rebasing: bytes[(index + 1)..<requestLineEnd]), "HTTP/1.0") else {
                throw HTTPRequestError("unsupported HTTP version")
            }
            version = .http1_0
        }
        lineStart = requestLineEnd + 2

        // HTTPHeaders is made from the finished array: its `add` checks every name again.
        var headers: [(String, String)] = []
        headers.reserveCapacity(16)
        var contentLength: Int?
        var chunked = false
        var expectsContinue = false
        while lineStart < bytes.count {
            let lineEnd = try nextLine()
            guard bytes[lineStart] != 0x20 && bytes[lineStart] != 0x09 else {
                throw HTTPRequestError("a header line is folded (obs-fold)")
            }
            var colon = lineStart
            while colon < lineEnd, isHTTPToken(bytes[colon]) { colon += 1 }
            guard colon > lineStart, colon < lineEnd, bytes[colon] == UInt8(ascii: ":") else {
                throw HTTPRequestError("invalid header line")
            }
            var valueStart = colon + 1, valueEnd = lineEnd
            while valueStart < valueEnd, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart += 1 }
            while valueEnd > valueStart, bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            let name = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<colon])
            let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd])
            guard isHTTPFieldValue(value) else { throw HTTPRequestError("a control character in a header value") }
            if asciiCaseInsensitiveEquals(name, "content-length") {
                guard contentLength == nil else { throw HTTPRequestError("more than one Content-Length") }
                guard !value.isEmpty, value.count <= 18, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    throw HTTPRequestError("invalid Content-Length")
                }
                contentLength = value.reduce(0) { $0 * 10 + Int($1 - 0x30) }
            } else if asciiCaseInsensitiveEquals(name, "transfer-encoding") {
                // Only `chunked` is decoded; any other coding would hand the gateway bytes it cannot read.
                guard !chunked, asciiCaseInsensitiveEquals(value, "chunked") else {
                    throw HTTPRequestError("unsupported Transfer-Encoding")
                }
                chunked = true
            } else if asciiCaseInsensitiveEquals(name, "expect") {
                expectsContinue = asciiCaseInsensitiveEquals(value, "100-continue")
            }
            headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
            lineStart = lineEnd + 2
        }
        if chunked && contentLength != nil { throw HTTPRequestError("both Content-Length and Transfer-Encoding") }
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
        if chunked && version == .http1_0 { throw HTTPRequestError("Transfer-Encoding in an HTTP/1.0 request") }
        let head = HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
        return (head, chunked ? .chunked : .length(contentLength ?? 0), expectsContinue)
    }

    private static func method(_ bytes: UnsafeRawBufferPointer) -> HTTPMethod {
        switch bytes.count {
        case 3:
            if bytesEqual(bytes, "GET") { return .GET }
            if bytesEqual(bytes, "PUT") { return .PUT }
        case 4:
            if bytesEqual(bytes, "POST") { return .POST }
            if bytesEqual(bytes, "HEAD") { return .HEAD }
        case 5:
            if bytesEqual(bytes, "PATCH") { return .PATCH }
            if bytesEqual(bytes, "TRACE") { return .TRACE }
        case 6:
            if bytesEqual(bytes, "DELETE") { return .DELETE }
        case 7:
            if bytesEqual(bytes, "OPTIONS") { return .OPTIONS }
            if bytesEqual(bytes, "CONNECT") { return .CONNECT }
        default: break
        }
        return HTTPMethod(rawValue: String(decoding: bytes, as: UTF8.self))
    }

}

/// RFC 9110 `tchar`: letters, digits and ``!#$%&'*+-.^_`|~`` (method and header names). A
/// 128-bit map, inlinable: it runs per byte of every header name, in this module and the gateway's.
@inlinable
package func isHTTPToken(_ byte: UInt8) -> Bool {
    // Bit b of the pair is set when byte b is a tchar (a unit test checks it against the rule).
    let low: UInt64 = 0x03FF_6CFA_0000_0000, high: UInt64 = 0x57FF_FFFF_C7FF_FFFE
    return byte < 64 ? (low >> UInt64(byte)) & 1 == 1 : byte < 128 && (high >> UInt64(byte &- 64)) & 1 == 1
}

/// A byte a field value may hold (RFC 9110 §5.5): visible ASCII, space, tab and obs-text; no
/// other control byte, so that no value can split a head.
@inlinable
package func isHTTPFieldValueByte(_ byte: UInt8) -> Bool {
    byte >= 0x20 ? byte != 0x7F : byte == 0x09
}

/// Whether every byte of `bytes` may be in a field value (`isHTTPFieldValueByte`), eight bytes
/// a step while none is a control byte or DEL (word-at-a-time tests, exact: a word that trips
/// one, a tab perhaps, is looked at byte by byte).
package func isHTTPFieldValue(_ bytes: UnsafeRawBufferPointer) -> Bool {
    let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
    var index = 0
    while index + 8 <= bytes.count {
        let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
        let belowSpace = (word &- ones &* 0x20) & ~word & highs
        let flipped = word ^ (ones &* 0x7F)
        let delete = (flipped &- ones) & ~flipped & highs
        if belowSpace | delete != 0 {
            for offset in index..<(index + 8) where !isHTTPFieldValueByte(bytes[offset]) { return false }
        }
        index += 8
    }
    while index < bytes.count {
        guard isHTTPFieldValueByte(bytes[index]) else { return false }
        index += 1
    }
    return true
}

/// `bytes` equals `text`, byte for byte (comparing with a String's UTF-8 view went through its
/// generic iterator, about 80 instructions a byte).
@inline(__always)
func bytesEqual(_ bytes: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
    guard bytes.count == text.utf8CodeUnitCount else { return false }
    let expected = text.utf8Start
    for index in 0..<bytes.count where bytes[index] != expected[index] { return false }
    return true
}

/// `bytes` equals the lowercase ASCII `text`, ignoring the case of `bytes`.
func asciiCaseInsensitiveEquals(_ bytes: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
    guard bytes.count == text.utf8CodeUnitCount else { return false }
    let expected = text.utf8Start
    for index in 0..<bytes.count where bytes[index] | 0x20 != expected[index] { return false }
    return true
}

extension String {
    /// Equals the lower-case ASCII `lowercase`, ignoring the case of this text (a header name
    /// test with no lower-cased copy).
    package func equalsASCIIIgnoringCase(_ lowercase: StaticString) -> Bool {
        guard utf8.count == lowercase.utf8CodeUnitCount else { return false }
        var text = self // the same storage: withUTF8 reads it in place
        return text.withUTF8 { asciiCaseInsensitiveEquals(UnsafeRawBufferPointer($0), lowercase) }
    }
}
