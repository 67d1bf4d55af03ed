import NIOCore
import NIOHTTP1
import PrismHTTP1
import PrismSupport
import PrismWire

/// One client connection: reads a request (with size and time limits), routes it, and writes
/// the answer. All state is confined to the connection's event loop.
package final class GatewayHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundOut = ServerResponsePart

    let runtime: GatewayRuntime
    /// The current generation; a proxied request keeps the one it started with.
    var gateway: Gateway { runtime.gateway }
    private var head: HTTPRequestHead?
    private var body: PinnedBytes?
    /// The request was refused while reading (413): swallow the rest of its body.
    private var discarding = false
    /// server.max_request_body_size of the generation current when this request's head arrived.
    private var bodyLimit = 0
    /// While `awaitingBody`: server.read_timeout since the last body bytes, and
    /// server.body_timeout since the head. One timer, armed only when a read ends with the body
    /// still incomplete (most requests arrive whole in one read and arm nothing).
    private var bodyStartedAt = NIODeadline.uptimeNanoseconds(0)
    private var lastBodyReadAt = NIODeadline.uptimeNanoseconds(0)
    private var readTimeout: TimeAmount = .seconds(5)
    private var bodyTimeout: TimeAmount = .seconds(60)
    private var bodyTimer: Scheduled<Void>?
    private(set) var context: ChannelHandlerContext?
    /// The request being proxied on this connection, if any.
    private var active: ProxyRequest?
    private var responding = false
    /// The current request's HTTP version and whether the client keeps the connection
    /// (HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `keep-alive`): the answer uses the
    /// same version, and the connection closes after it when the client asked.
    private var version: HTTPVersion = .http1_1
    private var keepAlive = true
    /// A stream's flush is queued for the end of this loop turn (writeStreamBytes).
    private var flushQueued = false
    /// The connection's deadlines, told of each head and answer (set by `addGatewayHandlers`).
    var deadlines: ConnectionDeadlineHandler?

    package init(runtime: GatewayRuntime) { self.runtime = runtime }

    package func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        deadlines = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(requestHead):
            deadlines?.headReceived()
            head = requestHead
            body = nil
            discarding = false
            version = requestHead.version.major == 1 && requestHead.version.minor == 0 ? .http1_0 : .http1_1
            keepAlive = requestHead.isKeepAlive
            // One look at the current generation per request (a reload may swap it meanwhile).
            let server = gateway.configuration.server
            let limit = server.maxRequestBodySize
            bodyLimit = limit
            let declaredLength = requestHead.headers.first(name: "content-length").flatMap(Int.init)
            if let declaredLength, declaredLength > limit {
                discarding = true
                respondTooLarge(context: context, limit: limit)
                return
            }
            // The body: no pause longer than read_timeout, and all of it within body_timeout.
            readTimeout = .milliseconds(server.readTimeout.milliseconds)
            bodyTimeout = .milliseconds(server.bodyTimeout.milliseconds)
            bodyStartedAt = context.eventLoop.now
            lastBodyReadAt = bodyStartedAt
            // The body is coming: one buffer of its size (up to 1 MiB, so that a head alone cannot
            // reserve more before any byte arrived), not one regrown and copied per chunk.
            if let declaredLength, declaredLength > 0 {
                body = PinnedBytes(capacity: min(declaredLength, 1 << 20))
            }
        case let .body(chunk):
            guard !discarding else { return }
            lastBodyReadAt = context.eventLoop.now
            let limit = bodyLimit
            if (body?.count ?? 0) + chunk.readableBytes > limit {
                discarding = true
                respondTooLarge(context: context, limit: limit)
                return
            }
            // Copied once, into the bytes the request's plugins will read in place.
            let bytes = body ?? PinnedBytes(capacity: chunk.readableBytes)
            chunk.withUnsafeReadableBytes { bytes.append($0) }
            body = bytes
        case .end:
            stopBodyTimer()
            guard !discarding, let requestHead = head else { return }
            head = nil
            dispatch(context: context, head: requestHead, body: body)
            body = nil
        }
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        if awaitingBody && bodyTimer == nil { armBodyTimer(context) }
        context.fireChannelReadComplete()
    }

    private func armBodyTimer(_ context: ChannelHandlerContext) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        bodyTimer = context.eventLoop.scheduleTask(deadline: min(lastBodyReadAt + readTimeout, bodyStartedAt + bodyTimeout)) {
            let handler = bound.value
            handler.bodyTimer = nil
            guard handler.awaitingBody, let context = handler.context else { return }
            let now = context.eventLoop.now
            let bodyEnds = handler.bodyStartedAt + handler.bodyTimeout, readEnds = handler.lastBodyReadAt + handler.readTimeout
            if bodyEnds <= now && bodyEnds <= readEnds {
                handler.readTimedOut("The request body did not arrive completely within server.body_timeout.")
            } else if readEnds <= now {
                handler.readTimedOut("No part of the request body arrived for server.read_timeout.")
            } else {
                handler.armBodyTimer(context) // bytes came meanwhile: the deadlines moved
            }
        }
    }

    /// A head arrived and its body is still being read (`head` is cleared at its end or timeout).
    private var awaitingBody: Bool { head != nil && !discarding }

    private func stopBodyTimer() {
        bodyTimer?.cancel()
        bodyTimer = nil
    }

    private func readTimedOut(_ message: String) {
        guard context != nil, head != nil, !responding else { return }
        stopBodyTimer()
        head = nil
        discarding = true
        writeError(status: .requestTimeout, type: "invalid_request_error", code: "request_timeout",
                   message: message, close: true)
    }

    private func respondTooLarge(context: ChannelHandlerContext, limit: Int) {
        stopBodyTimer()
        writeError(status: .payloadTooLarge, type: "invalid_request_error", code: "request_too_large",
                   message: "The request body is larger than server.max_request_body_size (\(limit) bytes).",
                   close: true)
    }

    // MARK: Routing

    private func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead, body: PinnedBytes?) {
        // Searched as bytes in place: a Character search walks grapheme clusters (7,000
        // instructions for a 20-byte path), the UTF-8 view's iterator about 30 a byte.
        var uri = head.uri
        let path = uri.withUTF8 { bytes in
            bytes.firstIndex(of: UInt8(ascii: "?")).map { String(decoding: UnsafeBufferPointer(rebasing: bytes[..<$0]), as: UTF8.self) }
        } ?? head.uri
        switch (head.method, path) {
        case (.GET, "/healthz"), (.GET, "/livez"), (.HEAD, "/healthz"):
            writeJSON(status: .ok, body: Array(#"{"status":"ok"}"#.utf8))
        case (.GET, "/readyz"):
            if gateway.activity.draining.load(ordering: .relaxed) {
                writeJSON(status: .serviceUnavailable, body: Array(#"{"status":"draining"}"#.utf8))
            } else if gateway.providers.isEmpty {
                // Nothing could be answered: a load balancer should not send traffic here.
                writeJSON(status: .serviceUnavailable, body: Array(#"{"status":"no_providers"}"#.utf8))
            } else {
                writeJSON(status: .ok, body: Array(#"{"status":"ok"}"#.utf8))
            }
        case (.GET, "/v1/models"):
            // Through the middleware chain, like a completion: with auth on it needs a client key.
            proxy(head: head, path: path, api: "models.list", body: nil)
        case (.GET, "/-/health/providers"):
            guard authorizeOperational(head, path) else { return }
            writeJSON(status: .ok, body: gateway.health.report(providers: gateway.providers))
        case (.GET, "/-/health/state"):
            guard authorizeOperational(head, path) else { return }
            writeJSON(status: .ok, body: gateway.registry.sharedState.report())
        case (.POST, "/v1/chat/completions"):
            proxy(head: head, path: path, api: "chat.completions", body: body)
        case (.POST, "/v1/embeddings"):
            proxy(head: head, path: path, api: "embeddings", body: body)
        case (_, "/healthz"), (_, "/livez"), (_, "/readyz"), (_, "/v1/models"), (_, "/v1/chat/completions"),
             (_, "/v1/embeddings"):
            writeError(status: .methodNotAllowed, type: "invalid_request_error", code: "method_not_allowed",
                       message: "Method \(head.method.rawValue) is not allowed on \(path).")
        case (.GET, _) where path.hasPrefix(ProxyRequest.modelsPrefix) && path.count > ProxyRequest.modelsPrefix.count:
            // The OpenAI SDK's models.retrieve; a model id may contain '/' (percent-encoded or not).
            proxy(head: head, path: path, api: "models.retrieve", body: nil)
        case (.GET, "/ui"), (.GET, "/ui/"):
            serveDashboard(head)
        default:
            if gateway.ingress(method: head.method.rawValue, path: path) != nil {
                return proxy(head: head, path: path, api: "chat.completions", body: body, dialect: true)
            }
            if gateway.ingressRoutes.contains(where: { $0.route.matches(method: $0.route.method, path: path) }) {
                if head.headers.first(name: "upgrade") != nil { keepAlive = false }
                return writeError(status: .methodNotAllowed, type: "invalid_request_error", code: "method_not_allowed",
                                  message: "Method \(head.method.rawValue) is not allowed on \(path).")
            }
            if dispatchControl(head: head, path: path, body: body) { return }
            writeError(status: .notFound, type: "invalid_request_error", code: "not_found",
                       message: "Unknown route \(head.method.rawValue) \(path).")
        }
    }

    /// The token of `Authorization: Bearer <token>` (nil without one).
    static func bearerToken(_ head: HTTPRequestHead) -> Substring? {
        guard let header = head.headers.first(name: "authorization") else { return nil }
        let trimmed = header.drop { $0 == " " }
        guard trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " else { return nil }
        var token = trimmed.dropFirst(7).drop { $0 == " " }
        while token.last == " " { token = token.dropLast() }
        return token
    }

    private func proxy(head: HTTPRequestHead, path: String, api: String, body: PinnedBytes?, dialect: Bool = false) {
        // The request keeps this generation to its end: the file's, or its key's organization's
        // (a client key from `Authorization: Bearer`, or `x-api-key` as Anthropic's SDK sends it).
        // (An autoclosure: the token is only read while organizations exist.)
        let gateway = runtime.gateway(bearer: GatewayHTTPHandler.bearerToken(head)
            ?? head.headers.first(name: "x-api-key").map { Substring($0) })
        if gateway.activity.stopping.load(ordering: .relaxed) {
            writeError(status: .serviceUnavailable, type: "service_unavailable", code: "service_unavailable",
                       message: "The gateway is shutting down.", close: true)
            return
        }
        // A client that asked to switch protocols (a WebSocket) gets its answer and the connection
        // closes: what it sends next would not be HTTP.
        if head.headers.first(name: "upgrade") != nil { keepAlive = false }
        var bytes = body ?? PinnedBytes()
        if let encoding = head.headers.first(name: "content-encoding"), !bytes.isEmpty {
            do {
                bytes = PinnedBytes(try BodyDecoding.decode(bytes.array, contentEncoding: encoding, limit: bodyLimit))
            } catch {
                switch error {
                case let .unsupported(coding):
                    return writeError(status: .unsupportedMediaType, type: "invalid_request_error",
                                      code: "unsupported_content_encoding",
                                      message: "Content-Encoding '\(coding)' is not supported (use gzip, deflate or zstd).")
                case .tooLarge:
                    return writeError(status: .payloadTooLarge, type: "invalid_request_error", code: "request_too_large",
                                      message: "The decoded request body is larger than server.max_request_body_size (\(bodyLimit) bytes).")
                case let .corrupt(reason):
                    return writeError(status: .badRequest, type: "invalid_request_error", code: "invalid_content_encoding",
                                      message: "The request body is not valid \(encoding): \(reason).")
                }
            }
        }
        let ingress = dialect ? gateway.ingress(method: head.method.rawValue, path: path) : nil
        if dialect && ingress == nil {
            return writeError(status: .notFound, type: "invalid_request_error", code: "not_found",
                              message: "Unknown route \(head.method.rawValue) \(path).")
        }
        let request = ProxyRequest(gateway: gateway, handler: self, head: head, path: path, api: api, body: bytes,
                                   ingress: ingress)
        active = request
        request.run()
    }

    /// Called by the request when its answer is complete.
    func requestFinished(_ request: ProxyRequest) {
        if active === request { active = nil }
    }

    package func channelInactive(context: ChannelHandlerContext) {
        stopBodyTimer()
        writeDeadline?.cancel()
        active?.clientDisconnected()
        active = nil
        context.fireChannelInactive()
    }

    /// A client that stops reading is given server.write_timeout to drain what is queued; then
    /// the connection is closed (which also cancels the upstream transfer).
    private var writeDeadline: Scheduled<Void>?

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            writeDeadline?.cancel()
            writeDeadline = nil
            active?.clientWritable()
        } else if writeDeadline == nil {
            let channel = context.channel
            let timeout = gateway.configuration.server.writeTimeout
            writeDeadline = context.eventLoop.scheduleTask(in: .milliseconds(timeout.milliseconds)) {
                if !channel.isWritable { channel.close(promise: nil) }
            }
        }
        context.fireChannelWritabilityChanged()
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ShutdownDeadline {
            active?.abortForShutdown()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// A request the codec could not parse: answered in the OpenAI error shape (431 for headers
    /// too large), then closed, since the byte stream cannot be trusted after it.
    package func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parseError = error as? HTTPRequestError, active == nil, !responding else {
            context.close(promise: nil)
            return
        }
        version = .http1_1
        keepAlive = false
        if parseError.headersTooLarge {
            writeError(status: .requestHeaderFieldsTooLarge, type: "invalid_request_error", code: "headers_too_large",
                       message: "The request's headers are too large.", close: true)
        } else {
            writeError(status: .badRequest, type: "invalid_request_error", code: "malformed_request",
                       message: "The request is not valid HTTP/1.1 (\(parseError.reason)).", close: true)
        }
    }

    /// The `connection` header an answer needs: "close" when the connection ends after it,
    /// "keep-alive" for an HTTP/1.0 client that keeps it, none otherwise.
    private func connectionHeader(closing: Bool) -> String? {
        closing ? "close" : version == .http1_0 ? "keep-alive" : nil
    }

    // MARK: Writing

    func writeJSON(status: HTTPResponseStatus, body: [UInt8], headers extra: [(String, String)] = [],
                   close: Bool = false)
    {
        var list: [(String, String)] = [("content-type", "application/json")]
        list.append(contentsOf: extra)
        writeWhole(status: status, headers: list, body: body, close: close, lingering: discarding)
    }

    /// One part for the whole answer: the codec writes head and body in one buffer.
    private func writeWhole(status: HTTPResponseStatus, headers: [(String, String)], body: [UInt8], close: Bool,
                            lingering: Bool)
    {
        guard let context else { return }
        let closing = close || !keepAlive
        let answer = WholeAnswer(status: status, version: version, headers: headers, body: body,
                                 connection: connectionHeader(closing: closing))
        // Before the answer ends: once it has, the codec may hand over a pipelined next request.
        deadlines?.answered()
        if closing {
            closeAfter(context.writeAndFlushWithPromise(wrapOutboundOut(.whole(answer))), lingering: lingering)
        } else {
            context.writeAndFlush(wrapOutboundOut(.whole(answer)), promise: nil)
        }
    }

    /// Closes once `written` is on the wire. With a request body still arriving (a 413), the
    /// output is shut first and the rest of the body read and dropped for a moment, as nginx's
    /// lingering close does: closing with unread data would reset the connection and some clients
    /// would never see the answer.
    private func closeAfter(_ written: EventLoopFuture<Void>, lingering: Bool) {
        guard let context else { return }
        let channel = context.channel
        guard lingering else {
            written.whenComplete { _ in channel.close(promise: nil) }
            return
        }
        written.whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        }
    }

    func writeError(status: HTTPResponseStatus, type: String, code: String, message: String,
                    param: String? = nil, headers: [(String, String)] = [], close: Bool = false)
    {
        writeJSON(status: status, body: OpenAIErrorBody.make(message: message, type: type, code: code, param: param),
                  headers: headers, close: close)
    }

    /// A complete response with a body whose content type the caller chose.
    func writeResponse(status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8]) {
        writeResponse(status: status, headers: headers.map { ($0.name, $0.value) }, body: body)
    }

    func writeResponse(status: HTTPResponseStatus, headers list: [(String, String)], body: [UInt8]) {
        writeWhole(status: status, headers: list, body: body, close: false, lingering: false)
    }

    /// Queued, not flushed: it leaves with the first event (one write instead of two); every
    /// stream write after it flushes.
    func writeStreamHead(headers: [(String, String)]) {
        guard let context else { return }
        // HTTP/1.0 has no chunked encoding: the stream is delimited by closing the connection.
        if version == .http1_0 { keepAlive = false }
        // The codec writes the head from the list (only the headers that may be written, and its
        // own framing and `connection`).
        let head = StreamHead(status: .ok, version: version, headers: headers, connection: connectionHeader(closing: !keepAlive))
        context.write(wrapOutboundOut(.streamHead(head)), promise: nil)
    }

    /// Queued, and flushed once this turn of the loop has done its I/O: libcurl delivers an
    /// upstream read a chunk at a time, and each chunk flushed on its own was a write to the socket
    /// and a wake-up of the client (three a request for the benchmark's stream, now one). Nothing
    /// waits past the turn that produced it.
    func writeStreamBytes(_ bytes: [UInt8]) {
        guard let context, !bytes.isEmpty else { return }
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.write(wrapOutboundOut(.body(buffer)), promise: nil)
        guard !flushQueued else { return }
        flushQueued = true
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let handler = bound.value
            handler.flushQueued = false
            handler.context?.flush()
        }
    }

    func endStream() {
        guard let context else { return }
        deadlines?.answered()
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end), promise: nil)
        } else {
            closeAfter(context.writeAndFlushWithPromise(wrapOutboundOut(.end)), lingering: false)
        }
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }
}

extension ChannelHandlerContext {
    func writeAndFlushWithPromise(_ data: NIOAny) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        writeAndFlush(data, promise: promise)
        return promise.futureResult
    }
}
