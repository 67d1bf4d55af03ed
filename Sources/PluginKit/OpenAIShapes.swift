import PrismPluginABI
import PrismWire

/// OpenAI's response shapes, written with the shared JSON writer, and the mappings every adapter
/// needs (usage, upstream errors).
public enum OpenAIShapes {
    /// Usage from the `usage` value at `range` (of an OpenAI-format response or chunk); nil when it
    /// is not an object.
    public static func usage(in bytes: UnsafeRawBufferPointer, object range: Range<Int>) -> Usage? {
        guard bytes[range.lowerBound] == UInt8(ascii: "{") else { return nil }
        // One pass with the pull reader: no member arrays for usage and its two detail objects.
        // The first of a repeated key counts, as JSONScanner.member finds it.
        var reader = JSONReader(bytes, in: range)
        var usage = Usage()
        var seen: (input: Bool, output: Bool, cached: Bool, reasoning: Bool) = (false, false, false, false)
        func count(_ range: Range<Int>) -> UInt64 { UInt64(clamping: JSONScanner.integer(bytes, in: range) ?? 0) }
        do {
            try reader.enterObject()
            while let key = try reader.nextKey() {
                if !seen.input && reader.key(key, is: "prompt_tokens") {
                    usage.inputTokens = count(try reader.skipValue())
                    seen.input = true
                } else if !seen.output && reader.key(key, is: "completion_tokens") {
                    usage.outputTokens = count(try reader.skipValue())
                    seen.output = true
                } else if !seen.cached && reader.key(key, is: "prompt_tokens_details") {
                    seen.cached = true
                    usage.cachedInputTokens = try detailValue(&reader, "cached_tokens").map(count) ?? 0
                } else if !seen.reasoning && reader.key(key, is: "completion_tokens_details") {
                    seen.reasoning = true
                    usage.reasoningTokens = try detailValue(&reader, "reasoning_tokens").map(count) ?? 0
                } else {
                    _ = try reader.skipValue()
                }
            }
        } catch {
            return nil
        }
        return usage
    }

    /// The value of the first `name` in the detail object the reader is at; nil (the value
    /// skipped) when it is not an object.
    private static func detailValue(_ reader: inout JSONReader, _ name: StaticString) throws(JSONSyntaxError) -> Range<Int>? {
        guard reader.peek() == UInt8(ascii: "{") else {
            _ = try reader.skipValue()
            return nil
        }
        try reader.enterObject()
        var found: Range<Int>?
        while let key = try reader.nextKey() {
            let value = try reader.skipValue()
            if found == nil && reader.key(key, is: name) { found = value }
        }
        return found
    }

    /// Maps an upstream HTTP error to the OpenAI error the client gets: the status class decides
    /// the type, the upstream's own message is kept.
    public static func upstreamError(status: UInt32, body: [UInt8]) -> PluginError {
        let upstreamMessage = OpenAIErrorBody.message(in: body)
            ?? String(decoding: body.prefix(512), as: UTF8.self)
        let message = "upstream returned HTTP \(status): \(upstreamMessage)"
        switch status {
        case 400, 404, 409, 413, 422:
            return PluginError(status: PRISM_ERROR_UPSTREAM, httpStatus: status, type: "invalid_request_error",
                               code: "provider_error", message: message)
        case 401, 403:
            // The gateway's own provider credentials were refused: a gateway-side fault, not the client's.
            return PluginError(status: PRISM_ERROR_UPSTREAM, httpStatus: 502, type: "provider_error",
                               code: "provider_auth_error", message: message)
        case 429:
            return PluginError(status: PRISM_ERROR_UPSTREAM, httpStatus: 429, type: "rate_limit_error",
                               code: "rate_limit_exceeded", message: message)
        case 529, 503:
            return PluginError(status: PRISM_ERROR_UPSTREAM, httpStatus: 503, type: "overloaded_error",
                               code: "provider_overloaded", message: message)
        default:
            return PluginError(status: PRISM_ERROR_UPSTREAM, httpStatus: 502, type: "provider_error",
                               code: "provider_error", message: message)
        }
    }

    /// A `chat.completion` object with one assistant message.
    public static func chatCompletion(id: String, created: Int64, model: String, content: String,
                                      finishReason: String, usage: Usage) -> [UInt8]
    {
        ChatCompletion(id: id, model: model, created: created, text: content, finishReason: finishReason,
                       usage: usage).jsonBytes
    }

    /// One `chat.completion.chunk` with a content delta (and optionally role / finish reason).
    public static func chunk(id: String, created: Int64, model: String, role: String? = nil, content: String?,
                             finishReason: String? = nil) -> [UInt8]
    {
        chunkBytes(id: id, created: created, model: model, finishReason: finishReason) { writer in
            if let role { writer.string("role", role) }
            if let content { writer.string("content", content) }
        }
    }

    /// The one writer of `chat.completion.chunk` objects: `delta` writes the delta's members.
    static func chunkBytes(id: String, created: Int64, model: String, finishReason: String?,
                           delta: (inout JSONWriter) -> Void) -> [UInt8]
    {
        var writer = JSONWriter(capacity: 224)
        writer.beginObject()
        writer.string("id", id)
        writer.string("object", "chat.completion.chunk")
        writer.integer("created", created)
        writer.string("model", model)
        writer.key("choices")
        writer.beginArray()
        writer.beginObject()
        writer.integer("index", 0)
        writer.key("delta")
        writer.beginObject()
        delta(&writer)
        writer.endObject()
        writer.key("logprobs")
        writer.null()
        writer.optionalString("finish_reason", finishReason)
        writer.endObject()
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }

    /// The usage-only final chunk OpenAI sends when `stream_options.include_usage` is set.
    public static func usageChunk(id: String, created: Int64, model: String, usage: Usage) -> [UInt8] {
        var writer = JSONWriter(capacity: 256)
        writer.beginObject()
        writer.string("id", id)
        writer.string("object", "chat.completion.chunk")
        writer.integer("created", created)
        writer.string("model", model)
        writer.key("choices")
        writer.beginArray()
        writer.endArray()
        writer.key("usage")
        writeUsage(usage, to: &writer)
        writer.endObject()
        return writer.bytes
    }

    public static func writeUsage(_ usage: Usage, to writer: inout JSONWriter) {
        writer.beginObject()
        writer.integer("prompt_tokens", Int64(clamping: usage.inputTokens))
        writer.integer("completion_tokens", Int64(clamping: usage.outputTokens))
        writer.integer("total_tokens", Int64(clamping: usage.inputTokens + usage.outputTokens))
        // Prompt-cache writes (Anthropic's and Bedrock's), under Anthropic's name; OpenAI has none.
        if usage.cacheWriteTokens > 0 {
            writer.integer("cache_creation_input_tokens", Int64(clamping: usage.cacheWriteTokens))
        }
        writer.key("prompt_tokens_details")
        writer.beginObject()
        writer.integer("cached_tokens", Int64(clamping: usage.cachedInputTokens))
        writer.endObject()
        writer.key("completion_tokens_details")
        writer.beginObject()
        writer.integer("reasoning_tokens", Int64(clamping: usage.reasoningTokens))
        writer.endObject()
        writer.endObject()
    }

    /// The text of a message's `content` (a string, or an array of parts whose text parts are joined).
    public static func text(ofContent content: JSONValue?) -> String {
        guard let content else { return "" }
        if let text = content.stringValue { return text }
        guard let parts = content.arrayValue else { return "" }
        return parts.compactMap { part in
            part["type"]?.stringValue == "text" ? part["text"]?.stringValue : nil
        }.joined(separator: "\n")
    }
}
