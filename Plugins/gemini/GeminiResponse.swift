import PluginKit
import PrismPluginABI
import PrismWire

/// Gemini `GenerateContentResponse` → OpenAI `chat.completion`, and the mappings streams share.
enum GeminiResponse {
    /// Separates a synthesized call id from the call's thought signature (see `callID`).
    static let signatureSeparator = "__thought__"

    /// A tool-call id for Gemini's id-less function calls: `call_<response id>_<n>` (stable for a
    /// given answer, unique across turns), or the call's own `id` when Gemini sends one. A thought
    /// signature travels inside the id, because OpenAI's tool call has no field for it and Gemini 3
    /// refuses a replayed call without it; the request writer takes it back out.
    static func callID(own: String?, signature: String?, responseID: String, ordinal: Int) -> String {
        var id: String
        if let own, !own.isEmpty {
            id = own
        } else {
            // Ids must suit every provider a conversation may move to: [A-Za-z0-9_-], short.
            let kept = responseID.utf8.lazy.filter { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte == 0x2D
            }.prefix(20)
            let cleaned = String(decoding: Array(kept), as: UTF8.self)
            id = cleaned.isEmpty ? "call_\(ordinal)" : "call_\(cleaned)_\(ordinal)"
        }
        if let signature, !signature.isEmpty { id += signatureSeparator + signature }
        return id
    }

    /// The thought signature folded into a call id by `callID`, if any.
    static func signature(inCallID id: String) -> String? {
        let bytes = Array(id.utf8)
        let separator = Array(signatureSeparator.utf8)
        guard bytes.count > separator.count else { return nil }
        for start in 0...(bytes.count - separator.count) where bytes[start] == separator[0] {
            if Array(bytes[start..<(start + separator.count)]) == separator {
                return String(decoding: bytes[(start + separator.count)...], as: UTF8.self)
            }
        }
        return nil
    }

    /// One candidate's answer: visible text, thought summaries (reasoning) and function calls.
    struct Candidate {
        var text: String?
        var reasoning: String?
        var toolCalls: [ToolCall] = []
        var finishReason: String
    }

    static func candidate(_ value: JSONValue, responseID: String, ordinalBase: Int = 0) -> Candidate {
        var text: String?
        var reasoning: String?
        var calls: [ToolCall] = []
        for part in value["content"]?["parts"]?.arrayValue ?? [] {
            if part["thought"]?.boolValue == true {
                if let piece = part["text"]?.stringValue { reasoning = (reasoning ?? "") + piece }
                continue
            }
            if let piece = part["text"]?.stringValue {
                text = (text ?? "") + piece
            } else if let call = part["functionCall"] {
                calls.append(ToolCall(id: callID(own: call["id"]?.stringValue,
                                                 signature: part["thoughtSignature"]?.stringValue,
                                                 responseID: responseID, ordinal: ordinalBase + calls.count),
                                      name: call["name"]?.stringValue ?? "",
                                      arguments: call["args"].map { $0.jsonText } ?? "{}"))
            }
        }
        let reason = finishReason(value["finishReason"]?.stringValue, sawToolCall: !calls.isEmpty) ?? "stop"
        return Candidate(text: text, reasoning: reasoning, toolCalls: calls, finishReason: reason)
    }

    /// OpenAI's finish_reason for a Gemini one (nil while the candidate is not finished).
    static func finishReason(_ reason: String?, sawToolCall: Bool) -> String? {
        guard let reason, reason != "FINISH_REASON_UNSPECIFIED" else { return nil }
        switch reason {
        case "MAX_TOKENS": return "length"
        case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
             "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR":
            return "content_filter"
        default:
            // STOP (Gemini has no tool-call reason), and OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL...
            return sawToolCall ? "tool_calls" : "stop"
        }
    }

    /// Usage: completion tokens include thoughts (Gemini counts them apart); prompt tokens include
    /// the cached part and tool-use prompt tokens.
    static func usage(_ metadata: JSONValue?) -> Usage {
        guard let metadata else { return Usage() }
        return usage { UInt64(clamping: metadata[$0]?.integerValue ?? 0) }
    }

    static func usage(_ metadata: JSONFields) -> Usage {
        usage { name in
            switch name {
            case "promptTokenCount": UInt64(clamping: metadata.integer("promptTokenCount") ?? 0)
            case "toolUsePromptTokenCount": UInt64(clamping: metadata.integer("toolUsePromptTokenCount") ?? 0)
            case "candidatesTokenCount": UInt64(clamping: metadata.integer("candidatesTokenCount") ?? 0)
            case "thoughtsTokenCount": UInt64(clamping: metadata.integer("thoughtsTokenCount") ?? 0)
            default: UInt64(clamping: metadata.integer("cachedContentTokenCount") ?? 0)
            }
        }
    }

    private static func usage(_ count: (String) -> UInt64) -> Usage {
        let thoughts = count("thoughtsTokenCount")
        return Usage(inputTokens: count("promptTokenCount") + count("toolUsePromptTokenCount"),
                     outputTokens: count("candidatesTokenCount") + thoughts,
                     cachedInputTokens: count("cachedContentTokenCount"), reasoningTokens: thoughts)
    }

    static func completionID(responseID: String?, requestID: String) -> String {
        "chatcmpl-" + ((responseID?.isEmpty == false ? responseID : nil) ?? requestID)
    }

    /// A whole answer: the OpenAI JSON and its usage.
    static func completion(_ body: JSONValue, fallbackModel: String, requestID: String,
                           created: Int64) -> (json: [UInt8], usage: Usage)
    {
        let responseID = body["responseId"]?.stringValue ?? ""
        let model = body["modelVersion"]?.stringValue ?? fallbackModel
        let usage = usage(body["usageMetadata"])
        let id = completionID(responseID: responseID, requestID: requestID)
        let candidates = body["candidates"]?.arrayValue ?? []
        guard !candidates.isEmpty else {
            // The prompt itself was blocked (promptFeedback.blockReason): nothing was generated.
            let completion = ChatCompletion(id: id, model: model, created: created, text: nil,
                                            finishReason: "content_filter", usage: usage)
            return (completion.jsonBytes, usage)
        }
        var ordinal = 0
        var choices: [JSONValue] = []
        var first: ChatCompletion?
        for value in candidates {
            let answer = candidate(value, responseID: responseID, ordinalBase: ordinal)
            ordinal += answer.toolCalls.count
            let completion = ChatCompletion(id: id, model: model, created: created, text: answer.text,
                                            toolCalls: answer.toolCalls, finishReason: answer.finishReason,
                                            usage: usage, reasoning: answer.reasoning)
            if first == nil { first = completion }
            if candidates.count > 1 { choices.append(completion.jsonBytes.withUnsafeBytes { choice(in: $0) }) }
        }
        guard candidates.count > 1, case var .object(members) = (try? JSONValue.parse(first!.jsonBytes)) ?? .null else {
            return (first!.jsonBytes, usage)
        }
        // Several candidates (n > 1): one choice each, numbered in order.
        let numbered = choices.enumerated().map { index, choice -> JSONValue in
            guard case var .object(fields) = choice else { return choice }
            if let slot = fields.firstIndex(where: { $0.0 == "index" }) { fields[slot].1 = .number(String(index)) }
            return .object(fields)
        }
        if let slot = members.firstIndex(where: { $0.0 == "choices" }) { members[slot].1 = .array(numbered) }
        return (JSONValue.object(members).jsonBytes, usage)
    }

    private static func choice(in json: UnsafeRawBufferPointer) -> JSONValue {
        (try? JSONValue.parse(json))?["choices"]?.arrayValue?.first ?? .null
    }
}

/// Translates `streamGenerateContent?alt=sse`: every event is a whole GenerateContentResponse
/// holding only the new parts. Text becomes content deltas; a function call arrives complete, so
/// it becomes the OpenAI start delta (index, id, name) followed by one arguments delta. The
/// finish reason and usage (complete only on the last event) are sent when the stream ends.
struct GeminiStreamTranslator {
    let fallbackModel: String
    let requestID: String
    let created: Int64
    let includeUsage: Bool
    private var writer: ChatStreamWriter?
    private var finishReason: String?
    private var usage = Usage()
    private var blocked = false
    private var calls = 0

    init(model: String, requestID: String, created: Int64, includeUsage: Bool) {
        fallbackModel = model
        self.requestID = requestID
        self.created = created
        self.includeUsage = includeUsage
    }

    /// Reads the event in place (no tree): events come by the hundred per answer.
    mutating func translate(_ data: UnsafeRawBufferPointer, client: StreamSink) throws(PluginError) {
        let chunk: JSONFields
        do {
            chunk = try JSONFields(data)
        } catch {
            throw PluginError.upstream(status: 502, message: "Gemini sent an invalid stream event: \(error.reason)")
        }
        if let failure = chunk.value("error") { throw GeminiErrors.streamError(failure) }
        let responseID = chunk.string("responseId") ?? ""
        if writer == nil {
            let reported = chunk.string("modelVersion")
            if let reported { client.setResponseModel(reported) }
            writer = ChatStreamWriter(id: GeminiResponse.completionID(responseID: responseID, requestID: requestID),
                                      model: reported ?? fallbackModel, created: created)
        }
        if let metadata = chunk.object("usageMetadata") { usage = GeminiResponse.usage(metadata) }
        guard let candidate = chunk.objects("candidates").first else {
            if chunk.object("promptFeedback")?.range("blockReason") != nil { blocked = true }
            return
        }
        for part in candidate.object("content")?.objects("parts") ?? [] {
            if let thought = part.range("thought"), JSONScanner.isTrue(part.bytes, in: thought) {
                writer!.reasoning(part.string("text") ?? "", client: client)
                continue
            }
            if let text = part.string("text") {
                writer!.text(text, client: client)
            } else if let call = part.object("functionCall") {
                let key = String(calls)
                let id = GeminiResponse.callID(own: call.string("id"), signature: part.string("thoughtSignature"),
                                               responseID: responseID, ordinal: calls)
                calls += 1
                writer!.startToolCall(key: key, id: id, name: call.string("name") ?? "", client: client)
                // Compact and key-ordered like the non-streaming answer's arguments.
                let arguments = call.value("args")?.jsonText ?? "{}"
                writer!.toolArguments(key: key, fragment: arguments, client: client)
            }
        }
        if let reason = candidate.string("finishReason") { finishReason = reason }
    }

    /// Gemini has no end-of-stream event: a stream that ends without a finish reason was cut short.
    mutating func finish(client: StreamSink) throws(PluginError) {
        let reason: String
        if let mapped = GeminiResponse.finishReason(finishReason, sawToolCall: calls > 0) {
            reason = mapped
        } else if blocked {
            reason = "content_filter"
        } else {
            throw PluginError.upstream(status: 502, message: "the Gemini stream ended without a finishReason")
        }
        if writer == nil {
            writer = ChatStreamWriter(id: GeminiResponse.completionID(responseID: nil, requestID: requestID),
                                      model: fallbackModel, created: created)
        }
        writer!.finish(reason: reason, client: client)
        writer!.usage(usage, includeChunk: includeUsage, client: client)
    }
}

/// Gemini's error envelope, `{"error":{"code","message","status","details"}}`, as OpenAI errors.
enum GeminiErrors {
    static func upstreamError(status: UInt32, body: UnsafeRawBufferPointer) -> PluginError {
        let value = try? JSONValue.parse(body)
        let canonical = value?["error"]?["status"]?.stringValue
        var effective = effectiveStatus(status, canonical: canonical)
        // AI Studio answers a bad key with 400 INVALID_ARGUMENT; its ErrorInfo reason tells.
        let reasons = (value?["error"]?["details"]?.arrayValue ?? []).compactMap { $0["reason"]?.stringValue }
        if reasons.contains(where: { $0.hasPrefix("API_KEY_") }) { effective = 401 }
        var error = OpenAIShapes.upstreamError(status: effective, body: Array(body))
        if let canonical { error.message += " (\(canonical))" }
        return error
    }

    /// A failure reported inside a 200 stream.
    static func streamError(_ failure: JSONValue) -> PluginError {
        let code = UInt32(clamping: failure["code"]?.integerValue ?? 500)
        let canonical = failure["status"]?.stringValue
        let message = failure["message"]?.stringValue ?? failure.jsonText
        var error = OpenAIShapes.upstreamError(status: effectiveStatus(code, canonical: canonical),
                                               body: OpenAIErrorBody.make(message: message, type: "", code: nil))
        error.message = "Gemini stream failed: \(message)" + (canonical.map { " (\($0))" } ?? "")
        return error
    }

    /// The HTTP status that decides the OpenAI error type: Google's canonical status wins where it
    /// is more specific than the HTTP code (e.g. RESOURCE_EXHAUSTED is a rate limit).
    static func effectiveStatus(_ status: UInt32, canonical: String?) -> UInt32 {
        switch canonical {
        case "RESOURCE_EXHAUSTED": return 429
        case "UNAVAILABLE": return 503
        case "UNAUTHENTICATED": return 401
        case "PERMISSION_DENIED": return 403
        case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE": return status == 404 ? 404 : 400
        case "NOT_FOUND": return 404
        default: return status
        }
    }
}
