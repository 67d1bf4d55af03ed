import NIOCore
import NIOHTTP1
import PrismPluginABI
import PrismSupport
import PrismWire

/// A request on a route an ingress plugin serves (ABI 1.5): its dialect's exchange, and the
/// client's own request under the route's api (Content-Encoding decoded), built once: what decode
/// reads, what the middleware see of a request decode answers itself, and what a provider that
/// speaks the dialect gets (pass-through).
final class IngressState {
    let exchange: IngressExchange
    let route: IngressRoute
    var clientView: RequestView?
    /// A provider may get `clientView` (decode returned PRISM_OK).
    var passesThrough = false
    /// decode answered locally: sent once the middleware chain continues.
    var localAnswer: MessageBuilder?
    /// decode said the canonical request cannot carry the client's (PRISM_OK with its error sink
    /// set): only a provider that takes the dialect natively serves it; for others, this error.
    var onlyNative: ErrorCapture?
    /// A pass-through answer's usage, as the dialect reads it (observe_native), and its parser.
    var nativeUsage = prism_usage()
    /// Cuts a pass-through stream into events for observe_native (made at its first bytes).
    var nativeFramer: StreamEventFramer?
    /// What the dialect said when it could not encode a stream chunk.
    let encodeError = ErrorCapture()
    /// decode_request returned PRISM_PENDING and has not resumed: nothing else may be called on
    /// the exchange meanwhile (an error then has OpenAI's shape), and a deadline bounds the wait.
    var decodePending = false
    var decodeDeadline: Scheduled<Void>?

    init(exchange: IngressExchange, route: IngressRoute) {
        self.exchange = exchange
        self.route = route
    }

    /// A pass-through stream's bytes (nil: its end), event by event (SSE) or line by line
    /// (NDJSON), to the dialect's observe_native.
    func observeNativeStream(_ bytes: [UInt8]?, framing: prism_framing) {
        var framer = nativeFramer ?? StreamEventFramer(mode: framing == PRISM_FRAMING_NDJSON ? .lines : .serverSentEvents)
        nativeFramer = nil // one owner of its buffers while it is fed (no copy on write)
        try? framer.feed(bytes) { event in
            event.data.withUnsafeBytes { self.exchange.observeNative(event: event.event, data: $0, usage: &self.nativeUsage) }
        }
        nativeFramer = framer
    }

    /// The stream's chunks go through the dialect instead of OpenAI's `data:` frames.
    func install(on collector: StreamCollector) {
        let exchange = self.exchange, error = encodeError
        collector.encoder = { chunk, output in exchange.encodeEvent(chunk, into: &output, error: error) }
    }

    /// The native request for one attempt (nil unless decode allowed pass-through).
    func nativeView(model: String, streaming: Bool, attempt: Int) -> RequestView? {
        guard passesThrough, let native = clientView else { return nil }
        native.setModel(model)
        native.pointer.pointee.attempt = UInt32(max(0, attempt - 1))
        native.pointer.pointee.flags = (streaming ? PRISM_REQUEST_STREAM : 0) | (attempt > 1 ? PRISM_REQUEST_RETRY : 0)
        return native
    }
}

extension ProxyRequest {
    /// The dialect's decode comes first; the canonical request then takes the chat path.
    func decodeIngress(_ ingress: IngressState) {
        // A client key from `x-api-key` (Anthropic's SDKs) counts as `Authorization: Bearer`, for
        // the middleware of every request of the route, those decode answers itself included.
        if head.headers.first(name: "authorization") == nil, let key = head.headers.first(name: "x-api-key"), !key.isEmpty {
            head.headers.add(name: "authorization", value: "Bearer " + key)
        }
        let view = RequestView(api: ingress.route.api, method: head.method.rawValue, path: path,
                               headers: head.headers.map { ($0.name, $0.value) }, body: body, model: "", requestID: requestID)
        ingress.clientView = view
        let decision = IngressExchange.Decision()
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let eventLoop = self.eventLoop
        let status = withExtendedLifetime(view) {
            ingress.exchange.decode(view, into: decision) { status in
                eventLoop.execute {
                    let request = bound.value
                    if let ingress = request.ingress { request.ingressDecided(ingress, status: status, decision: decision) }
                }
            }
        }
        guard let status else {
            ingress.decodePending = true
            let timeout = gateway.configuration.server.defaultRequestTimeout.milliseconds
            let name = ingress.exchange.ingress.name
            ingress.decodeDeadline = eventLoop.scheduleTask(in: .milliseconds(timeout)) {
                let request = bound.value
                guard !request.finished else { return }
                request.fail(.gatewayTimeout, "timeout_error", "ingress_timeout",
                             "Ingress '\(name)' did not decode the request within the request timeout.")
            }
            return
        }
        ingressDecided(ingress, status: status, decision: decision)
    }

    private func ingressDecided(_ ingress: IngressState, status: prism_status, decision: IngressExchange.Decision) {
        ingress.decodePending = false
        ingress.decodeDeadline?.cancel()
        guard !finished else { return }
        switch status {
        case PRISM_OK, PRISM_TRANSLATE_ONLY:
            for (name, value) in decision.builder.headers where !ProxyRequest.reservedHeaders.contains(name) {
                head.headers.replaceOrAdd(name: name, value: value)
            }
            ingress.passesThrough = status == PRISM_OK
            if decision.error.isSet { ingress.onlyNative = decision.error }
            body = PinnedBytes(decision.builder.body)
            runCanonical()
        case PRISM_ANSWERED_LOCALLY:
            // The middleware still decide (a client key, limits); the answer waits for them.
            ingress.localAnswer = decision.builder
            // `body` is still the client's: its model, read without building a tree.
            clientModel = body.withUnsafeBytes { raw in
                (try? JSONScanner.members(raw)).flatMap { JSONScanner.member(named: "model", in: $0, of: raw) }
                    .flatMap { JSONScanner.string(raw, in: $0.valueRange) } ?? ""
            }
            ingress.clientView?.setModel(clientModel)
            view = ingress.clientView
            runMiddleware(from: 0)
        default:
            failFromPlugin(status, decision.error, provider: "ingress '\(ingress.exchange.ingress.name)'")
        }
    }

    /// decode's own answer (a token count, a stored object), after the middleware continued.
    func answerLocally(_ local: MessageBuilder) {
        var headers = HTTPHeaders(local.headers.map { ($0.name, $0.value) })
        if headers.first(name: "content-type") == nil { headers.add(name: "content-type", value: "application/json") }
        addCommonHeaders(&headers)
        let status = Int(local.status == 0 ? 200 : local.status)
        finishBuffered(HTTPResponseStatus(statusCode: status), headers: headers, body: local.body, logsBody: false)
    }

    // MARK: Answers in the client's dialect

    /// An error answer before the stream started, in the client's dialect.
    func writeDialectError(_ ingress: IngressState, status: HTTPResponseStatus, type: String, code: String, message: String,
                           headers: HTTPHeaders)
    {
        guard !ingress.decodePending else {
            return handler?.writeError(status: status, type: type, code: code, message: message,
                                       headers: headers.map { ($0.name, $0.value) }) ?? ()
        }
        let answer = ingress.exchange.encodeError(status: Int(status.code), type: type, code: code, message: message,
                                                  inStream: false)
        var headers = headers
        for (name, value) in answer.headers where !ProxyRequest.reservedHeaders.contains(name) || name == "content-type" {
            headers.replaceOrAdd(name: name, value: value)
        }
        if headers.first(name: "content-type") == nil { headers.add(name: "content-type", value: "application/json") }
        let code = answer.status >= 400 && answer.status < 600 ? Int(answer.status) : Int(status.code)
        handler?.writeResponse(status: HTTPResponseStatus(statusCode: code), headers: headers, body: answer.body)
    }

    /// A canonical (OpenAI) answer, turned into the client's dialect; nil after answering with an
    /// error when the dialect could not.
    func dialectAnswer(_ ingress: IngressState, status: Int, headers: [(String, String)], body: [UInt8]) -> MessageBuilder? {
        let client = MessageBuilder()
        let error = ErrorCapture()
        let result = withResponse(status: status, headers: headers, body: body) { response in
            ingress.exchange.encodeResponse(response, into: client, error: error)
        }
        guard result == PRISM_OK else {
            failFromPlugin(result, error, provider: "ingress '\(ingress.exchange.ingress.name)'")
            return nil
        }
        return client
    }

    /// A middleware's own answer (a cache hit, a refusal) is canonical: it reaches the client in
    /// its dialect. Returns false when it was answered here.
    func answerInDialect(status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8]) -> Bool {
        guard let ingress else { return true }
        if status.code >= 400 {
            let fields = OpenAIErrorBody.fields(in: body)
                ?? (type: "api_error", code: "", message: String(decoding: body.prefix(512), as: UTF8.self))
            fail(status, fields.type, fields.code, fields.message,
                 extraHeaders: headers.filter { $0.name == "retry-after" || $0.name.hasPrefix("x-ratelimit") }.map { ($0.name, $0.value) })
            return false
        }
        // A middleware's 2xx for a request decode answered itself (a token count) is not canonical.
        guard ingress.localAnswer == nil else { return true }
        if headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true {
            // A stream replayed whole: each chunk through the dialect, then its closing events.
            var bytes: [UInt8] = []
            var parser = ServerSentEventParser()
            let error = ErrorCapture()
            var encodeStatus = PRISM_OK
            try? parser.feed(body) { event in
                guard encodeStatus == PRISM_OK, event.data != Array("[DONE]".utf8) else { return }
                encodeStatus = event.data.withUnsafeBytes { ingress.exchange.encodeEvent($0, into: &bytes, error: error) }
            }
            if encodeStatus == PRISM_OK { encodeStatus = ingress.exchange.finishStream(usage: usage, into: &bytes, error: error) }
            guard encodeStatus == PRISM_OK else {
                failFromPlugin(encodeStatus, error, provider: "ingress '\(ingress.exchange.ingress.name)'")
                return false
            }
            var replay = headers
            addCommonHeaders(&replay)
            finishBuffered(status, headers: replay, body: bytes, logsBody: false)
            return false
        }
        guard let answer = dialectAnswer(ingress, status: Int(status.code), headers: headers.map { ($0.name, $0.value) },
                                         body: body) else { return false }
        var replay = HTTPHeaders(answer.headers.map { ($0.name, $0.value) })
        for (name, value) in headers where name.hasPrefix("x-") { replay.replaceOrAdd(name: name, value: value) }
        if replay.first(name: "content-type") == nil { replay.add(name: "content-type", value: "application/json") }
        addCommonHeaders(&replay)
        finishBuffered(status, headers: replay, body: answer.body, logsBody: false)
        return false
    }

    // MARK: Pass-through

    /// One attempt's upstream request: the client's own body when the provider speaks the
    /// client's dialect (pass-through), else the canonical request; `exchange` is replaced when
    /// the provider declined the dialect (a fresh exchange for the canonical request).
    func buildUpstreamRequest(_ view: RequestView, for candidate: RouteCandidate, exchange: inout ProviderExchange)
        -> (status: prism_status, framing: prism_framing, upstream: MessageBuilder, error: ErrorCapture, passThrough: Bool)
    {
        let expected = body.count + 256
        var upstream = MessageBuilder(expectedBodySize: expected)
        var error = ErrorCapture()
        if let native = ingress?.nativeView(model: candidate.upstreamModel, streaming: streaming, attempt: attemptCount) {
            let (status, framing) = exchange.buildRequest(native, into: upstream, error: error)
            if status == PRISM_OK || status == PRISM_ANSWERED_LOCALLY { return (status, framing, upstream, error, true) }
            // Only "unsupported" means "not my dialect": any other failure is this attempt's.
            guard status == PRISM_ERROR_UNSUPPORTED else { return (status, framing, upstream, error, false) }
            if let fresh = candidate.provider.newExchange() { (exchange, upstream, error) = (fresh, MessageBuilder(expectedBodySize: expected), ErrorCapture()) }
        }
        // What the canonical form cannot carry: the next candidate may speak the dialect.
        if let refusal = ingress?.onlyNative { return (PRISM_ERROR_UNSUPPORTED, PRISM_FRAMING_NONE, upstream, refusal, false) }
        let (status, framing) = exchange.buildRequest(view, into: upstream, error: error)
        return (status, framing, upstream, error, false)
    }

    /// A buffered pass-through answer (success or the upstream's own error, already in the client's
    /// dialect) goes to the client as it came.
    func answerNative(_ attempt: UpstreamAttempt, status: Int, headers: HeaderBlock, body: [UInt8]) {
        if let ingress, (200..<300).contains(status) {
            body.withUnsafeBytes { ingress.exchange.observeNative(event: "", data: $0, usage: &ingress.nativeUsage) }
            usage = ingress.nativeUsage
            chargeAnswer()
        }
        var responseHeaders = HTTPHeaders()
        responseHeaders.add(name: "content-type", value: headers.value(of: "content-type") ?? "application/json")
        for index in 0..<headers.count
            where headers.name(at: index, is: "retry-after") || headers.name(at: index, is: "request-id")
            || headers.name(at: index, hasPrefix: "anthropic-") || headers.name(at: index, hasPrefix: "openai-")
            || headers.name(at: index, hasPrefix: "x-ratelimit")
        {
            responseHeaders.add(name: headers.name(at: index), value: headers.value(at: index))
        }
        addCommonHeaders(&responseHeaders)
        if status >= 400 { errorCode = "provider_error" }
        finishBuffered(HTTPResponseStatus(statusCode: status), headers: responseHeaders, body: body, logsBody: true)
    }
}
