import NIOCore
import NIOHTTP1

/// The gateway's HTTP/1.1 server codec, in one pipeline stage: bytes in, `HTTPServerRequestPart`s
/// out; `ServerResponsePart`s in, bytes out; and pipelining. It replaces NIO's decoder
/// (llhttp behind a `ByteToMessageDecoder`), response encoder and pipelining handler
/// (bench/README.md, "Prism's own HTTP/1.1 codec").
///
/// - Requests are parsed by `HTTP1RequestParser`; body parts are slices of the bytes read.
/// - Pipelining: the next request's head is delivered only once the previous answer ended (on
///   the loop's next turn when it ended in a write), and while an answer is pending for a request
///   read whole, reads are held back (NIO's contract). Bytes already read stay buffered until then.
/// - A whole answer (`.whole`) is written as one buffer, head and body. A streamed answer's head
///   is kept and the body parts written with it are appended to it; it goes down at the first
///   flush, at the end, or with the first write that carries a promise.
/// - The framing is the codec's: a whole answer gets its Content-Length, a stream is chunked on
///   HTTP/1.1 (on HTTP/1.0 the connection's close delimits it: the codec writes `connection:
///   close` and stops parsing); the caller's own framing headers are dropped; 1xx, 204 and 304
///   get none; an answer to HEAD keeps its headers and loses its body.
/// - A parse error is fired as `HTTPRequestError` and the rest of the input is ignored; so is
///   everything after an answer that said `connection: close`.
package final class HTTPServerCodec: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = HTTPServerRequestPart
    package typealias OutboundIn = ServerResponsePart
    package typealias OutboundOut = IOData

    private var decoder: HTTP1RequestParser
    /// Bytes read and not yet parsed (nil: none).
    private var unread: ByteBuffer?
    /// A request's head was delivered and its end not yet.
    private var requestOpen = false
    /// A request's head was delivered and its answer has not ended.
    private var responseOpen = false
    /// No request is parsed any more (a parse error, or an answer that closes the connection).
    private var stopped = false
    private var readHeld = false
    private var parsing = false
    private var removed = false
    // The answer being written.
    private var answeringHead = false
    private var chunked = false
    private var bodyless = false
    private var closes = false
    /// A final answer's head was written and its end not yet.
    private var answering = false
    /// The answer's head and the parts appended to it, not yet passed down.
    private var held: ByteBuffer?

    package init(maximumHeadSize: Int = 80 * 1024) {
        decoder = HTTP1RequestParser(maximumHeadSize: maximumHeadSize)
    }

    // MARK: Inbound

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        guard !stopped else { return }
        if unread == nil {
            unread = bytes
        } else {
            // The bytes already parsed go first: a client whose every read ends inside a request
            // would otherwise grow this buffer by all it ever sent.
            unread!.discardReadBytes()
            var incoming = bytes
            unread!.writeBuffer(&incoming)
        }
        parse(context)
    }

    /// Delivers the parts the buffered bytes hold, as far as pipelining allows; true if it
    /// delivered any.
    @discardableResult
    private func parse(_ context: ChannelHandlerContext) -> Bool {
        guard !parsing else { return false } // an answer ended inside a delivery: the loop below goes on
        parsing = true
        defer { parsing = false }
        var delivered = false
        while !stopped && (requestOpen || !responseOpen) {
            var bytes = unread ?? HTTPServerCodec.empty
            unread = nil
            let part: HTTP1RequestParser.Part?
            do {
                part = try decoder.next(&bytes)
            } catch {
                stopped = true
                context.fireErrorCaught(error)
                delivered = true
                break
            }
            if bytes.readableBytes > 0 { unread = bytes }
            guard let part else { break }
            delivered = true
            switch part {
            case let .head(head):
                requestOpen = true
                responseOpen = true
                answeringHead = head.method == .HEAD
                context.fireChannelRead(wrapInboundOut(.head(head)))
                // A client waiting for `100 Continue` before its body (curl past 1 MiB) gets it, as
                // from nginx, unless the head was already answered (a 413 for its declared
                // length) or the body is here anyway.
                if decoder.expectsContinue && responseOpen && !answering && !stopped && unread == nil {
                    context.writeAndFlush(wrapOutboundOut(.byteBuffer(HTTPServerCodec.continueLine)), promise: nil)
                }
            case let .body(body):
                context.fireChannelRead(wrapInboundOut(.body(body)))
            case .end:
                requestOpen = false
                context.fireChannelRead(wrapInboundOut(.end(nil)))
            }
        }
        if readHeld && mayRead {
            readHeld = false
            context.read()
        }
        return delivered
    }

    /// After an answer ended: the next pipelined request, if its bytes are here, on the loop's
    /// next turn. By then the answer is flushed and its request finished, so that nothing of the
    /// next one (a parse error closing the connection, say) overtakes it; and the handler sees
    /// `channelReadComplete` after it, as after a read (its body timer is armed there).
    private func resume(_ context: ChannelHandlerContext) {
        guard !parsing else { return } // the delivery loop below is running: it goes on by itself
        guard unread != nil else {
            if readHeld && mayRead {
                readHeld = false
                context.read()
            }
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (codec, context) = bound.value
            guard !codec.removed, codec.parse(context) else { return }
            context.fireChannelReadComplete()
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        removed = true
    }

    private static let empty = ByteBuffer()

    /// A read would not bring a pipelined request before its turn. Once stopped, reads go on and
    /// their bytes are dropped: the handler's lingering close after a 413 reads the rest of a body.
    private var mayRead: Bool { stopped || requestOpen || !responseOpen }

    package func read(context: ChannelHandlerContext) {
        if mayRead {
            context.read()
        } else {
            readHeld = true
        }
    }

    // MARK: Outbound

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case let .body(body):
            writeBody(context, body, promise: promise)
        case .end:
            if chunked { append(context, HTTPServerCodec.lastChunk) }
            emitHeld(context, promise: promise)
            answerEnded(context)
        case let .whole(answer):
            writeWhole(context, answer, promise: promise)
            answerEnded(context)
        case let .streamHead(head):
            writeStreamHead(context, head, promise: promise)
        }
    }

    private func answerEnded(_ context: ChannelHandlerContext) {
        responseOpen = false
        (chunked, bodyless, answering, answeringHead) = (false, false, false, false)
        if closes { stopped = true }
        resume(context)
    }

    package func flush(context: ChannelHandlerContext) {
        emitHeld(context)
        context.flush()
    }

    private static let continueLine: ByteBuffer = {
        var buffer = ByteBuffer()
        buffer.writeStaticString("HTTP/1.1 100 Continue\r\n\r\n")
        return buffer
    }()

    private static let lastChunk: ByteBuffer = {
        var buffer = ByteBuffer()
        buffer.writeStaticString("0\r\n\r\n")
        return buffer
    }()

    /// A whole answer: status line, the caller's headers that may be written, its own framing
    /// headers and the body, sized and copied in one pass into one buffer.
    private func writeWhole(_ context: ChannelHandlerContext, _ answer: WholeAnswer, promise: EventLoopPromise<Void>?) {
        emitHeld(context) // nothing is held between answers; kept in order if something were
        let code = answer.status.code
        let mayHaveBody = answer.status.mayHaveResponseBody
        let sendsBody = mayHaveBody && !answeringHead
        let reason = answer.status.reasonPhrase
        let connection = answer.connection
        let size = HeadWriter.size(reason: reason, headers: answer.headers, connection: connection)
            + (sendsBody ? answer.body.count : 0)
        var closing = connection?.equalsASCIIIgnoringCase("close") ?? false
        var buffer = context.channel.allocator.buffer(capacity: size)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { free in
            var out = HeadWriter(base: free.baseAddress!)
            out.putStatusLine(answer.version, code: code, reason: reason)
            out.putAnswerHeaders(answer.headers, replacingConnection: connection != nil, closing: &closing)
            if mayHaveBody {
                out.put("content-length: ")
                out.put(decimal: answer.body.count)
                out.put("\r\n")
            }
            out.putConnection(connection)
            out.put("\r\n")
            if sendsBody { out.put(answer.body) }
            return out.count
        }
        closes = closing // answerEnded, next, stops parsing on it
        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
    }

    /// A streamed answer's head: written as a whole answer's is, then held, with the body parts
    /// appended to it, until the first flush, `.end` or a write with a promise; chunked on
    /// HTTP/1.1, and on HTTP/1.0 delimited by the close, which the codec then makes sure of.
    private func writeStreamHead(_ context: ChannelHandlerContext, _ head: StreamHead, promise: EventLoopPromise<Void>?) {
        assert(head.status.code >= 200, "a stream's head is a final answer's")
        emitHeld(context)
        let mayHaveBody = head.status.mayHaveResponseBody
        let framesChunks = mayHaveBody && head.version == .http1_1 // a HEAD answer names them too
        let reason = head.status.reasonPhrase
        // An HTTP/1.0 body has no framing but the connection's end: it closes, whatever was asked.
        let connection = mayHaveBody && !answeringHead && head.version == .http1_0 ? "close" : head.connection
        let size = HeadWriter.size(reason: reason, headers: head.headers, connection: connection)
        var closing = connection?.equalsASCIIIgnoringCase("close") ?? false
        var buffer = context.channel.allocator.buffer(capacity: size)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { free in
            var out = HeadWriter(base: free.baseAddress!)
            out.putStatusLine(head.version, code: head.status.code, reason: reason)
            out.putAnswerHeaders(head.headers, replacingConnection: connection != nil, closing: &closing)
            if framesChunks { out.put("transfer-encoding: chunked\r\n") }
            out.putConnection(connection)
            out.put("\r\n")
            return out.count
        }
        answering = true
        chunked = framesChunks && !answeringHead
        bodyless = !mayHaveBody || answeringHead
        closes = closing
        held = buffer
        if let promise { emitHeld(context, promise: promise) }
    }

    private func writeBody(_ context: ChannelHandlerContext, _ body: ByteBuffer, promise: EventLoopPromise<Void>?) {
        if bodyless || body.readableBytes == 0 {
            // A HEAD answer keeps its head's headers but carries no body (RFC 9110 §9.3.2). The
            // promise still completes in order.
            if let promise { emitHeld(context, promise: promise) }
            return
        }
        if chunked {
            var framed = held ?? context.channel.allocator.buffer(capacity: body.readableBytes + 12)
            held = nil
            framed.writeString(String(body.readableBytes, radix: 16))
            framed.writeStaticString("\r\n")
            var bytes = body
            framed.writeBuffer(&bytes)
            framed.writeStaticString("\r\n")
            held = framed
        } else if held != nil && body.readableBytes <= 16 * 1024 {
            append(context, body)
        } else {
            emitHeld(context)
            context.write(wrapOutboundOut(.byteBuffer(body)), promise: promise)
            return
        }
        if let promise { emitHeld(context, promise: promise) }
    }

    /// Passes the held answer down, with `promise` if given (then an empty write when none is
    /// held, so that the promise completes after what was written before it).
    private func emitHeld(_ context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        guard held != nil || promise != nil else { return }
        let answer = held ?? HTTPServerCodec.empty
        held = nil
        context.write(wrapOutboundOut(.byteBuffer(answer)), promise: promise)
    }

    /// Appends to the held answer, or holds `bytes` as it.
    private func append(_ context: ChannelHandlerContext, _ bytes: ByteBuffer) {
        guard var answer = held else {
            held = bytes
            return
        }
        held = nil
        var bytes = bytes
        answer.writeBuffer(&bytes)
        held = answer
    }
}

/// Copies a head's pieces into memory the caller sized for them (a struct, so its position needs
/// no dynamic exclusivity check, as a captured variable would).
private struct HeadWriter {
    let base: UnsafeMutableRawPointer
    var count = 0

    mutating func put(_ text: String) {
        let destination = base + count
        let copy = { (bytes: UnsafeBufferPointer<UInt8>) -> Int in
            if let start = bytes.baseAddress { destination.copyMemory(from: start, byteCount: bytes.count) }
            return bytes.count
        }
        // In place without a copy of the string (a native one always is); withUTF8 otherwise.
        if let written = text.utf8.withContiguousStorageIfAvailable(copy) {
            count += written
        } else {
            var text = text
            count += text.withUTF8(copy)
        }
    }

    mutating func put(_ text: StaticString) {
        (base + count).copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
        count += text.utf8CodeUnitCount
    }

    mutating func putStatusLine(_ version: HTTPVersion, code: UInt, reason: String) {
        put(version == .http1_0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        put(digit: code / 100 % 10)
        put(digit: code / 10 % 10)
        put(digit: code % 10)
        put(" ")
        put(reason)
        put("\r\n")
    }

    mutating func put(digit: UInt) {
        base.storeBytes(of: UInt8(truncatingIfNeeded: 0x30 + digit), toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// Room for a head: the status line, the codec's framing and `connection` headers and the
    /// blank line fit in 96 bytes past the reason phrase; each header needs its name and value,
    /// ": " and CRLF.
    static func size(reason: String, headers: [(String, String)], connection: String?) -> Int {
        var size = 96 + reason.utf8.count + (connection?.utf8.count ?? 0)
        for (name, value) in headers { size += name.utf8.count + value.utf8.count + 4 }
        return size
    }

    /// Each header of the list that `putAnswerHeader` keeps, checked and copied from the strings'
    /// own bytes in one visit (withUTF8 reads a native string in place).
    mutating func putAnswerHeaders(_ headers: [(String, String)], replacingConnection: Bool, closing: inout Bool) {
        for (name, value) in headers {
            var name = name, value = value
            name.withUTF8 { name in
                value.withUTF8 { value in
                    putAnswerHeader(UnsafeRawBufferPointer(name), UnsafeRawBufferPointer(value),
                                    replacingConnection: replacingConnection, closing: &closing)
                }
            }
        }
    }

    /// The codec's own `connection` header, when it writes one.
    mutating func putConnection(_ connection: String?) {
        guard let connection else { return }
        put("connection: ")
        put(connection)
        put("\r\n")
    }

    /// `name: value` and CRLF, when the header may be written (`isWritableAnswerHeader`'s rule)
    /// and is not framing the codec writes itself (`content-length`, `transfer-encoding`, and
    /// `connection` when it writes its own). A `connection: close` kept makes `closing` true.
    mutating func putAnswerHeader(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, replacingConnection: Bool,
                                  closing: inout Bool)
    {
        guard isWritableAnswerHeader(name: name, value: value) else { return }
        switch name.count {
        case 14 where asciiCaseInsensitiveEquals(name, "content-length"): return
        case 17 where asciiCaseInsensitiveEquals(name, "transfer-encoding"): return
        case 10 where asciiCaseInsensitiveEquals(name, "connection"):
            if replacingConnection { return }
            closing = closing || asciiCaseInsensitiveEquals(value, "close")
        default: break
        }
        put(name)
        put(": ")
        put(value)
        put("\r\n")
    }

    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        if let start = bytes.baseAddress { (base + count).copyMemory(from: start, byteCount: bytes.count) }
        count += bytes.count
    }

    /// A non-negative integer in decimal.
    mutating func put(decimal value: Int) {
        var digits = 1, rest = value / 10
        while rest > 0 { digits += 1; rest /= 10 }
        var remaining = value
        for offset in stride(from: digits - 1, through: 0, by: -1) {
            base.storeBytes(of: UInt8(truncatingIfNeeded: 0x30 + remaining % 10), toByteOffset: count + offset, as: UInt8.self)
            remaining /= 10
        }
        count += digits
    }

    mutating func put(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { put($0) }
    }
}
