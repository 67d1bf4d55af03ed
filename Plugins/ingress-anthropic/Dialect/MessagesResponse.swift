import PluginKit
import PrismWire

/// Canonical answers (OpenAI chat.completion) → Anthropic Messages, errors in Anthropic's shape,
/// and the usage of pass-through (native Anthropic) answers.
enum MessagesResponse {
    /// Anthropic's message ids start with `msg_`; a canonical id that does not gets the prefix
    /// (an id that came from Anthropic through the Anthropic provider stays as it was).
    static func messageID(_ id: String) -> String { id.hasPrefix("msg_") ? id : "msg_" + id }

    /// An id for a tool call the canonical answer left without one: `toolu_<message id>_<n>`.
    static func fallbackToolID(messageID: String, index: Int) -> String {
        "toolu_\(messageID.hasPrefix("msg_") ? String(messageID.dropFirst(4)) : messageID)_\(index)"
    }

    /// Anthropic's four usage counters. `input` excludes cache reads and writes (Anthropic's
    /// convention), unlike OpenAI's prompt_tokens, which includes both.
    struct TokenUsage: Equatable {
        var input: Int64 = 0
        var output: Int64 = 0
        var cacheRead: Int64 = 0
        var cacheWrite: Int64 = 0

        init() {}

        /// From a canonical `usage` object (prompt_tokens, completion_tokens,
        /// prompt_tokens_details.cached_tokens, and cache_creation_input_tokens as PluginKit writes it).
        init(canonical usage: JSONValue) {
            let prompt = usage["prompt_tokens"]?.integerValue ?? 0
            cacheRead = usage["prompt_tokens_details"]?["cached_tokens"]?.integerValue ?? 0
            cacheWrite = usage["cache_creation_input_tokens"]?.integerValue ?? 0
            input = max(0, prompt - cacheRead - cacheWrite)
            output = usage["completion_tokens"]?.integerValue ?? 0
        }

        /// From the host's usage (inputTokens includes cached and written tokens).
        init(_ usage: Usage) {
            cacheRead = Int64(clamping: usage.cachedInputTokens)
            cacheWrite = Int64(clamping: usage.cacheWriteTokens)
            input = max(0, Int64(clamping: usage.inputTokens) - cacheRead - cacheWrite)
            output = Int64(clamping: usage.outputTokens)
        }

        /// `{"input_tokens","cache_creation_input_tokens","cache_read_input_tokens","output_tokens"}`.
        func write(to writer: inout JSONWriter) {
            writer.beginObject()
            writer.integer("input_tokens", input)
            writer.integer("cache_creation_input_tokens", cacheWrite)
            writer.integer("cache_read_input_tokens", cacheRead)
            writer.integer("output_tokens", output)
            writer.endObject()
        }
    }

    /// OpenAI `finish_reason` → Anthropic `stop_reason`. A "stop" that came with tool calls is a
    /// tool_use stop (some providers say "stop" there; Anthropic clients run tools on tool_use).
    static func stopReason(_ finishReason: String?, hasToolCalls: Bool, matchedStop: String?) -> String {
        switch finishReason {
        case "length": return "max_tokens"
        case "tool_calls", "function_call": return "tool_use"
        case "content_filter": return "refusal"
        default:
            if hasToolCalls { return "tool_use" }
            return matchedStop == nil ? "end_turn" : "stop_sequence"
        }
    }

    /// The stop sequence that ended the answer, when the canonical choice names one of the
    /// client's: OpenAI reports none, but some upstreams do (`stop_sequence`, vLLM's
    /// `stop_reason`, SGLang's `matched_stop`).
    static func matchedStop(_ choice: JSONValue, stops: [String]) -> String? {
        guard !stops.isEmpty else { return nil }
        for name in ["stop_sequence", "stop_reason", "matched_stop"] {
            if let text = choice[name]?.stringValue, stops.contains(text) { return text }
        }
        return nil
    }

    /// A tool call's arguments (a JSON text) as Anthropic's `input` object. Arguments that are
    /// blank, not JSON (a cut-off answer) or not an object become `{}`: Anthropic's `input` is
    /// always an object.
    static func writeInput(_ arguments: String?, to writer: inout JSONWriter) {
        if let arguments, let value = try? JSONValue.parse(arguments), case .object = value {
            value.write(to: &writer)
        } else {
            writer.beginObject()
            writer.endObject()
        }
    }

    // MARK: Whole answers

    /// A canonical chat.completion → an Anthropic Message.
    static func message(_ body: UnsafeRawBufferPointer, context: RequestContext) throws(PluginError) -> [UInt8] {
        let completion: JSONValue
        do {
            completion = try JSONValue.parse(body)
        } catch {
            throw PluginError.upstream(status: 502, message: "the answer is not valid JSON: \(error.reason)")
        }
        guard let choice = completion["choices"]?.arrayValue?.first else {
            throw PluginError.upstream(status: 502, message: "the answer has no choices")
        }
        let message = choice["message"] ?? .object([])
        let calls = message["tool_calls"]?.arrayValue ?? []

        var writer = JSONWriter(capacity: body.count + 256)
        writer.beginObject()
        let canonicalID = completion["id"]?.stringValue ?? ""
        let id = canonicalID.isEmpty ? context.fallbackMessageID : messageID(canonicalID)
        writer.string("id", id)
        writer.string("type", "message")
        writer.string("role", "assistant")
        let model = completion["model"]?.stringValue ?? ""
        writer.string("model", model.isEmpty ? context.model : model)
        writer.key("content")
        writer.beginArray()
        // Thinking first, as Anthropic orders it: the signed blocks when the provider kept them,
        // else the bare reasoning text (unsigned: it cannot be sent back to Anthropic).
        let thinking = (message["thinking_blocks"]?.arrayValue ?? []).compactMap(ThinkingBlock.init)
        if !thinking.isEmpty {
            for block in thinking { block.write(to: &writer) }
        } else if let reasoning = message["reasoning_content"]?.stringValue ?? message["reasoning"]?.stringValue,
                  !reasoning.isEmpty
        {
            writer.beginObject()
            writer.string("type", "thinking")
            writer.string("thinking", reasoning)
            writer.endObject()
        }
        let text = OpenAIShapes.text(ofContent: message["content"])
        for piece in [text, message["refusal"]?.stringValue ?? ""] where !piece.isEmpty {
            writer.beginObject()
            writer.string("type", "text")
            writer.string("text", piece)
            writer.endObject()
        }
        for (index, call) in calls.enumerated() {
            writer.beginObject()
            writer.string("type", "tool_use")
            let callID = call["id"]?.stringValue ?? ""
            writer.string("id", callID.isEmpty ? fallbackToolID(messageID: id, index: index) : callID)
            writer.string("name", call["function"]?["name"]?.stringValue ?? "")
            writer.key("input")
            writeInput(call["function"]?["arguments"]?.stringValue, to: &writer)
            writer.endObject()
        }
        writer.endArray()
        let matched = matchedStop(choice, stops: context.stopSequences)
        var reason = stopReason(choice["finish_reason"]?.stringValue, hasToolCalls: !calls.isEmpty, matchedStop: matched)
        if message["refusal"]?.stringValue.map({ !$0.isEmpty }) == true { reason = "refusal" }
        writer.string("stop_reason", reason)
        writer.optionalString("stop_sequence", reason == "stop_sequence" ? matched : nil)
        writer.key("usage")
        (completion["usage"].map(TokenUsage.init(canonical:)) ?? TokenUsage()).write(to: &writer)
        writer.endObject()
        return writer.bytes
    }

    // MARK: Errors

    /// The Anthropic error type for an HTTP status.
    static func errorType(status: UInt32) -> String {
        switch status {
        case 400: return "invalid_request_error"
        case 401: return "authentication_error"
        case 402: return "billing_error"
        case 403: return "permission_error"
        case 404: return "not_found_error"
        case 413: return "request_too_large"
        case 429: return "rate_limit_error"
        case 503, 529: return "overloaded_error"
        case 400..<500: return "invalid_request_error"
        default: return "api_error" // 500, 502, 504 and the rest
        }
    }

    /// `{"type":"error","error":{"type":…,"message":…}}`.
    static func errorBody(status: UInt32, message: String) -> [UInt8] {
        var writer = JSONWriter(capacity: 96 + message.utf8.count)
        writer.beginObject()
        writer.string("type", "error")
        writer.key("error")
        writer.beginObject()
        writer.string("type", errorType(status: status))
        writer.string("message", message)
        writer.endObject()
        writer.endObject()
        return writer.bytes
    }

    // MARK: Pass-through usage

    /// Usage of a native Anthropic answer: `message_start` (message.usage), `message_delta`
    /// (usage: output_tokens, and on newer API versions the cumulative input counters), or a whole
    /// Message (`event` empty). Anthropic's input_tokens excludes cache reads and writes; the
    /// host's input count includes them.
    static func observe(event: String, data: UnsafeRawBufferPointer, usage: inout Usage) {
        guard let fields = try? JSONFields(data) else { return }
        switch event.isEmpty ? fields.string("type") ?? "" : event {
        case "message_start":
            if let counters = fields.object("message")?.object("usage") { apply(counters, to: &usage) }
        case "message_delta", "message":
            if let counters = fields.object("usage") { apply(counters, to: &usage) }
        default:
            break
        }
    }

    static func apply(_ counters: JSONFields, to usage: inout Usage) {
        let input = counters.integer("input_tokens")
        let written = counters.integer("cache_creation_input_tokens")
        let read = counters.integer("cache_read_input_tokens")
        if input != nil || written != nil || read != nil {
            let write = UInt64(clamping: written ?? 0), cached = UInt64(clamping: read ?? 0)
            usage.inputTokens = UInt64(clamping: input ?? 0) + write + cached
            usage.cachedInputTokens = cached
            usage.cacheWriteTokens = write
        }
        if let output = counters.integer("output_tokens") { usage.outputTokens = UInt64(clamping: output) }
    }
}
