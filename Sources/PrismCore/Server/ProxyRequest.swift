import NIOCore
import NIOHTTP1
import PrismPluginABI
import PrismWire
import Synchronization

/// One proxied request, from the parsed body to the last byte written, on the connection's event
/// loop: validate → middleware pipeline → router → provider plugin → transport → translate back.
final class ProxyRequest {
    private let gateway: Gateway
    private weak var handler: GatewayHTTPHandler?
    private let eventLoop: EventLoop
    let api: String
    let requestID: String
    private let body: [UInt8]
    private let head: HTTPRequestHead
    private let path: String
    private var clientModel = ""
    private var streaming = false
    private let startedAt = monotonicNanoseconds()
    private var firstByteAt: UInt64 = 0

    private var view: RequestView?
    private let attributes = RequestAttributes()
    private var candidate: RouteCandidate?
    private var exchange: ProviderExchange?
    private var transfer: Transfer?
    private var receiver: UpstreamReceiver?
    /// The provider whose in-flight count this request holds.
    private var sentTo: ProviderInstance?
    private var framing: prism_framing = PRISM_FRAMING_NONE
    private var sseParser = ServerSentEventParser()
    private var lineSplitter = LineSplitter()
    private let collector = StreamCollector()
    private var usage = prism_usage()
    private var streamStarted = false
    private var finished = false
    private var countedInFlight = false

    init(gateway: Gateway, handler: GatewayHTTPHandler, head: HTTPRequestHead, path: String, api: String, body: [UInt8]) {
        self.gateway = gateway
        self.handler = handler
        eventLoop = handler.context!.eventLoop
        self.head = head
        self.path = path
        self.api = api
        self.body = body
        let given = head.headers.first(name: "x-prism-request-id") ?? ""
        requestID = ProxyRequest.isUsableRequestID(given) ? given : ProxyRequest.newRequestID()
    }

    // MARK: Request path

    func run() {
        gateway.inFlight.add(1, ordering: .relaxed)
        countedInFlight = true
        // 1. The body must be a JSON object with a model (and messages, for chat).
        let members: [JSONMember]
        do {
            members = try body.withUnsafeBytes { raw in try JSONScanner.members(raw) }
        } catch let error as JSONSyntaxError {
            return fail(.badRequest, "invalid_request_error", "invalid_json",
                        "The request body is not valid JSON: \(error.reason) at byte \(error.offset).")
        } catch {
            return fail(.badRequest, "invalid_request_error", "invalid_json", "The request body is not valid JSON.")
        }
        var model: String?
        var hasMessages = false
        body.withUnsafeBytes { raw in
            if let member = JSONScanner.member(named: "model", in: members, of: raw) {
                model = JSONScanner.string(raw, in: member.valueRange)
            }
            if let member = JSONScanner.member(named: "messages", in: members, of: raw) {
                hasMessages = raw[member.valueRange.lowerBound] == UInt8(ascii: "[")
            }
            if let member = JSONScanner.member(named: "stream", in: members, of: raw) {
                streaming = api == "chat.completions" && JSONScanner.isTrue(raw, in: member.valueRange)
            }
        }
        guard let model, !model.isEmpty else {
            return fail(.badRequest, "invalid_request_error", "missing_model",
                        "The request has no `model`: say which model should answer.", param: "model")
        }
        clientModel = model
        if api == "chat.completions" && !hasMessages {
            return fail(.badRequest, "invalid_request_error", "missing_messages",
                        "The request has no `messages` array.", param: "messages")
        }
        let headers = head.headers.map { ($0.name, $0.value) }
        let view = RequestView(api: api, method: head.method.rawValue, path: path, headers: headers, body: body,
                               model: model, requestID: requestID)
        if streaming { view.pointer.pointee.flags |= PRISM_REQUEST_STREAM }
        self.view = view

        // 2. Middleware, in configuration order.
        for middleware in gateway.middleware {
            let local = MessageBuilder()
            let action = middleware.onRequest(view, attributes: attributes, response: local)
            if action == PRISM_CONTINUE { continue }
            if action == PRISM_RESPOND {
                let status = HTTPResponseStatus(statusCode: Int(local.status == 0 ? 200 : local.status))
                var headers = HTTPHeaders(local.headers.map { ($0.name, $0.value) })
                if headers.first(name: "content-type") == nil { headers.add(name: "content-type", value: "application/json") }
                addCommonHeaders(&headers)
                handler?.writeResponse(status: status, headers: headers, body: local.body)
                return complete(status: Int(status.code))
            }
            return fail(.internalServerError, "internal_error", "middleware_error",
                        "Middleware '\(middleware.name)' failed (status \(action)).")
        }

        // 3. Routing: which deployments serve this model, in which order.
        let candidates = gateway.catalog.candidates(for: model)
        guard !candidates.isEmpty else {
            return fail(.notFound, "invalid_request_error", "model_not_found",
                        "The model '\(model)' is not configured. Add it to a provider's `models` list in config.yaml, or address a provider directly with the `provider/model` form (e.g. openai/\(model)).",
                        param: "model")
        }
        var order = Array(candidates.indices)
        if candidates.count > 1, let router = gateway.router, let ranked = router.select(view, candidates: candidates),
           !ranked.isEmpty
        {
            order = ranked
        }
        let chosen = candidates[order[0]]
        candidate = chosen

        // 4. The provider plugin builds the upstream request.
        guard let exchange = chosen.provider.newExchange() else {
            return fail(.internalServerError, "internal_error", "provider_error",
                        "Provider '\(chosen.provider.settings.name)' could not start a request.")
        }
        self.exchange = exchange
        view.setModel(chosen.upstreamModel)
        let upstream = MessageBuilder()
        let error = ErrorCapture()
        let (status, framing) = exchange.buildRequest(view, into: upstream, error: error)
        self.framing = streaming ? framing : PRISM_FRAMING_NONE
        switch status {
        case PRISM_OK:
            send(upstream, provider: chosen.provider)
        case PRISM_ANSWERED_LOCALLY:
            // The plugin answered itself: treat its answer exactly like one from the network.
            let answerStatus = Int(upstream.status == 0 ? 200 : upstream.status)
            upstreamHead(status: answerStatus, headers: upstream.headers.map { ($0.name, $0.value) })
            if streamStarted { upstreamData(upstream.body) }
            upstreamComplete(status: answerStatus, headers: upstream.headers.map { ($0.name, $0.value) },
                             body: streamStarted ? [] : upstream.body, failure: nil)
        default:
            failFromPlugin(status, error)
        }
    }

    private func send(_ upstream: MessageBuilder, provider: ProviderInstance) {
        let timeout = (provider.settings.defaultTimeout ?? gateway.configuration.server.defaultRequestTimeout).milliseconds
        let channel = handler?.context?.channel
        let receiver = UpstreamReceiver(request: NIOLoopBound(self, eventLoop: eventLoop), eventLoop: eventLoop,
                                        streaming: streaming, writable: { channel?.isWritable ?? true })
        provider.inFlight.add(1, ordering: .relaxed)
        sentTo = provider
        let transfer = Transfer(method: upstream.method, url: upstream.url, headers: upstream.headers, body: upstream.body,
                                timeoutMilliseconds: Int(timeout), streaming: streaming,
                                gate: gateway.gates[provider.settings.name], delegate: receiver)
        self.transfer = transfer
        self.receiver = receiver
        gateway.transport.start(transfer)
    }

    // MARK: Upstream events (on the event loop)

    /// A streaming answer's head. 2xx starts the client stream; anything else is collected as an
    /// error body (the client then gets a JSON error, not a broken stream).
    func upstreamHead(status: Int, headers: [(String, String)]) {
        guard !finished, streaming, (200..<300).contains(status) else { return }
        firstByteAt = monotonicNanoseconds()
        var responseHeaders = HTTPHeaders()
        responseHeaders.add(name: "content-type", value: "text/event-stream")
        responseHeaders.add(name: "cache-control", value: "no-cache")
        responseHeaders.add(name: "x-accel-buffering", value: "no")
        addCommonHeaders(&responseHeaders)
        handler?.writeStreamHead(headers: responseHeaders)
        streamStarted = true
    }

    func upstreamData(_ bytes: [UInt8]) {
        guard !finished, streamStarted, let exchange else { return }
        let error = ErrorCapture()
        var status = PRISM_OK
        switch framing {
        case PRISM_FRAMING_RAW:
            status = bytes.withUnsafeBytes { exchange.translateChunk($0, into: collector, error: error) }
        case PRISM_FRAMING_NDJSON:
            bytes.withUnsafeBytes { raw in
                lineSplitter.feed(raw) { line in
                    guard status == PRISM_OK else { return }
                    status = exchange.translateEvent(ServerSentEvent(data: line), into: collector, error: error)
                }
            }
        default:
            do {
                try sseParser.feed(bytes) { event in
                    guard status == PRISM_OK else { return }
                    status = exchange.translateEvent(event, into: collector, error: error)
                }
            } catch {
                status = PRISM_ERROR_UPSTREAM
            }
        }
        flushCollector()
        if let receiver, let transfer, receiver.isPaused, handler?.isWritable ?? false {
            receiver.markResumed()
            gateway.transport.resume(transfer)
        }
        if status != PRISM_OK {
            failStream(message: error.isSet ? error.message : "the upstream stream could not be translated", type: error.type)
        }
    }

    func upstreamComplete(status: Int, headers: [(String, String)], body: [UInt8], failure: TransportFailure?) {
        guard !finished, let exchange else { return }
        transfer = nil
        if let failure {
            if streamStarted { return failStream(message: failure.message, type: "provider_error") }
            if case .timeout = failure {
                return fail(.gatewayTimeout, "timeout_error", "timeout",
                            "Provider '\(providerName)' did not answer within its timeout: \(failure.message).")
            }
            return fail(.badGateway, "provider_error", "provider_error",
                        "Provider '\(providerName)' failed: \(failure.message).")
        }
        if streamStarted {
            // The upstream ended its stream: flush what the parser holds, then let the plugin finish.
            let error = ErrorCapture()
            var translateStatus = PRISM_OK
            if framing == PRISM_FRAMING_NDJSON {
                lineSplitter.finish { line in
                    if translateStatus == PRISM_OK {
                        translateStatus = exchange.translateEvent(ServerSentEvent(data: line), into: collector, error: error)
                    }
                }
            } else if framing != PRISM_FRAMING_RAW {
                try? sseParser.finish { event in
                    if translateStatus == PRISM_OK {
                        translateStatus = exchange.translateEvent(event, into: collector, error: error)
                    }
                }
            }
            if translateStatus == PRISM_OK { translateStatus = exchange.finishStream(into: collector, error: error) }
            flushCollector()
            if translateStatus != PRISM_OK {
                return failStream(message: error.isSet ? error.message : "the upstream stream ended badly", type: error.type)
            }
            usage = collector.usage
            handler?.writeStreamBytes(ServerSentEventWriter.done)
            handler?.endStream()
            return complete(status: 200)
        }
        answerBuffered(status: status, headers: headers, body: body)
    }

    /// A complete (non-streaming, or failed-before-streaming) upstream answer.
    private func answerBuffered(status: Int, headers: [(String, String)], body: [UInt8]) {
        guard let exchange else { return }
        let error = ErrorCapture()
        let translated: prism_status
        let client = MessageBuilder()
        var translatedUsage = prism_usage()
        let headerViews = headers
        translated = withResponse(status: status, headers: headerViews, body: body) { response in
            if (200..<300).contains(status) {
                let result = exchange.translateResponse(response, into: client, error: error)
                translatedUsage = result.usage
                return result.status
            }
            if !exchange.translateError(response, error: error) {
                let message = OpenAIErrorBody.message(in: body) ?? String(decoding: body.prefix(512), as: UTF8.self)
                error.httpStatus = 502
                error.type = "provider_error"
                error.code = "provider_error"
                error.message = "upstream returned HTTP \(status): \(message)"
                error.isSet = true
            }
            return PRISM_ERROR_UPSTREAM
        }
        guard translated == PRISM_OK else {
            if !error.message.contains("HTTP \(status)") && !(200..<300).contains(status) {
                error.message = "Provider '\(providerName)' returned HTTP \(status): \(error.message)"
            } else if !(200..<300).contains(status) {
                error.message = "Provider '\(providerName)': \(error.message)"
            }
            return failFromPlugin(translated, error)
        }
        usage = translatedUsage
        var responseHeaders = HTTPHeaders(client.headers.map { ($0.name, $0.value) })
        if responseHeaders.first(name: "content-type") == nil {
            responseHeaders.add(name: "content-type", value: "application/json")
        }
        addCommonHeaders(&responseHeaders)
        let clientStatus = HTTPResponseStatus(statusCode: Int(client.status == 0 ? 200 : client.status))
        handler?.writeResponse(status: clientStatus, headers: responseHeaders, body: client.body)
        complete(status: Int(clientStatus.code))
    }

    private func withResponse<Result>(status: Int, headers: [(String, String)], body: [UInt8],
                                      _ work: (UnsafePointer<prism_response>) -> Result) -> Result
    {
        let headerViews = HeaderArray(headers)
        return body.withUnsafeBufferPointer { bodyBuffer in
            var response = prism_response(struct_size: UInt32(MemoryLayout<prism_response>.size), status: UInt32(status),
                                          headers: headerViews.headers, header_count: headerViews.count,
                                          body: prism_bytes(data: bodyBuffer.baseAddress, length: bodyBuffer.count))
            return withExtendedLifetime(headerViews) { work(&response) }
        }
    }

    private func flushCollector() {
        guard !collector.pending.isEmpty else { return }
        handler?.writeStreamBytes(collector.pending)
        collector.pending.removeAll(keepingCapacity: true)
    }

    // MARK: Client side

    func clientDisconnected() {
        guard !finished else { return }
        if let transfer { gateway.transport.cancel(transfer) }
        transfer = nil
        complete(status: 499)
    }

    func clientWritable() {
        if let transfer, let receiver, receiver.isPaused {
            receiver.markResumed()
            gateway.transport.resume(transfer)
        }
    }

    // MARK: Endings

    private var providerName: String { candidate?.provider.settings.name ?? "-" }

    private func addCommonHeaders(_ headers: inout HTTPHeaders) {
        headers.add(name: "x-prism-request-id", value: requestID)
        if let candidate {
            headers.add(name: "x-prism-provider", value: candidate.provider.settings.name)
            headers.add(name: "x-prism-model-used", value: candidate.upstreamModel)
        }
        let elapsed = Double(monotonicNanoseconds() - startedAt) / 1_000_000
        headers.add(name: "x-prism-latency-ms", value: formatMilliseconds(elapsed))
        for (name, value) in attributes.responseHeaders { headers.add(name: name, value: value) }
    }

    private func fail(_ status: HTTPResponseStatus, _ type: String, _ code: String, _ message: String, param: String? = nil) {
        var headers = HTTPHeaders()
        addCommonHeaders(&headers)
        handler?.writeError(status: status, type: type, code: code, message: SecretRedactor.shared.redact(message), param: param,
                            headers: headers.map { ($0.name, $0.value) })
        complete(status: Int(status.code))
    }

    /// A plugin reported an error status: map it (and its error sink) to the client's answer.
    private func failFromPlugin(_ status: prism_status, _ error: ErrorCapture) {
        let fallback: (HTTPResponseStatus, String, String)
        switch status {
        case PRISM_ERROR_INVALID_REQUEST: fallback = (.badRequest, "invalid_request_error", "invalid_request")
        case PRISM_ERROR_UNSUPPORTED: fallback = (.notImplemented, "invalid_request_error", "not_supported")
        case PRISM_ERROR_UPSTREAM: fallback = (.badGateway, "provider_error", "provider_error")
        case PRISM_ERROR_DENIED: fallback = (.forbidden, "permission_error", "permission_denied")
        case PRISM_ERROR_LIMIT: fallback = (.tooManyRequests, "rate_limit_error", "rate_limit_exceeded")
        default: fallback = (.internalServerError, "internal_error", "internal_error")
        }
        let httpStatus = error.httpStatus >= 400 && error.httpStatus < 600
            ? HTTPResponseStatus(statusCode: Int(error.httpStatus)) : fallback.0
        fail(httpStatus, error.type.isEmpty ? fallback.1 : error.type, error.code.isEmpty ? fallback.2 : error.code,
             error.isSet ? error.message : "Provider '\(providerName)' failed (status \(status)).")
    }

    /// After the first byte a failure can only be told inside the stream: an error event, then
    /// `[DONE]`, so that clients neither hang nor mistake the truncation for a finished answer.
    private func failStream(message: String, type: String) {
        if let transfer { gateway.transport.cancel(transfer) }
        transfer = nil
        flushCollector()
        let body = OpenAIErrorBody.make(message: SecretRedactor.shared.redact("Provider '\(providerName)' failed mid-stream: \(message)"),
                                        type: type.isEmpty ? "provider_error" : type, code: "provider_error")
        var frame: [UInt8] = []
        body.withUnsafeBytes { ServerSentEventWriter.frame($0, into: &frame) }
        frame.append(contentsOf: ServerSentEventWriter.done)
        handler?.writeStreamBytes(frame)
        handler?.endStream()
        complete(status: 502)
    }

    private func complete(status: Int) {
        guard !finished else { return }
        finished = true
        let latency = monotonicNanoseconds() - startedAt
        if countedInFlight { gateway.inFlight.add(-1, ordering: .relaxed) }
        sentTo?.inFlight.subtract(1, ordering: .relaxed)
        sentTo = nil
        var completionUsage = usage
        completionUsage.struct_size = UInt32(MemoryLayout<prism_usage>.size)
        let providerName = self.providerName
        let upstreamModel = candidate?.upstreamModel ?? ""
        if let view {
            withUnsafePointer(to: &completionUsage) { usagePointer in
                providerName.withPrismString { provider in
                    upstreamModel.withPrismString { model in
                        var completion = prism_completion(
                            struct_size: UInt32(MemoryLayout<prism_completion>.size), status: UInt32(status),
                            provider: candidate == nil ? prism_string(data: nil, length: 0) : provider, model: model,
                            usage: usagePointer, latency_nanoseconds: latency,
                            first_byte_nanoseconds: firstByteAt == 0 ? 0 : firstByteAt - startedAt)
                        for middleware in gateway.middleware {
                            middleware.onComplete(view, attributes: attributes, completion: &completion)
                        }
                        if candidate != nil { gateway.router?.feedback(&completion) }
                    }
                }
            }
        }
        gateway.logger.info("request id=\(requestID) key=\(attributes.values["key.name"] ?? "-") owner=\(attributes.values["key.owner"] ?? "-") model=\(clientModel.isEmpty ? "-" : clientModel) provider=\(providerName) status=\(status) latency_ms=\(formatMilliseconds(Double(latency) / 1_000_000)) tokens_in=\(usage.input_tokens) tokens_out=\(usage.output_tokens)")
        exchange = nil // exchange_destroy runs here, exactly once
        // The receiver points back at this request: drop it to break the cycle.
        receiver = nil
        transfer = nil
        handler?.requestFinished(self)
    }

    // MARK: Helpers

    static func isUsableRequestID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128 && id.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// A random per-process prefix and a counter: unique, unguessable across processes, and one
    /// atomic add instead of a random-number syscall per request.
    static func newRequestID() -> String {
        let sequence = requestCounter.add(1, ordering: .relaxed).newValue
        return requestIDPrefix + hex(sequence, digits: 12)
    }

    private static let requestCounter = Atomic<UInt64>(0)
    private static let requestIDPrefix: String = {
        var generator = SystemRandomNumberGenerator()
        return "req-" + hex(generator.next() & 0xFFFF_FFFF_FFFF, digits: 12)
    }()

    private static func hex(_ value: UInt64, digits: Int) -> String {
        let alphabet: [UInt8] = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: digits) { buffer in
            var remaining = value
            for index in stride(from: digits - 1, through: 0, by: -1) {
                buffer[index] = alphabet[Int(remaining & 0xF)]
                remaining >>= 4
            }
            return digits
        }
    }
}

func formatMilliseconds(_ value: Double) -> String {
    let scaled = Int((value * 100).rounded())
    let fraction = scaled % 100
    return "\(scaled / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}

/// Receives a transfer's events on the transport thread and hands them to the request's event
/// loop. A non-streaming answer is collected here and crosses threads once, when complete.
final class UpstreamReceiver: TransferDelegate, @unchecked Sendable {
    private let request: NIOLoopBound<ProxyRequest>
    private let eventLoop: EventLoop
    private let streaming: Bool
    private let writable: @Sendable () -> Bool
    // Transport-thread state.
    private var status = 0
    private var headers: [(String, String)] = []
    private var body: [UInt8] = []
    private var forwarding = false
    /// Cap on a buffered (non-streaming or error) answer.
    private static let maximumBufferedBytes = 64 << 20

    init(request: NIOLoopBound<ProxyRequest>, eventLoop: EventLoop, streaming: Bool,
         writable: @escaping @Sendable () -> Bool)
    {
        self.request = request
        self.eventLoop = eventLoop
        self.streaming = streaming
        self.writable = writable
    }

    func transferReceivedHead(status: Int, headers: [(String, String)]) {
        self.status = status
        self.headers = headers
        guard streaming, (200..<300).contains(status) else { return }
        forwarding = true
        let request = self.request
        let sendableHeaders = headers
        eventLoop.execute { request.value.upstreamHead(status: status, headers: sendableHeaders) }
    }

    func transferReceived(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard forwarding else {
            if body.count < UpstreamReceiver.maximumBufferedBytes { body.append(contentsOf: bytes) }
            return true
        }
        let chunk = Array(bytes)
        let request = self.request
        eventLoop.execute { request.value.upstreamData(chunk) }
        // Backpressure: pause the transfer while the client cannot take more; the request
        // resumes it when the channel drains.
        if writable() { return true }
        paused.store(true, ordering: .relaxed)
        return false
    }

    private let paused = Atomic<Bool>(false)
    var isPaused: Bool { paused.load(ordering: .relaxed) }
    func markResumed() { paused.store(false, ordering: .relaxed) }

    func transferCompleted(_ failure: TransportFailure?) {
        let request = self.request
        let (status, headers, body) = (self.status, self.headers, self.body)
        eventLoop.execute {
            request.value.upstreamComplete(status: status, headers: headers, body: body, failure: failure)
        }
    }
}
