import PrismSupport
import PrismWire

// What a proxied request tells its trace: the hooks in Server/ and Pipeline/ are one line each;
// the facts are gathered here. Nothing runs for a request without a trace (telemetry off, or not
// sampled) beyond a nil check, except the trace context forwarded upstream.
extension ProxyRequest {
    /// `gen_ai.operation.name`: the GenAI conventions' name of the API (nil for the model list).
    var traceOperation: String? {
        switch api {
        case "chat.completions": return "chat"
        case "embeddings": return "embeddings"
        default: return nil
        }
    }

    /// The headers an attempt sends upstream. With telemetry on they carry the trace context: a
    /// sampled request's `traceparent` names the attempt's span; an unsampled one passes on the
    /// client's own `traceparent` (and `tracestate`) unchanged. With telemetry off, as the plugin
    /// built them.
    func upstreamHeaders(_ builder: [(name: String, value: String)], for attempt: UpstreamAttempt) -> [(String, String)] {
        // Mapped, not converted: `[(name:, value:)]` as `[(String, String)]` is a runtime cast
        // per element.
        let headers = builder.map { ($0.name, $0.value) }
        guard gateway.tracer != nil else { return headers }
        let parent: String
        let state: String?
        if let trace, let value = trace.traceparent(for: attempt) {
            parent = value
            state = trace.traceState
        } else if let incoming = head.headers.first(name: "traceparent"), TraceParent.parse(incoming) != nil {
            parent = incoming
            state = Tracer.usableTraceState(head.headers.first(name: "tracestate"))
        } else {
            return headers
        }
        var result = headers.filter { name, _ in
            // Only names of these lengths need a look (no lower-cased copy of every header).
            let length = name.utf8.count
            guard length == 11 || length == 10 else { return true }
            let lowered = name.asciiLowercased
            return lowered != "traceparent" && lowered != "tracestate"
        }
        result.append(("traceparent", parent))
        if let state { result.append(("tracestate", state)) }
        return result
    }

    /// The root span's facts, once the client has its answer; the spans go to the exporter.
    func finishTrace(status: Int) {
        guard let trace else { return }
        self.trace = nil
        let operation = traceOperation
        var facts = [SpanAttribute("http.request.method", .string(head.method.rawValue)),
                     SpanAttribute("url.path", .string(path)),
                     SpanAttribute("http.response.status_code", .integer(Int64(status))),
                     SpanAttribute("prism.request_id", .string(requestID))]
        facts.reserveCapacity(36)
        if let operation { facts.append(SpanAttribute("gen_ai.operation.name", .string(operation))) }
        if !clientModel.isEmpty { facts.append(SpanAttribute("gen_ai.request.model", .string(clientModel))) }
        if let key = attributes["key.name"] { facts.append(SpanAttribute("prism.key", .string(key))) }
        if let owner = attributes["key.owner"] { facts.append(SpanAttribute("prism.key.owner", .string(owner))) }
        if let userAgent = head.headers.first(name: "user-agent") {
            facts.append(SpanAttribute("user_agent.original", .string(userAgent.clipped(toCharacters: 256))))
        }
        if let winner {
            facts.append(SpanAttribute("gen_ai.system", .string(Tracer.system(of: winner.provider))))
            facts.append(SpanAttribute("prism.provider", .string(winner.provider.settings.name)))
            facts.append(SpanAttribute("gen_ai.response.model", .string(trace.responseModel ?? modelUsed)))
            facts.append(SpanAttribute("prism.routing.strategy", .string(gateway.planner.strategyName)))
        }
        if winner != nil || usage.input_tokens > 0 || usage.output_tokens > 0 {
            facts.append(SpanAttribute("gen_ai.usage.input_tokens", .integer(Int64(clamping: usage.input_tokens))))
            facts.append(SpanAttribute("gen_ai.usage.output_tokens", .integer(Int64(clamping: usage.output_tokens))))
            if usage.cached_input_tokens > 0 {
                facts.append(SpanAttribute("gen_ai.usage.cache_read.input_tokens", .integer(Int64(clamping: usage.cached_input_tokens))))
            }
            if usage.reasoning_tokens > 0 {
                facts.append(SpanAttribute("prism.usage.reasoning_tokens", .integer(Int64(clamping: usage.reasoning_tokens))))
            }
        }
        if let id = trace.responseID { facts.append(SpanAttribute("gen_ai.response.id", .string(id))) }
        if !trace.finishReasons.isEmpty { facts.append(SpanAttribute("gen_ai.response.finish_reasons", .strings(trace.finishReasons))) }
        requestParameters(into: &facts, content: trace)
        if api == "chat.completions" { facts.append(SpanAttribute("prism.stream", .bool(streaming))) }
        if fallbackUsed { facts.append(SpanAttribute("prism.fallback_used", .bool(true))) }
        if let cache = attributes.responseHeaders.last(where: { $0.0 == "x-prism-cache" })?.1 {
            facts.append(SpanAttribute("prism.cache", .string(cache)))
        }
        if let cost { facts.append(SpanAttribute("prism.cost_usd", .double(cost))) }
        if firstByteAt > startedAt {
            facts.append(SpanAttribute("prism.first_byte_ms", .double(Double(firstByteAt - startedAt) / 1_000_000)))
        }
        // Server spans: 5xx is an error, 4xx the client's (OpenTelemetry's HTTP conventions).
        let failed = status >= 500
        if failed || trace.errorCode != nil {
            facts.append(SpanAttribute("error.type", .string(trace.errorCode ?? String(status))))
        }
        let name: String
        if let operation {
            name = clientModel.isEmpty ? operation : operation + " " + clientModel
        } else {
            name = head.method.rawValue + (api == "models.retrieve" ? " /v1/models/{model}" : " " + path)
        }
        trace.finish(name: name, attributes: facts, failed: failed, statusMessage: failed ? trace.errorMessage ?? "" : "")
    }

    /// `gen_ai.request.*` from the body's top level (and, with capture_content, the prompt).
    private func requestParameters(into facts: inout [SpanAttribute], content trace: RequestTrace) {
        let members = trace.requestMembers
        guard !members.isEmpty else { return }
        body.withUnsafeBytes { raw in
            func number(_ member: JSONMember?) -> Double? {
                guard let member else { return nil }
                return Double(String(decoding: UnsafeRawBufferPointer(rebasing: raw[member.valueRange]), as: UTF8.self))
            }
            let maxTokens = JSONScanner.member(named: "max_completion_tokens", in: members, of: raw)
                ?? JSONScanner.member(named: "max_tokens", in: members, of: raw)
            if let maxTokens, let value = JSONScanner.integer(raw, in: maxTokens.valueRange) {
                facts.append(SpanAttribute("gen_ai.request.max_tokens", .integer(value)))
            }
            if let value = number(JSONScanner.member(named: "temperature", in: members, of: raw)) {
                facts.append(SpanAttribute("gen_ai.request.temperature", .double(value)))
            }
            if let value = number(JSONScanner.member(named: "top_p", in: members, of: raw)) {
                facts.append(SpanAttribute("gen_ai.request.top_p", .double(value)))
            }
            guard trace.content != nil else { return }
            let prompt = JSONScanner.member(named: "messages", in: members, of: raw)
                ?? JSONScanner.member(named: "input", in: members, of: raw)
            if let prompt {
                trace.content!.prompt = Array(raw[prompt.valueRange].prefix(CapturedContent.rawLimit))
            }
        }
    }
}
