import NIOCore
import NIOHTTP1

/// What a handler writes through `HTTPServerCodec`: a streamed answer as head, body parts and end,
/// or a whole answer in one part. Both heads are written from a header list, with their framing
/// the codec's (no `HTTPHeaders`).
package enum ServerResponsePart {
    /// A streamed answer's head; `.body` parts and `.end` follow.
    case streamHead(StreamHead)
    case body(ByteBuffer)
    case end
    /// A whole answer whose body is known. The codec writes its head straight from the header
    /// list, with the body after it, in one buffer and one pass: no `HTTPHeaders`, no head part
    /// and body part through the pipeline, one copy of the body (bench/README.md, "A whole
    /// answer in one part").
    case whole(WholeAnswer)
}

/// A whole answer, for `ServerResponsePart.whole`. Its framing is the codec's: it writes the
/// body's `content-length` (none for 1xx, 204 and 304), and `connection` when given; the caller's
/// own `content-length`, `transfer-encoding` and, when `connection` is given, `connection` are
/// dropped, and so is every header `isWritableAnswerHeader` refuses.
package struct WholeAnswer {
    package var status: HTTPResponseStatus
    package var version: HTTPVersion
    package var headers: [(String, String)]
    package var body: [UInt8]
    /// Written as the answer's `connection` header, replacing the caller's ("close" ends the
    /// connection after the answer). nil: the codec writes none of its own; a caller's
    /// `connection` header is then kept, and `close` there still ends the connection.
    package var connection: String?

    package init(status: HTTPResponseStatus, version: HTTPVersion = .http1_1, headers: [(String, String)],
                 body: [UInt8], connection: String? = nil)
    {
        self.status = status
        self.version = version
        self.headers = headers
        self.body = body
        self.connection = connection
    }
}

/// A streamed answer's head (a final answer's: status 200 or above), for
/// `ServerResponsePart.streamHead`. Its framing is the codec's: chunked on HTTP/1.1, to the
/// connection's close on HTTP/1.0 (the codec writes `connection: close` then); the
/// caller's own `content-length`, `transfer-encoding` and, when `connection` is given,
/// `connection` are dropped, and so is every header `isWritableAnswerHeader` refuses.
package struct StreamHead {
    package var status: HTTPResponseStatus
    package var version: HTTPVersion
    package var headers: [(String, String)]
    /// As `WholeAnswer.connection`.
    package var connection: String?

    package init(status: HTTPResponseStatus, version: HTTPVersion = .http1_1, headers: [(String, String)],
                 connection: String? = nil)
    {
        self.status = status
        self.version = version
        self.headers = headers
        self.connection = connection
    }
}

/// Whether an answer header from a plugin, a middleware or an upstream may be written: its name an
/// HTTP token and its value free of control characters, so that none can split the response.
/// NIO's own outbound header validation is not in the pipeline; this is the one rule, for whole
/// answers and streamed heads alike.
@inline(__always)
func isWritableAnswerHeader(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
    !name.isEmpty && name.allSatisfy(isHTTPToken) && isHTTPFieldValue(value)
}
