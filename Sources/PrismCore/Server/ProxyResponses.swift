import Logging
import NIOCore
import NIOHTTP1
import PrismPluginABI
import PrismSupport
import PrismWire
import Synchronization

// How a proxied request ends: the client's answer (translated, or an error), what it is
// recorded as (Observability/RequestLog.swift), middleware and router notifications.
extension ProxyRequest {
    /// A complete upstream answer (non-streaming, or an error before streaming), translated by the
    /// attempt's plugin. `badAnswer` hears a 2xx the plugin refuses (true: it failed over);
    /// `accepted` runs for any other verdict, before anything is written to the client.
    func answerBuffered(_ attempt: UpstreamAttempt, status: Int, headers: HeaderBlock, body: [UInt8],
                        badAnswer: ((String) -> Bool)? = nil, accepted: (() -> Void)? = nil)
    {
        if attempt.isPassThrough {
            accepted?()
            return answerNative(attempt, status: status, headers: headers, body: body)
        }
        let exchange = attempt.exchange
        let providerName = attempt.provider.settings.name
        let error = ErrorCapture()
        let translated: prism_status
        let client = MessageBuilder()
        var translatedUsage = prism_usage()
        translated = withResponse(status: status, headers: headers, body: body) { response in
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
                error.message = "Provider '\(providerName)' returned HTTP \(status): \(message)"
                error.isSet = true
                // Without a plugin to say otherwise, the upstream's wait hint still reaches the client.
                for index in 0..<headers.count where headers.name(at: index, is: "retry-after") {
                    error.headers.append(("retry-after", headers.value(at: index)))
                }
            }
            return PRISM_ERROR_UPSTREAM
        }
        guard translated == PRISM_OK else {
            if (200..<300).contains(status), translated == PRISM_ERROR_UPSTREAM, let badAnswer {
                if badAnswer(error.message) { return }
            } else {
                accepted?()
            }
            // What the plugin set through its error sink passes through as it was set.
            return failFromPlugin(translated, error)
        }
        accepted?()
        usage = translatedUsage
        chargeAnswer()
        // The client's dialect, when an ingress serves the route (the middleware still see the canonical answer).
        var answer = client
        if let ingress {
            guard let encoded = dialectAnswer(ingress, status: Int(client.status == 0 ? 200 : client.status),
                                              headers: client.headers.map { ($0.name, $0.value) }, body: client.body)
            else { return }
            answer = encoded
        }
        // One array with room for the gateway's own headers, made HTTPHeaders once as it is
        // written (HTTPHeaders.add checks every name: a tenth of the head's cost).
        var responseHeaders: [(String, String)] = []
        responseHeaders.reserveCapacity(answer.headers.count + 9)
        for header in answer.headers { responseHeaders.append((header.name, header.value)) }
        // A builder's names are lower-cased as they are set.
        if !answer.headers.contains(where: { $0.name == "content-type" }) {
            responseHeaders.append(("content-type", "application/json"))
        }
        addCommonHeaders(&responseHeaders)
        let clientStatus = HTTPResponseStatus(statusCode: Int(answer.status == 0 ? 200 : answer.status))
        // Watchers first: what they keep (a cached answer) must be there before the client can
        // ask again, on this connection or on another loop's.
        if (200..<300).contains(Int(clientStatus.code)) {
            trace?.sawAnswer(client.body, streamed: false)
            notifyResponse(status: Int(clientStatus.code), headers: responseHeaders, body: client.body)
        }
        finishBuffered(clientStatus, headers: responseHeaders, body: answer.body, logsBody: true)
    }

    // MARK: Endings

    var providerName: String { winner?.provider.settings.name ?? "-" }

    /// Prices the answer's `usage` and counts that cost against the request's budgets, once per
    /// answer and before its last bytes leave: the client's next request, to this replica or
    /// another on the same Redis, must find it counted (after the answer, a quick client could
    /// outrun it and spend past a hard limit).
    func chargeAnswer() {
        cost = priceOfAnswer()?.cost(of: usage)
        if let budgets = gateway.budgets, let budgetClaims, let cost { budgets.record(budgetClaims, cost: cost) }
    }

    func addCommonHeaders(_ headers: inout HTTPHeaders) {
        var common: [(String, String)] = []
        addCommonHeaders(&common)
        headers.add(contentsOf: common)
    }

    func addCommonHeaders(_ headers: inout [(String, String)]) {
        headers.reserveCapacity(headers.count + 7 + attributes.responseHeaders.count)
        headers.append(("x-prism-request-id", requestID))
        if let winner {
            headers.append(("x-prism-provider", winner.provider.settings.name))
            headers.append(("x-prism-model-used", winner.candidate.upstreamModel))
            headers.append(("x-prism-routing-strategy", gateway.planner.strategyName))
            if fallbackUsed { headers.append(("x-prism-fallback-used", "true")) }
        }
        let elapsed = Double(monotonicNanoseconds() - startedAt) / 1_000_000
        headers.append(("x-prism-latency-ms", formatMilliseconds(elapsed)))
        if let cost { headers.append(("x-prism-cost", PriceTable.format(cost))) }
        headers.append(contentsOf: attributes.responseHeaders)
    }

    func fail(_ status: HTTPResponseStatus, _ type: String, _ code: String, _ message: String, param: String? = nil,
              extraHeaders: [(String, String)] = [])
    {
        var headers = HTTPHeaders()
        addCommonHeaders(&headers)
        // A plugin's error headers (Retry-After, a provider's request id) never touch the framing
        // of the answer or the gateway's own headers.
        for (name, value) in extraHeaders where !ProxyRequest.reservedHeaders.contains(name) && !name.hasPrefix("x-prism-") {
            headers.replaceOrAdd(name: name, value: value)
        }
        errorCode = code
        trace?.failed(code: code, message: message)
        recordOutcome(status: Int(status.code))
        if let ingress {
            writeDialectError(ingress, status: status, type: type, code: code, message: SecretRedactor.shared.redact(message),
                              headers: headers)
        } else {
            handler?.writeError(status: status, type: type, code: code, message: SecretRedactor.shared.redact(message),
                                param: param, headers: headers.map { ($0.name, $0.value) })
        }
        complete(status: Int(status.code))
    }

    static let reservedHeaders: Set<String> = ["content-length", "transfer-encoding", "connection", "content-type",
                                               "keep-alive", "upgrade", "trailer", "te", "proxy-connection"]

    /// A plugin reported an error status: map it (and its error sink) to the client's answer.
    func failFromPlugin(_ status: prism_status, _ error: ErrorCapture, provider: String? = nil) {
        let providerName = provider ?? self.providerName
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
             error.isSet && !error.message.isEmpty ? error.message : "Provider '\(providerName)' failed (status \(status)).",
             extraHeaders: error.headers)
    }

    /// After the first byte a failure can only be told inside the stream: an error event, then
    /// `[DONE]`, so that clients neither hang nor mistake the truncation for a finished answer.
    func failStream(message: String, type: String) {
        errorCode = "provider_error"
        endStream(withError: type.isEmpty ? "provider_error" : type, code: "provider_error",
                  message: SecretRedactor.shared.redact("Provider '\(providerName)' failed mid-stream: \(message)"), status: 502)
    }

    /// A plugin failed a stream after the first byte: what it set through its error sink reaches
    /// the client as it was set (PLUGIN_API.md: type, code and message pass through); the host's
    /// own wording only where the plugin said nothing.
    func failStream(from error: ErrorCapture, otherwise message: String) {
        guard error.isSet, !error.message.isEmpty else { return failStream(message: message, type: error.type) }
        errorCode = error.code.isEmpty ? "provider_error" : error.code
        let status = (400..<600).contains(Int(error.httpStatus)) ? Int(error.httpStatus) : 502
        endStream(withError: error.type.isEmpty ? "provider_error" : error.type,
                  code: error.code.isEmpty ? "provider_error" : error.code,
                  message: SecretRedactor.shared.redact(error.message), status: status)
    }

    /// The one way a started stream ends badly: what was translated so far, the error event
    /// (`[DONE]` after it in OpenAI's dialect), and the request's completion with `status`.
    func endStream(withError type: String, code: String, message: String, status: Int) {
        trace?.streamFailed(OpenAIErrorBody.make(message: message, type: type, code: code))
        cancelAll()
        // A pass-through stream may stop mid-event: only a translated one has whole events pending.
        if winner?.isPassThrough != true { flushCollector() }
        handler?.writeStreamBytes(StreamRelay.errorEnding(
            dialect: ingress?.exchange, cutEvent: winner?.isPassThrough == true && ingress?.nativeFramer?.holdsPartialEvent == true,
            type: type, code: code, message: message, status: status))
        recordOutcome(status: status)
        handler?.endStream()
        complete(status: status)
    }

    /// Ends the request with a whole buffered answer. Its facts are recorded before the write
    /// (`recordOutcome`: on_complete, then the metrics, statistics, ledger and log), so that what
    /// the middleware do there (a rate limit trading its reservation for the real usage) is done,
    /// and the metrics count the request, before the client can ask again, on this connection or
    /// another loop's; the rest of the ending follows the write.
    func finishBuffered(_ status: HTTPResponseStatus, headers: [(String, String)], body: [UInt8], logsBody: Bool) {
        if logsBody && gateway.configuration.logging.includeBodies { responseBodyForLog = body }
        recordOutcome(status: Int(status.code))
        handler?.writeResponse(status: status, headers: headers, body: body)
        complete(status: Int(status.code))
    }

    func finishBuffered(_ status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8], logsBody: Bool) {
        finishBuffered(status, headers: headers.map { ($0.name, $0.value) }, body: body, logsBody: logsBody)
    }

    /// on_complete for the middleware, once (see finishBuffered).
    func settle(status: Int) {
        guard !settled else { return }
        settled = true
        guard view != nil else { return }
        let firstByte = firstByteAt == 0 ? 0 : firstByteAt - startedAt
        withCompletion(status: status, provider: winner == nil ? nil : providerName,
                       model: winner?.candidate.upstreamModel ?? "", usage: usage,
                       latencyNanoseconds: monotonicNanoseconds() - startedAt, firstByteNanoseconds: firstByte) {
            notifyComplete($0)
        }
    }

    /// The request's facts, recorded before the answer's last bytes leave, so that a client that
    /// has the answer finds it everywhere at once: the middleware's on_complete (a cache store, a
    /// rate limit's settlement), then the metrics, the dashboard's statistics, the spend ledger
    /// and the request log. Once; `complete` does it if no finishing path did.
    func recordOutcome(status: Int) {
        guard !outcomeRecorded else { return }
        outcomeRecorded = true
        let latency = monotonicNanoseconds() - startedAt
        let firstByte = firstByteAt == 0 ? 0 : firstByteAt - startedAt
        let modelLabel = metricModelLabel(status: status)
        settle(status: status)
        // Read after on_complete: a middleware may set attributes (key.owner) or headers there.
        let identity = endUserIdentity
        let outcome = RequestOutcome(
            requestID: requestID, key: attributes["key.name"] ?? "-", owner: attributes["key.owner"] ?? "-",
            user: identity.isEmpty ? "-" : identity, model: clientModel.isEmpty ? "-" : clientModel,
            provider: providerName, modelUsed: modelUsed, status: status, latencyNanoseconds: latency,
            firstByteNanoseconds: firstByte, usage: usage, cost: cost,
            cache: attributes.responseHeaders.last { $0.0 == "x-prism-cache" }?.1 ?? "-", fallback: fallbackUsed,
            stream: streaming, errorCode: errorCode)
        let metrics = gateway.services.metrics
        metrics.recordRequest(model: modelLabel, provider: outcome.provider, status: status, durationNanoseconds: latency,
                              firstTokenNanoseconds: firstByte, usage: usage)
        if let cost { metrics.recordCost(provider: outcome.provider, model: modelLabel, key: outcome.key, usd: cost) }
        // The dashboard's statistics and the ledger record the same facts.
        let now = wallClockMilliseconds()
        if view != nil { gateway.services.stats.record(RequestStats.Record(outcome, atMilliseconds: now)) }
        // What reached a provider, or was answered in its place (a cache hit): refusals before
        // that (401, 404, 429) spend nothing and are in the request log and the metrics.
        if let ledger = gateway.services.ledger, winner != nil || cost != nil {
            ledger.record(SpendLedger.Entry(outcome, at: now, org: gateway.organization.isEmpty ? "-" : gateway.organization))
        }
        RequestLog.write(outcome, to: gateway.logger, bodies: gateway.configuration.logging.includeBodies
            ? (body.array, responseBodyForLog) : nil)
    }

    func complete(status: Int) {
        guard !finished else { return }
        finished = true
        completedStatus = status
        pauseDeadline?.cancel()
        streamTimer?.cancel()
        recordOutcome(status: status)
        // Attempts end here: their exchanges are destroyed (exactly once) with the last reference,
        // and their receivers, which point back at this request, are dropped.
        cancelAll()
        finishTrace(status: status)
        winner?.release()
        handler?.requestFinished(self)
        // Last: shutdown waits for this count, then flushes the traces and the ledger, so the
        // request's spans and its ledger row must already be queued.
        if countedInFlight { gateway.activity.inFlight.add(-1, ordering: .relaxed) }
    }

    /// The model as a metric label: only names the configuration knows, or that a provider really
    /// answered, so a client sending made-up model names cannot grow the label table (each is one
    /// `unknown`).
    private func metricModelLabel(status: Int) -> String {
        if clientModel.isEmpty { return "-" }
        if gateway.catalog.isListed(clientModel) { return clientModel }
        if winner != nil && (200..<300).contains(status) { return clientModel }
        return "unknown"
    }

    /// The price of the model that answers (nil: cost tracking off, or the model has no price).
    func priceOfAnswer() -> ModelPrice? {
        guard let prices = gateway.prices, let winner else { return nil }
        return prices.price(for: winner.candidate.upstreamModel)
    }

    /// The model that answered: what a streaming provider reported through
    /// `set_response_model`, else the upstream model routing chose.
    var modelUsed: String {
        if streaming, let reported = collector.responseModel, !reported.isEmpty { return reported }
        return winner?.candidate.upstreamModel ?? "-"
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
        String(unsafeUninitializedCapacity: digits) { buffer in
            var remaining = value
            for index in stride(from: digits - 1, through: 0, by: -1) {
                let digit = UInt8(remaining & 0xF)
                buffer[index] = digit < 10 ? 0x30 + digit : 0x57 + digit // 0-9, a-f
                remaining >>= 4
            }
            return digits
        }
    }
}
